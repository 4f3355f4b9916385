"""The example pipelines bench/training.py runs: each a dataset made here (no download)
and the spec the issue's tutorial would write for it.

- houses: regression on a house-price table whose price is not linear in its columns (a
  price per square metre that falls with the distance to the centre), the issue's spec
  as written (LinearRegression, Ridge, RandomForestRegressor; random search, 8 settings,
  3 folds; ONNX; alias `production` when r2 >= 0.8).
- churn: classification with text columns and missing values (ONNX is asked for, and the
  pipeline keeps scikit-learn because the model takes text columns).
- tumours: classification on scikit-learn's bundled breast-cancer table (30 numeric
  columns), so that a classifier winner goes through the ONNX optimization too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

SEARCH = {"method": "random", "n_iter": 8, "cv": 3}


@dataclass(frozen=True)
class Example:
    """One pipeline: the dataset it uploads and the spec it submits."""

    name: str
    summary: str
    make_frame: Callable[[], pd.DataFrame]
    spec: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.spec["register"]["model"])


def houses(rows: int = 2000, seed: int = 42) -> pd.DataFrame:
    """House prices: area, rooms, age, distance to the centre, floor, garden."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(30, 250, rows).round(1)
    rooms = np.clip(np.round(area / 35 + rng.normal(0, 0.8, rows)), 1, 8).astype(int)
    age = rng.uniform(0, 100, rows).round()
    distance = rng.gamma(2.0, 5.0, rows).round(2)
    floor = rng.integers(0, 11, rows)
    garden = (rng.random(rows) < 0.35).astype(int)
    per_m2 = 1800 + 5200 * np.exp(-distance / 8)
    price = area * per_m2 * (1 - 0.0025 * age) + 25_000 * garden + 4_000 * rooms
    price += rng.normal(0, 20_000, rows)
    return pd.DataFrame(
        {
            "area_m2": area,
            "rooms": rooms,
            "age_years": age,
            "distance_km": distance,
            "floor": floor,
            "garden": garden,
            "price": price.round(-2),
        }
    )


def churn(rows: int = 1500, seed: int = 7) -> pd.DataFrame:
    """Will a customer leave? Numbers, three text columns, missing ages and cities."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 80, rows).round(1)
    monthly = rng.uniform(10, 120, rows).round(2)
    tenure = rng.integers(1, 72, rows)
    calls = rng.poisson(1.5, rows)
    city = rng.choice(["paris", "lyon", "nantes", "lille", "nice"], rows).astype(object)
    plan = rng.choice(["basic", "standard", "premium"], rows, p=[0.5, 0.3, 0.2]).astype(object)
    payment = rng.choice(["card", "transfer", "cheque"], rows).astype(object)
    score = (
        0.03 * (monthly - 60)
        - 0.05 * (tenure - 24)
        + 0.6 * (calls - 1.5)
        + np.where(plan == "basic", 0.8, -0.4)
        + np.where(payment == "cheque", 0.7, 0.0)
        - 0.02 * (age - 45)
    )
    leaves = rng.random(rows) < 1 / (1 + np.exp(-score))
    age[rng.choice(rows, rows // 15, replace=False)] = np.nan
    city[rng.choice(rows, rows // 20, replace=False)] = None
    return pd.DataFrame(
        {
            "age": age,
            "monthly_fee": monthly,
            "tenure_months": tenure,
            "support_calls": calls,
            "city": city,
            "plan": plan,
            "payment": payment,
            "churn": np.where(leaves, "yes", "no"),
        }
    )


def tumours() -> pd.DataFrame:
    """scikit-learn's breast-cancer table (569 rows, 30 columns); 1 is benign."""
    from sklearn.datasets import load_breast_cancer

    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    return frame.rename(columns={"target": "benign"})


EXAMPLES = (
    Example(
        "houses",
        "regression, 2,000 rows, 6 numeric columns",
        houses,
        {
            "dataset": "houses",
            "target": "price",
            "task": "regression",
            "split": {"test_size": 0.2, "seed": 42},
            "candidates": ["LinearRegression", "Ridge", "RandomForestRegressor"],
            "search": {**SEARCH, "metric": "r2"},
            "optimize": {"onnx": True},
            "register": {"model": "house-price", "alias": "production"},
            "gate": "r2 >= 0.8",
        },
    ),
    Example(
        "churn",
        "classification, 1,500 rows, 4 numeric + 3 text columns, missing values",
        churn,
        {
            "dataset": "churn",
            "target": "churn",
            "split": {"test_size": 0.25, "seed": 7},
            "candidates": [
                "LogisticRegression",
                "RandomForestClassifier",
                "HistGradientBoostingClassifier",
            ],
            "search": {**SEARCH, "metric": "f1_macro"},
            "optimize": {"onnx": True},
            "register": {"model": "churn", "alias": "production"},
            "gate": "accuracy >= 0.7",
        },
    ),
    Example(
        "tumours",
        "classification, 569 rows, 30 numeric columns",
        tumours,
        {
            "dataset": "tumours",
            "target": "benign",
            "split": {"test_size": 0.2, "seed": 3},
            "candidates": [
                "LogisticRegression",
                "RandomForestClassifier",
                "HistGradientBoostingClassifier",
            ],
            "search": {**SEARCH, "metric": "accuracy"},
            "optimize": {"onnx": True},
            "register": {"model": "tumour", "alias": "production"},
            "gate": "accuracy >= 0.9",
        },
    ),
)


def scikit_learn_twin(example: Example, best: dict[str, Any]) -> dict[str, Any]:
    """The spec that registers the same winner in scikit-learn's format: the winning
    estimator with its winning setting only, the same split and seed (so the same model),
    no ONNX, under another model name and with no alias."""
    params = {name: [value] for name, value in best["params"].items()}
    spec = {key: value for key, value in example.spec.items() if key != "gate"}
    return {
        **spec,
        "candidates": [{"estimator": best["estimator"], "params": params}],
        "search": {"method": "grid", "cv": 2, "metric": example.spec["search"]["metric"]},
        "optimize": {"onnx": False},
        "register": {"model": f"{example.model}-sklearn"},
    }
