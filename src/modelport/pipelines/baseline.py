"""The gate's ``better_than: ALIAS``: the version behind the alias, scored on the very
test split the new model was tested on."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import ModelPortError
from modelport.pipelines.metrics import prediction_metric
from modelport.pipelines.preprocessing import FeatureLayout
from modelport.runtimes.loader import load_model
from modelport.serving.inference import tensor_of
from modelport.serving.validation import check_inputs
from modelport.types import Signature


@dataclass(frozen=True)
class Baseline:
    """The version an alias points to, as the worker receives it."""

    alias: str
    version: int
    path: Path
    format: str
    signature: dict[str, Any]


def _inputs(signature: Signature, test_frame: Any, x_test: Any, layout: FeatureLayout) -> Any:
    specs = signature.inputs
    by_column = len(specs) > 1 or specs[0].parameters.get("content_type") == "pd"
    if not by_column:
        if not layout.is_matrix or specs[0].shape[-1] not in (-1, len(layout.columns)):
            raise ModelPortError("it does not take the same feature matrix")
        return [tensor_of(specs[0].name, np.asarray(x_test, dtype=np.float64))]
    tensors = []
    for spec in specs:
        if spec.name not in test_frame.columns:
            raise ModelPortError(f"it needs column '{spec.name}', which the dataset lacks")
        column = test_frame[spec.name]
        if spec.datatype.value == "BYTES":
            array = np.asarray([str(v) for v in column], dtype=object)
        else:
            array = column.to_numpy(dtype=np.float64, na_value=np.nan)
        tensors.append(tensor_of(spec.name, array))
    return tensors


def evaluate_baseline(
    baseline: Baseline,
    test_frame: Any,
    x_test: Any,
    y_test: np.ndarray,
    layout: FeatureLayout,
    metric: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The baseline's ``metric`` on the test split, or why it could not be measured."""
    scored = "accuracy" if metric == "roc_auc" else metric
    report: dict[str, Any] = {
        "alias": baseline.alias,
        "version": baseline.version,
        "metric": scored,
    }
    try:
        signature = Signature.model_validate(baseline.signature)
        model = load_model(baseline.path, baseline.format, signature, False, False)
        inputs = check_inputs(signature, _inputs(signature, test_frame, x_test, layout), False)
        outputs = model.predict(inputs, frozenset(model.default_outputs[:1]))
        predicted = np.asarray(outputs[model.default_outputs[0]]).reshape(len(y_test))
        value = prediction_metric(scored, y_test, predicted)
    except Exception as exc:  # any model, any format: say why it could not be compared
        message = exc.message if isinstance(exc, ModelPortError) else f"{type(exc).__name__}: {exc}"
        report["error"] = f"cannot score version {baseline.version} on this test split: {message}"[
            :500
        ]
        log(report["error"])
        return report
    report["value"] = value if math.isfinite(value) else None
    log(
        f"{baseline.alias} (version {baseline.version}): {scored} {value:.6g} "
        "on the same test split"
    )
    return report
