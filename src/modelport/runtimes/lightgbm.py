"""LightGBM runtime: text models written by ``Booster.save_model`` (LightGBM's own format:
data, no code). The ``lightgbm`` package is an optional extra, imported only when such a
model is pushed or served.

Signature: one input ``features`` (FP64 ``[-1, n]``; NaN is a missing value, as in
LightGBM) and the output ``predict`` (what ``Booster.predict`` returns: values for
regression, probabilities for classification); classifiers also answer ``label``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import InvalidInputError
from modelport.runtimes.base import InspectedArtifact, Tensors
from modelport.runtimes.boosting import INPUT, boosted_outputs, features_of
from modelport.runtimes.formats import ArtifactFormat, is_lightgbm_text
from modelport.runtimes.plugins import InspectOptions, LoadOptions, missing_framework
from modelport.runtimes.signatures import signature_for_upload
from modelport.types import Datatype, Signature, TensorSpec

CLASSIFYING = ("binary", "multiclass", "multiclassova", "cross_entropy")


class LightGBMRuntime:
    name = "lightgbm"
    formats: tuple[str, ...] = (ArtifactFormat.LIGHTGBM_TEXT,)

    def detect(self, path: Path, head: bytes) -> str | None:
        return ArtifactFormat.LIGHTGBM_TEXT if is_lightgbm_text(head) else None

    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact:
        booster, objective = _load(path)
        import lightgbm

        actual = _signature(booster, objective)
        return InspectedArtifact(
            format=fmt,
            framework="lightgbm",
            framework_version=lightgbm.__version__,
            signature=signature_for_upload(options.signature, actual),
            params={
                "objective": objective,
                "classes": _classes(booster, objective),
                "trees": booster.num_trees(),
                "features": booster.num_feature(),
            },
        )

    def load(
        self, path: Path, fmt: str, signature: Signature, options: LoadOptions
    ) -> LightGBMModel:
        booster, _ = _load(path)
        return LightGBMModel(booster, signature, options.threads)


def _load(path: Path) -> tuple[Any, str]:
    """The booster and its objective's name."""
    try:
        import lightgbm
    except ImportError:
        raise missing_framework("lightgbm", "lightgbm", "a LightGBM model") from None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("the LightGBM model is not a text model file") from None
    try:
        booster = lightgbm.Booster(model_str=text)
    except Exception as exc:  # LightGBMError, or a failure to even decode its message
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise InvalidInputError(f"the LightGBM model could not be loaded: {reason}") from None
    return booster, _objective(text)


def _objective(text: str) -> str:
    """The objective's name from the model's header, e.g. ``binary`` (``binary
    sigmoid:1``)."""
    for line in text[:4096].splitlines():
        if line.startswith("objective="):
            return line.removeprefix("objective=").split(" ")[0]
    return "regression"


def _classes(booster: Any, objective: str) -> int:
    if objective not in CLASSIFYING:
        return 0
    return max(2, int(booster.num_model_per_iteration()))


def _signature(booster: Any, objective: str) -> Signature:
    classes = _classes(booster, objective)
    if classes > 2:
        predict = TensorSpec(name="predict", datatype=Datatype.FP64, shape=[-1, classes])
    else:
        predict = TensorSpec(name="predict", datatype=Datatype.FP64, shape=[-1])
    outputs = [predict]
    if classes:
        outputs.append(TensorSpec(name="label", datatype=Datatype.INT64, shape=[-1]))
    return Signature(
        inputs=[TensorSpec(name=INPUT, datatype=Datatype.FP64, shape=[-1, booster.num_feature()])],
        outputs=outputs,
    )


class LightGBMModel:
    finite_inputs_only = False  # NaN means "missing" to LightGBM

    def __init__(self, booster: Any, signature: Signature, threads: int = 1) -> None:
        self.booster = booster
        self.signature = signature
        self.default_outputs = ["predict"]
        self._threads = threads

    def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        features = features_of(inputs, np.float64)
        predicted = np.asarray(self.booster.predict(features, num_threads=self._threads))
        return boosted_outputs(predicted, outputs)

    def unload(self) -> None:
        self.booster = None
