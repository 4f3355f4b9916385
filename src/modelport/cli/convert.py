"""Convert a local joblib/pickle file to skops, on the user's own machine."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from modelport.errors import InvalidInputError


def convert_to_skops(source: Path) -> Path:
    """Load ``source`` with joblib (this runs the pickle: only for files you trust) and save
    it with skops into a temporary file that the caller deletes."""
    import joblib
    import skops.io as sio

    try:
        estimator = joblib.load(source)
    except Exception as exc:  # whatever the file held, say so in one line
        raise InvalidInputError(
            f"{source} could not be loaded with joblib ({type(exc).__name__}: {exc})"
        ) from None
    if not hasattr(estimator, "predict"):
        raise InvalidInputError(f"{source} holds a {type(estimator).__name__}, not a model")
    handle, name = tempfile.mkstemp(suffix=".skops", prefix=source.stem + "-")
    os.close(handle)
    sio.dump(estimator, name)
    return Path(name)
