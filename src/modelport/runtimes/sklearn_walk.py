"""scikit-learn's package walk, without importing torch.

``sklearn.utils.discovery.all_estimators`` finds estimators by walking scikit-learn's
packages, and ``pkgutil.walk_packages`` imports every package it passes, among them
``sklearn.externals.array_api_compat.torch``, which imports torch when it is installed. skops
runs that walk when ``skops.io`` is imported (for its trusted types), and training runs it
for the estimator list: either pulled torch into a process serving a scikit-learn model,
about 200 MB of resident memory and a second of import for nothing. During the walk that
package is a stand-in with no subpackages; no estimator lives there.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_ARRAY_API_TORCH = "sklearn.externals.array_api_compat.torch"


@contextmanager
def walking_without_torch() -> Iterator[None]:
    """Within it, scikit-learn's package walk skips the array API's torch package (unless
    torch is imported already: then importing that package costs nothing more)."""
    if "torch" in sys.modules or _ARRAY_API_TORCH in sys.modules:
        yield
        return
    stand_in = types.ModuleType(_ARRAY_API_TORCH)
    sys.modules[_ARRAY_API_TORCH] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(_ARRAY_API_TORCH) is stand_in:
            del sys.modules[_ARRAY_API_TORCH]


def import_skops_io() -> Any:
    """``skops.io``, imported without torch."""
    with walking_without_torch():
        import skops.io

    return skops.io
