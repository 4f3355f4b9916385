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
from modelport.runtimes.boosting import INPUT, boosted_outputs, features_of
from modelport.runtimes.formats import ArtifactFormat, xgboost_format
from modelport.runtimes.plugins import InspectOptions, LoadOptions, missing_framework
from modelport.runtimes.signatures import signature_for_upload
from modelport.types import Datatype, Signature, TensorSpec

LABEL_THRESHOLDS: dict[str, float | None] = {
    "multi:softmax": None,  # predicts the labels themselves
    "binary:logitraw": 0.0,  # margins, not probabilities
}


class XGBoostRuntime:
    name = "xgboost"
    formats: tuple[str, ...] = (ArtifactFormat.XGBOOST_JSON, ArtifactFormat.XGBOOST_UBJ)

    def detect(self, path: Path, head: bytes) -> str | None:
        return xgboost_format(head)

    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact:
        booster = _load(path)
        import xgboost

        objective, classes = _objective(booster)
        actual = _signature(booster, objective, classes)
        return InspectedArtifact(
            format=fmt,
            framework="xgboost",
            framework_version=xgboost.__version__,
            signature=signature_for_upload(options.signature, actual),
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


def _signature(booster: Any, objective: str, classes: int) -> Signature:
    features = booster.num_features()
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
        objective, _ = _objective(booster)
        self._threshold = LABEL_THRESHOLDS.get(objective, 0.5)

    def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        features = features_of(inputs, np.float32)
        predicted = np.asarray(self.booster.inplace_predict(features), dtype=np.float32)
        return boosted_outputs(predicted, outputs, self._threshold)

    def unload(self) -> None:
        self.booster = None
