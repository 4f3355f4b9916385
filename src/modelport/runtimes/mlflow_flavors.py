"""Which ModelPort runtime serves an MLflow flavor, and from which file of the model folder
(every file is confined to the folder: see ``mlmodel.model_file``).

- ``sklearn``: the skops file (safe) or the cloudpickle/pickle file (trusted only);
- ``xgboost``: the JSON/UBJSON model file;
- ``lightgbm``: the text model file; a scikit-learn-style LightGBM model saved with skops
  (a fixed list of LightGBM types is trusted) or pickled (trusted only) is served through
  its booster's text model;
- ``onnx``: the ``.onnx`` file, loaded from its path so that external data files are
  found beside it (and nowhere else);
- ``pytorch``: ``data/model.pt2`` (exported program) or ``data/model.pth`` (pickled
  module, trusted only).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.errors import InvalidInputError
from modelport.runtimes.formats import (
    ArtifactFormat,
    is_lightgbm_text,
    is_onnx,
    sklearn_format,
    xgboost_format,
)
from modelport.runtimes.mlmodel import MLModel, model_file
from modelport.runtimes.sklearn import load_estimator

NATIVE_FLAVORS = ("sklearn", "xgboost", "lightgbm", "onnx", "pytorch")
PYFUNC = "python_function"

LIGHTGBM_SKOPS = "lightgbm-skops"
LIGHTGBM_PICKLE = "lightgbm-pickle"


@dataclass(frozen=True)
class FlavorFile:
    """The model file of the flavor ModelPort serves, and how to read it."""

    flavor: str
    path: Path
    fmt: str
    """The format of the runtime that serves it (or a LightGBM wrapper format)."""

    @property
    def is_pickle(self) -> bool:
        return self.fmt in (ArtifactFormat.PICKLE, LIGHTGBM_PICKLE)


def served_flavor(mlmodel: MLModel) -> str:
    """The flavor ModelPort serves: a native one when there is one, else pyfunc."""
    for flavor in NATIVE_FLAVORS:
        if flavor in mlmodel.flavors:
            return flavor
    if PYFUNC in mlmodel.flavors:
        return PYFUNC
    names = ", ".join(sorted(mlmodel.flavors))[:200]
    raise InvalidInputError(
        f"the MLflow model has the flavors {names}; ModelPort serves the sklearn, xgboost, "
        "lightgbm, onnx and pytorch flavors, and python_function models as trusted versions"
    )


def flavor_file(folder: Path, mlmodel: MLModel, flavor: str) -> FlavorFile:
    """Find and recognise (from its first bytes) the model file of ``flavor``."""
    config = mlmodel.flavors[flavor]
    if flavor == "pytorch":
        return _torch_file(folder, config)
    key = "pickled_model" if flavor == "sklearn" else "data"
    path = model_file(folder, flavor, config.get(key))
    if not path.is_file():
        raise InvalidInputError(f"the MLmodel's {flavor} flavor names a folder, not a file")
    with path.open("rb") as stream:
        head = stream.read(64)
    fmt: str | None = None
    if flavor == "sklearn":
        fmt = sklearn_format(path, head)
    elif flavor == "xgboost":
        fmt = xgboost_format(head)
        if fmt is None:
            raise InvalidInputError(
                "the MLflow XGBoost model is not in XGBoost's JSON or UBJSON format (an old "
                "binary .xgb file?); save it again with mlflow.xgboost.save_model(model, path, "
                "model_format='json')"
            )
    elif flavor == "lightgbm":
        fmt = _lightgbm_format(path, head)
    elif flavor == "onnx" and is_onnx(head):
        fmt = ArtifactFormat.ONNX
    if fmt is None:
        raise InvalidInputError(
            f"the MLflow {flavor} model file is in a format ModelPort cannot read"
        )
    return FlavorFile(flavor, path, fmt)


def _lightgbm_format(path: Path, head: bytes) -> str | None:
    if is_lightgbm_text(head):
        return ArtifactFormat.LIGHTGBM_TEXT
    found = sklearn_format(path, head)
    if found is ArtifactFormat.SKOPS:
        return LIGHTGBM_SKOPS
    return LIGHTGBM_PICKLE if found is ArtifactFormat.PICKLE else None


def _torch_file(folder: Path, config: dict[str, Any]) -> FlavorFile:
    from modelport.runtimes.torch_formats import torch_format

    data = config.get("model_data", "data")
    for name in ("model.pt2", "model.pth"):
        path = model_file(folder, "pytorch", data) / name
        if path.is_file():
            with path.open("rb") as stream:
                fmt = torch_format(path, stream.read(64))
            if fmt is None:
                break
            return FlavorFile("pytorch", path, fmt)
    raise InvalidInputError(
        "the MLflow pytorch model holds neither data/model.pt2 nor a readable data/model.pth"
    )


@contextlib.contextmanager
def lightgbm_text_model(file: FlavorFile, trusted: bool, allow_pickle: bool) -> Iterator[Path]:
    """The LightGBM text model of ``file``: the file itself, or for a scikit-learn-style
    model (skops or pickle) its booster's model written to a temporary file."""
    if file.fmt == ArtifactFormat.LIGHTGBM_TEXT:
        yield file.path
        return
    fmt = ArtifactFormat.SKOPS if file.fmt == LIGHTGBM_SKOPS else ArtifactFormat.PICKLE
    estimator = load_estimator(file.path, fmt, trusted, allow_pickle)
    booster = getattr(estimator, "booster_", estimator)
    if not hasattr(booster, "model_to_string"):
        raise InvalidInputError(
            f"the MLflow lightgbm model holds a {type(estimator).__name__}, not a LightGBM model"
        )
    descriptor, name = tempfile.mkstemp(suffix=".txt", prefix="modelport-lightgbm-")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(booster.model_to_string())
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)
