"""What the gradient-boosting runtimes (XGBoost, LightGBM) share: one input ``features``
in which NaN is a missing value (infinities are refused), and the outputs ``predict``
(values, or class probabilities) and, for classifiers, ``label``."""

from __future__ import annotations

import numpy as np

from modelport.errors import InvalidInputError
from modelport.runtimes.base import Tensors

INPUT = "features"


def features_of(inputs: Tensors, dtype: type[np.floating]) -> np.ndarray:
    """The input matrix as the framework wants it."""
    features = np.ascontiguousarray(inputs[INPUT], dtype=dtype)
    if np.isinf(features).any():
        raise InvalidInputError(f"input '{INPUT}' contains infinite values")
    return features


def boosted_outputs(
    predicted: np.ndarray, outputs: frozenset[str], threshold: float | None = 0.5
) -> Tensors:
    """``predict`` and ``label`` from a prediction: labels are the most probable class of
    each row of probabilities, a 1-D score above ``threshold`` (None: the scores are the
    labels already)."""
    results: Tensors = {}
    if "predict" in outputs:
        results["predict"] = predicted
    if "label" in outputs:
        if predicted.ndim == 2:
            labels: np.ndarray = np.argmax(predicted, axis=1)
        elif threshold is None:
            labels = predicted
        else:
            labels = predicted > threshold
        results["label"] = labels.astype(np.int64)
    return results
