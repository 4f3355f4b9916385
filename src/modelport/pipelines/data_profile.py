"""The reference data profile kept with a trained version: per feature, what the training
split looked like (quantiles of numbers, frequencies of categories), so that drift
detection can later compare live traffic with it."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelport.pipelines.preprocessing import FeatureLayout

QUANTILES = [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0]
TOP_CATEGORIES = 20


def _numeric(values: np.ndarray) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    summary: dict[str, Any] = {"type": "numeric", "missing": int(len(values) - len(present))}
    if len(present):
        summary["mean"] = float(present.mean())
        summary["std"] = float(present.std())
        summary["quantiles"] = dict(
            zip([str(q) for q in QUANTILES], np.quantile(present, QUANTILES).tolist(), strict=True)
        )
    return summary


def _categorical(values: Any) -> dict[str, Any]:
    counts = values.value_counts(dropna=True)
    total = max(1, int(counts.sum()))
    top = counts.head(TOP_CATEGORIES)
    return {
        "type": "categorical",
        "missing": int(values.isna().sum()),
        "distinct": len(counts),
        "top": {str(k): round(int(v) / total, 6) for k, v in top.items()},
    }


def reference_profile(train_frame: Any, layout: FeatureLayout) -> dict[str, Any]:
    profile: dict[str, Any] = {"rows": len(train_frame), "features": {}}
    for name in layout.columns:
        column = train_frame[name]
        profile["features"][name] = (
            _categorical(column)
            if name in layout.categorical
            else _numeric(column.to_numpy(dtype=np.float64, na_value=np.nan))
        )
    return profile
