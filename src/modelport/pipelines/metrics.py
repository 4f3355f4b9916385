"""Metrics by name: what the search optimizes, what the test split reports and what the
gate compares. Each is oriented by ``greater_is_better`` when candidates are ranked."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modelport.pipeline_spec import LOWER_IS_BETTER, metrics_for


def greater_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def _scores_for_auc(estimator: Any, features: Any) -> Any:
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(features)
        return proba[:, 1] if proba.shape[1] == 2 else proba
    if hasattr(estimator, "decision_function"):
        return estimator.decision_function(features)
    return None


def metric_value(metric: str, estimator: Any, features: Any, truth: Any) -> float:
    """``metric`` of a fitted estimator on ``features``; NaN when it cannot be computed
    (e.g. ROC AUC of a model without scores, or a fold holding one class)."""
    from sklearn import metrics

    if metric == "roc_auc":
        scores = _scores_for_auc(estimator, features)
        if scores is None:
            return math.nan
        try:
            multi = getattr(scores, "ndim", 1) > 1
            return float(
                metrics.roc_auc_score(truth, scores, multi_class="ovr" if multi else "raise")
            )
        except ValueError:
            return math.nan
    return prediction_metric(metric, truth, estimator.predict(features))


def prediction_metric(metric: str, truth: Any, predicted: Any) -> float:
    """A metric computed from predictions alone (every metric but ROC AUC)."""
    from sklearn import metrics

    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if metric == "r2":
        return float(metrics.r2_score(truth, predicted))
    if metric == "mse":
        return float(metrics.mean_squared_error(truth, predicted))
    if metric == "rmse":
        return math.sqrt(float(metrics.mean_squared_error(truth, predicted)))
    if metric == "mae":
        return float(metrics.mean_absolute_error(truth, predicted))
    if metric == "accuracy":
        return float(metrics.accuracy_score(truth, predicted))
    if metric == "balanced_accuracy":
        return float(metrics.balanced_accuracy_score(truth, predicted))
    average = metric.rpartition("_")[2]
    scorers = {
        "f1": metrics.f1_score,
        "precision": metrics.precision_score,
        "recall": metrics.recall_score,
    }
    score = scorers[metric.partition("_")[0]]
    return float(score(truth, predicted, average=average, zero_division=0))


def test_metrics(task: str, estimator: Any, features: Any, truth: Any) -> dict[str, float]:
    """Every metric of the task on the test split (those that can be computed)."""
    values = {name: metric_value(name, estimator, features, truth) for name in metrics_for(task)}
    return {name: round(value, 10) for name, value in values.items() if math.isfinite(value)}
