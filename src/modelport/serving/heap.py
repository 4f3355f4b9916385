"""Keeps the garbage collector's full passes short in a serving process.

A full pass walks every container object Python tracks. Imports make most of them:
modules' functions, classes and constants (about 380,000 objects once scikit-learn is
imported, where a full pass took 229 ms on the development machine). Those live as long as
the process, so they are moved into the collector's permanent generation, where passes do
not look; a pass then walks what requests and loaded models allocate, in about a
millisecond.
"""

from __future__ import annotations

import gc
import sys

_modules_when_frozen = 0


def freeze_imports() -> None:
    """Collect, then freeze everything alive now, when modules were imported since the
    last call (at startup, and after a load that imported a framework). Loads that import
    nothing new freeze nothing: a model's own objects stay collectable, so that evicting
    it frees them."""
    global _modules_when_frozen
    if len(sys.modules) == _modules_when_frozen:
        return
    gc.collect()
    gc.freeze()
    _modules_when_frozen = len(sys.modules)
