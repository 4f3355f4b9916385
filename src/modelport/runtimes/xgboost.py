"""XGBoost runtime: models saved with ``save_model`` as JSON or UBJSON, XGBoost's own
formats (data, no code: nothing is unpickled). The ``xgboost`` package is an optional
extra, imported only when such a model is pushed or served.

Signature: one input ``features`` (FP64 ``[-1, n]``; XGBoost predicts on float32, and a
NaN is a missing value, as in XGBoost itself) and the output ``predict`` (what
``Booster.predict`` returns: values for regression, probabilities for classification);
classifiers also answer ``label``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import InvalidInputError
from modelport.runtimes.base import InspectedArtifact, Tensors
from modelport.runtimes.formats import ArtifactFormat, xgboost_format
from modelport.runtimes.plugins import InspectOptions, LoadOptions, missing_framework
from modelport.runtimes.signatures import check_given_signature
from modelport.types import Datatype, Signature, TensorSpec

INPUT = "features"


class XGBoostRuntime:
    name = "xgboost"
    formats: tuple[str, ...] = (ArtifactFormat.XGBOOST_JSON, ArtifactFormat.XGBOOST_UBJ)

    def detect(self, path: Path, head: bytes) -> str | None:
        return xgboost_format(head)

    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact:
        booster = _load(path)
        import xgboost

        actual = _signature(booster)
        objective, classes = _objective(booster)
        return InspectedArtifact(
            format=fmt,
            framework="xgboost",
            framework_version=xgboost.__version__,
            signature=check_given_signature(options.signature, actual)
            if options.signature
            else actual,
            params={
                "objective": objective,
                "classes": classes,
                "boosted_rounds": booster.num_boosted_rounds(),
                "features": booster.num_features(),
            },
        )

    def load(
        self, path: Path, fmt: str, signature: Signature, options: LoadOptions
    ) -> XGBoostModel:
        booster = _load(path)
        booster.set_param({"nthread": options.threads})
        return XGBoostModel(booster, signature)


def _load(path: Path) -> Any:
    try:
        import xgboost
    except ImportError:
        raise missing_framework("xgboost", "xgboost", "an XGBoost model") from None
    booster = xgboost.Booster()
    try:
        # From bytes: XGBoost tells JSON from UBJSON by their first bytes (from a path it
        # would go by the file name's extension, which artifacts do not keep).
        booster.load_model(bytearray(path.read_bytes()))
    except Exception as exc:  # XGBoostError, or a failure to even decode its message
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise InvalidInputError(f"the XGBoost model could not be loaded: {reason}") from None
    booster.set_param({"nthread": 1})
    return booster


def _objective(booster: Any) -> tuple[str, int]:
    """The objective's name and the number of classes (0: not a classifier)."""
    config = json.loads(booster.save_config())
    learner = config["learner"]
    objective = str(learner["objective"]["name"])
    classes = int(learner["learner_model_param"].get("num_class", "0") or 0)
    if objective.startswith(("binary:", "reg:logistic")):
        classes = 2
    return objective, classes


def _signature(booster: Any) -> Signature:
    features = booster.num_features()
    objective, classes = _objective(booster)
    if objective == "multi:softprob":
        predict = TensorSpec(name="predict", datatype=Datatype.FP32, shape=[-1, classes])
    else:
        predict = TensorSpec(name="predict", datatype=Datatype.FP32, shape=[-1])
    outputs = [predict]
    if classes:
        outputs.append(TensorSpec(name="label", datatype=Datatype.INT64, shape=[-1]))
    return Signature(
        inputs=[TensorSpec(name=INPUT, datatype=Datatype.FP64, shape=[-1, features])],
        outputs=outputs,
    )


class XGBoostModel:
    """A Booster predicting in place (no DMatrix per call)."""

    finite_inputs_only = False  # NaN means "missing" to XGBoost

    def __init__(self, booster: Any, signature: Signature) -> None:
        self.booster = booster
        self.signature = signature
        self.default_outputs = ["predict"]
        self._objective, self._classes = _objective(booster)

    def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        features = np.ascontiguousarray(inputs[INPUT], dtype=np.float32)
        if np.isinf(features).any():
            raise InvalidInputError(f"input '{INPUT}' contains infinite values")
        predicted = np.asarray(self.booster.inplace_predict(features), dtype=np.float32)
        results: Tensors = {}
        if "predict" in outputs:
            results["predict"] = predicted
        if "label" in outputs:
            results["label"] = self._labels(predicted)
        return results

    def _labels(self, predicted: np.ndarray) -> np.ndarray:
        if predicted.ndim == 2:
            labels: np.ndarray = np.argmax(predicted, axis=1)
        elif self._objective == "multi:softmax":
            labels = predicted
        elif self._objective == "binary:logitraw":  # margins, not probabilities
            labels = predicted > 0.0
        else:
            labels = predicted > 0.5
        return labels.astype(np.int64)

    def unload(self) -> None:
        self.booster = None
