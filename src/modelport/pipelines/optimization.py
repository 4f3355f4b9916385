"""ONNX optimization of the winning pipeline: converted with skl2onnx, kept only when ONNX
Runtime agrees with scikit-learn on the whole test split and answers one row faster.

Only models that take one numeric ``features`` matrix are converted (text columns would
become string inputs of another shape than the scikit-learn model's); the log says why
when a conversion is skipped or dropped."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

RELATIVE_TOLERANCE = 1e-4
"""ONNX runs in float32: regression outputs may differ by this much relative to their scale."""
TIMING_REPEATS = 30


@dataclass(frozen=True)
class OnnxCandidate:
    data: bytes
    max_difference: float
    sklearn_one_row_us: float
    onnx_one_row_us: float

    @property
    def speedup(self) -> float:
        return self.sklearn_one_row_us / self.onnx_one_row_us

    def as_json(self) -> dict[str, Any]:
        return {
            "max_difference": self.max_difference,
            "sklearn_one_row_us": round(self.sklearn_one_row_us, 2),
            "onnx_one_row_us": round(self.onnx_one_row_us, 2),
            "speedup": round(self.speedup, 2),
        }


def best_time_us(call: Callable[[], Any]) -> float:
    """The best of ``TIMING_REPEATS`` timings of ``call``, in microseconds."""
    best = float("inf")
    for _ in range(TIMING_REPEATS):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best * 1e6


def _convert(model: Any, width: int, is_classifier: bool) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(model.steps[-1][1]): {"zipmap": False}} if is_classifier else None
    onnx_model = to_onnx(
        model,
        initial_types=[("features", FloatTensorType([None, width]))],
        options=options,
        target_opset=17,
    )
    _name_outputs_like_sklearn(onnx_model, is_classifier)
    data: bytes = onnx_model.SerializeToString()
    return data


def _name_outputs_like_sklearn(model: Any, is_classifier: bool) -> None:
    """Outputs named and shaped as the scikit-learn runtime's (``predict`` of shape [N],
    ``predict_proba``), so that clients see the same answer whichever format won."""
    from onnx import TensorProto, helper

    graph = model.graph
    if is_classifier:
        renames = {"label": "predict", "probabilities": "predict_proba"}
        for node in graph.node:
            node.output[:] = [renames.get(name, name) for name in node.output]
        for output in graph.output:
            output.name = renames.get(output.name, output.name)
        return
    (output,) = graph.output
    column = output.name
    graph.initializer.append(helper.make_tensor("predict_axes", TensorProto.INT64, [1], [1]))
    graph.node.append(helper.make_node("Squeeze", [column, "predict_axes"], ["predict"]))
    graph.output.remove(output)
    graph.output.append(helper.make_tensor_value_info("predict", TensorProto.FLOAT, [None]))


def disagreement(expected: np.ndarray, got: np.ndarray) -> str | float:
    """How far ONNX Runtime's predictions ``got`` are from scikit-learn's ``expected``: the
    largest difference, or a sentence saying how they disagree (labels must all be equal;
    values within ``RELATIVE_TOLERANCE`` of their scale, since ONNX runs in float32)."""
    if expected.dtype.kind in "iubOSU":
        mismatched = int((expected.astype(str) != got.astype(str)).sum())
        return f"{mismatched} of {len(expected)} labels differ" if mismatched else 0.0
    scale = max(1.0, float(np.abs(expected).max()))
    difference = float(np.abs(expected - got).max())
    if not difference <= RELATIVE_TOLERANCE * scale:
        allowed = RELATIVE_TOLERANCE * scale
        return f"predictions differ by up to {difference:.3g} (allowed {allowed:.3g})"
    return difference


def try_onnx(
    model: Any, features: np.ndarray, is_classifier: bool, log: Callable[[str], None]
) -> OnnxCandidate | None:
    """The ONNX form of ``model`` when it agrees on ``features`` and is faster, else None."""
    try:
        import onnxruntime as ort

        data = _convert(model, features.shape[1], is_classifier)
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except ImportError:
        log(
            "ONNX optimization skipped: skl2onnx is not installed "
            "(pip install 'modelport[convert]')"
        )
        return None
    except Exception as exc:  # skl2onnx raises many kinds for what it cannot convert
        log(f"ONNX optimization skipped: {type(exc).__name__}: {str(exc).strip()[:200]}")
        return None
    rows = features.astype(np.float32)
    expected = np.asarray(model.predict(features))
    got = np.asarray(session.run(None, {"features": rows})[0]).reshape(expected.shape)
    verdict = disagreement(expected, got)
    if isinstance(verdict, str):
        log(f"ONNX model dropped: {verdict} on the test split")
        return None
    one_row = features[:1]
    candidate = OnnxCandidate(
        data,
        verdict,
        best_time_us(lambda: model.predict(one_row)),
        best_time_us(lambda: session.run(None, {"features": rows[:1]})),
    )
    if candidate.speedup <= 1.0:
        log(f"ONNX model dropped: not faster ({candidate.speedup:.2f}x for one row)")
        return None
    log(
        f"ONNX model kept: agrees on {len(rows)} test rows (largest difference "
        f"{verdict:.2g}), one row {candidate.speedup:.1f}x faster"
    )
    return candidate
