"""The demo model of ``make serve``: the classic tutorial's LinearRegression on a synthetic
regression set split with train_test_split, registered with its test-set metrics."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelport.registry import Registry
from modelport.runtimes.loader import inspect_upload
from modelport.runtimes.sklearn_walk import import_skops_io
from modelport.types import DEFAULT_ALIAS, VersionInfo

DEMO_MODEL = "demo-linear"
N_FEATURES = 10
SEED = 42


@dataclass
class DemoModel:
    estimator: Any
    x_test: np.ndarray
    y_test: np.ndarray
    metrics: dict[str, float]


def train_demo_model() -> DemoModel:
    """Train the tutorial's LinearRegression (deterministic)."""
    from sklearn.datasets import make_regression
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
    from sklearn.model_selection import train_test_split

    x, y = make_regression(n_samples=1000, n_features=N_FEATURES, noise=10.0, random_state=SEED)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=SEED)
    estimator = LinearRegression().fit(x_train, y_train)
    predicted = estimator.predict(x_test)
    metrics = {
        "r2": float(r2_score(y_test, predicted)),
        "mae": float(mean_absolute_error(y_test, predicted)),
        "rmse": float(np.sqrt(mean_squared_error(y_test, predicted))),
    }
    return DemoModel(estimator, x_test, y_test, metrics)


def register_demo_model(registry: Registry) -> VersionInfo:
    """Train, save with skops, register as ``demo-linear`` and point ``production`` at it."""
    sio = import_skops_io()

    demo = train_demo_model()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "demo-linear.skops"
        sio.dump(demo.estimator, path)
        blob = registry.artifacts.put_file(path, max_bytes=path.stat().st_size)
        inspected = inspect_upload(path, allow_pickle=False, uploader_is_admin=True, signature=None)
    registry.create_model(
        DEMO_MODEL,
        description="The tutorial's LinearRegression on a synthetic regression set (demo).",
        tags={"demo": "true"},
        created_by="modelport",
    )
    version = registry.create_version(
        DEMO_MODEL,
        blob,
        inspected,
        metrics=demo.metrics,
        params={
            "dataset": "make_regression(n_samples=1000, n_features=10, noise=10)",
            "test_size": 0.2,
            "random_state": SEED,
        },
        description="LinearRegression trained by `modelport serve` on first start",
        created_by="modelport",
        create_model=False,
    )
    registry.set_alias(DEMO_MODEL, DEFAULT_ALIAS, version.version, by="modelport")
    return registry.get_version(DEMO_MODEL, version.version)
