"""Convert a local model file before it is pushed, on the user's own machine: a
joblib/pickle file to skops, or a scikit-learn model to ONNX (checked against the
original's predictions first)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import InvalidInputError
from modelport.pipelines.optimization import best_time_us, disagreement
from modelport.runtimes.sklearn_walk import import_skops_io

CHECK_ROWS = 512
"""Synthetic rows on which the ONNX model must agree with the original."""


def convert_to_skops(source: Path) -> Path:
    """Load ``source`` with joblib (this runs the pickle: only for files you trust) and save
    it with skops into a temporary file that the caller deletes."""
    sio = import_skops_io()

    estimator = _load_local(source, allow_skops=False)
    handle, name = tempfile.mkstemp(suffix=".skops", prefix=source.stem + "-")
    os.close(handle)
    sio.dump(estimator, name)
    return Path(name)


@dataclass(frozen=True)
class OnnxConversion:
    path: Path
    """The ONNX file (temporary: the caller deletes it)."""
    checked_rows: int
    max_difference: float
    """Largest difference from the original's predictions (0 for class labels)."""
    speedup: float
    """Original one-row predict time over ONNX Runtime's."""


def convert_to_onnx(source: Path) -> OnnxConversion:
    """Convert a scikit-learn model (skops or joblib file, loaded here: only files you
    trust) to ONNX with skl2onnx, and keep it only if ONNX Runtime's predictions agree with
    the original's on ``CHECK_ROWS`` synthetic rows."""
    try:
        from skl2onnx import to_onnx
    except ImportError:
        raise InvalidInputError(
            "--convert onnx needs skl2onnx on this machine: pip install 'modelport[convert]'"
        ) from None
    estimator = _load_local(source, allow_skops=True)
    features = getattr(estimator, "n_features_in_", None)
    if not isinstance(features, int):
        raise InvalidInputError(
            f"{source} holds a {type(estimator).__name__} without n_features_in_: fit it on "
            "a numeric matrix to convert it to ONNX"
        )
    rows = np.random.default_rng(0).normal(size=(CHECK_ROWS, features)).astype(np.float32)
    try:
        model = to_onnx(estimator, rows[:1], options={"zipmap": False}, target_opset=17)
    except Exception as exc:  # skl2onnx raises many kinds for what it cannot convert
        raise InvalidInputError(
            f"skl2onnx cannot convert this {type(estimator).__name__}: "
            f"{str(exc).strip().splitlines()[0][:300]}; push it as skops instead"
        ) from None
    data = model.SerializeToString()
    session = _onnx_session(data)
    name = session.get_inputs()[0].name
    expected = np.asarray(estimator.predict(rows.astype(np.float64)))
    got = np.asarray(session.run(None, {name: rows})[0]).reshape(expected.shape)
    verdict = disagreement(expected, got)
    if isinstance(verdict, str):
        raise InvalidInputError(
            f"the ONNX conversion disagrees with the original: {verdict} on the {CHECK_ROWS} "
            "check rows; push the model as skops instead"
        )
    speedup = best_time_us(lambda: estimator.predict(rows[:1].astype(np.float64))) / best_time_us(
        lambda: session.run(None, {name: rows[:1]})
    )
    handle, path = tempfile.mkstemp(suffix=".onnx", prefix=source.stem + "-")
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    return OnnxConversion(Path(path), CHECK_ROWS, verdict, speedup)


def _load_local(source: Path, allow_skops: bool) -> Any:
    with source.open("rb") as stream:
        is_zip = stream.read(4) == b"PK\x03\x04"
    try:
        if is_zip and allow_skops:
            sio = import_skops_io()

            estimator = sio.load(source, trusted=sio.get_untrusted_types(file=source))
        else:
            import joblib

            estimator = joblib.load(source)
    except Exception as exc:  # whatever the file held, say so in one line
        loader = "skops" if is_zip and allow_skops else "joblib"
        raise InvalidInputError(
            f"{source} could not be loaded with {loader} ({type(exc).__name__}: {exc})"
        ) from None
    if not hasattr(estimator, "predict"):
        raise InvalidInputError(f"{source} holds a {type(estimator).__name__}, not a model")
    return estimator


def _onnx_session(data: bytes) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])
