"""Real scikit-learn models, trained here and saved the way users save them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import skops.io as sio
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import make_classification, make_regression
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline


class CustomScaler(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """A user-defined class: skops files holding it must not load without trust."""

    def fit(self, x: np.ndarray, y: Any = None) -> CustomScaler:
        self.scale_ = np.abs(x).max(axis=0)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return x / self.scale_


def regression(n_features: int = 4, seed: int = 0) -> tuple[Any, np.ndarray]:
    x, y = make_regression(n_samples=200, n_features=n_features, noise=1.0, random_state=seed)
    return LinearRegression().fit(x, y), x


def classifier() -> tuple[Any, np.ndarray]:
    x, y = make_classification(n_samples=200, n_features=5, n_informative=3, random_state=1)
    labels = np.where(y == 1, "spam", "ham")
    return LogisticRegression().fit(x, labels), x


def text_classifier() -> Any:
    texts = ["free money now", "win a prize", "meeting at noon", "lunch tomorrow?"] * 5
    labels = ["spam", "spam", "ham", "ham"] * 5
    return make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, labels)


def save_skops(estimator: Any, path: Path) -> Path:
    sio.dump(estimator, path)
    return path


def save_joblib(estimator: Any, path: Path) -> Path:
    joblib.dump(estimator, path)
    return path


# ONNX element type of each V2 datatype the identity model carries. BF16 is not among
# them (ModelPort serves no BF16 ONNX tensors); BF16 requests go to ``in_fp32``/``in_fp64``,
# which ModelPort widens them to exactly.
IDENTITY_TYPES = {
    "BOOL": "BOOL",
    "UINT8": "UINT8",
    "UINT16": "UINT16",
    "UINT32": "UINT32",
    "UINT64": "UINT64",
    "INT8": "INT8",
    "INT16": "INT16",
    "INT32": "INT32",
    "INT64": "INT64",
    "FP16": "FLOAT16",
    "FP32": "FLOAT",
    "FP64": "DOUBLE",
    "BYTES": "STRING",
}


def identity_onnx(path: Path, datatypes: list[str] | None = None) -> Path:
    """An ONNX model with one Identity node per V2 datatype (all of ``IDENTITY_TYPES``
    unless ``datatypes`` names some): ``in_<type>`` → ``out_<type>`` (lower-case V2 names,
    e.g. ``in_fp32``), every tensor of shape [-1, 3]."""
    import onnx
    from onnx import TensorProto, helper

    inputs, outputs, nodes = [], [], []
    for datatype in datatypes or list(IDENTITY_TYPES):
        element = getattr(TensorProto, IDENTITY_TYPES[datatype])
        source, target = f"in_{datatype.lower()}", f"out_{datatype.lower()}"
        inputs.append(helper.make_tensor_value_info(source, element, ["batch", 3]))
        outputs.append(helper.make_tensor_value_info(target, element, ["batch", 3]))
        nodes.append(helper.make_node("Identity", [source], [target], name=f"id_{target}"))
    graph = helper.make_graph(nodes, "identity", inputs, outputs)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="modelport-tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def stress_values(datatype: str, finite: bool = False) -> np.ndarray:
    """Values of ``datatype`` in shape [-1, 3] that expose any inexact conversion: integer
    extremes, float subnormals, -0.0, NaN (with a payload) and infinities (left out when
    ``finite``, as JSON cannot carry them), non-ASCII, empty, long and NUL-holding BYTES."""
    if datatype == "BOOL":
        return np.array([[True, False, True], [False, False, True]])
    if datatype == "BYTES":
        items = [b"", "\u00e9\u6f22\U0001f642".encode(), b"a\x00b"]
        items += [b"\x00", b"x" * 70_000, b"trailing\x00"]
        items += [b" ", "\u0000\u0001\u001f\u007f".encode(), b'"\\/{}']
        return np.array(items, dtype=object).reshape(-1, 3)
    if datatype.startswith("FP"):
        dtype = np.dtype({"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}[datatype])
        info = np.finfo(dtype)
        values = [info.smallest_subnormal, -info.smallest_subnormal, info.max, info.min]
        values += [info.tiny, -0.0, 0.1, 1 / 3, info.eps]
        array = np.array(values, dtype=dtype)
        if not finite:
            nans = np.array([np.nan, -np.nan], dtype=dtype)
            payloads = (nans.view(f"u{dtype.itemsize}") | 1).view(dtype)  # NaN payload bits
            infinities = np.array([np.inf, -np.inf], dtype=dtype)
            array = np.concatenate([array, infinities, nans, payloads])
        return array.reshape(-1, 3)
    info = np.iinfo(np.dtype(datatype.lower()))
    values = [info.min, info.max, 0, info.min + 1, info.max - 1, 1]
    return np.array(values, dtype=datatype.lower()).reshape(-1, 3)
