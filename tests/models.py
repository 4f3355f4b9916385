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
