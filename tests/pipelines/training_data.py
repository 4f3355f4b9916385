"""Small real datasets for the training tests, written as files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def diabetes_csv(path: Path) -> Path:
    """The tutorial's regression data: scikit-learn's diabetes set (442 rows, 10 features)."""
    from sklearn.datasets import load_diabetes

    load_diabetes(as_frame=True).frame.to_csv(path, index=False)
    return path


def customers_frame(rows: int = 240, seed: int = 3) -> pd.DataFrame:
    """Classification with text columns and missing values: will a customer churn?"""
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 80, rows).round(1)
    monthly = rng.uniform(10, 120, rows).round(2)
    city = rng.choice(["paris", "lyon", "nantes"], rows).astype(object)
    plan = rng.choice(["basic", "premium"], rows).astype(object)
    churn = np.where((plan == "basic") & (monthly > 60) | (age < 25), "yes", "no")
    age[rng.choice(rows, 15, replace=False)] = np.nan
    city[rng.choice(rows, 12, replace=False)] = None
    return pd.DataFrame(
        {"age": age, "monthly": monthly, "city": city, "plan": plan, "churn": churn}
    )


def customers_csv(path: Path) -> Path:
    customers_frame().to_csv(path, index=False)
    return path
