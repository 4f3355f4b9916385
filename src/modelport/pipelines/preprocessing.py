"""Feature preparation chosen per column type: numeric columns are imputed and scaled,
text columns imputed and one-hot (or ordinal) encoded, in one ColumnTransformer that is
saved with the model, so that serving applies exactly what training did.

Two input layouts: when every feature is numeric the model takes one ``features`` matrix
(columns in ``FeatureLayout.columns`` order, which also converts to ONNX); with text
columns it takes a DataFrame, one named input per column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelport.errors import InvalidInputError
from modelport.pipeline_spec import PreprocessingSpec


@dataclass(frozen=True)
class FeatureLayout:
    columns: list[str]
    numeric: list[str]
    categorical: list[str]

    @property
    def is_matrix(self) -> bool:
        return not self.categorical


def choose_features(
    frame: Any, target: str, requested: list[str] | None, log: Any
) -> FeatureLayout:
    """The features to train on: the requested ones, or every column but the target
    (leaving out date columns, which need feature engineering first)."""
    from pandas.api import types

    missing = [name for name in requested or [] if name not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"feature column(s) {', '.join(missing[:10])} are not in the dataset; its columns "
            f"are {', '.join(map(str, list(frame.columns)[:50]))}"
        )
    columns = list(requested) if requested else [c for c in frame.columns if c != target]
    numeric, categorical, kept = [], [], []
    for name in columns:
        dtype = frame[name].dtype
        if types.is_datetime64_any_dtype(dtype):
            if requested:
                raise InvalidInputError(
                    f"feature '{name}' holds dates: derive numeric features from it first"
                )
            log(f"leaving out date column '{name}'")
            continue
        if types.is_bool_dtype(dtype) or types.is_numeric_dtype(dtype):
            numeric.append(str(name))
        else:
            categorical.append(str(name))
        kept.append(str(name))
    if not kept:
        raise InvalidInputError("there is no feature column to train on besides the target")
    return FeatureLayout(kept, numeric, categorical)


def model_input(frame: Any, layout: FeatureLayout) -> Any:
    """The rows as the model takes them: a float matrix, or a DataFrame whose text columns
    hold ``str`` values (missing ones as NaN)."""
    if layout.is_matrix:
        return frame[layout.columns].to_numpy(dtype=np.float64, na_value=np.nan)
    import pandas as pd

    data: dict[str, Any] = {}
    for name in layout.columns:
        column = frame[name]
        if name in layout.categorical:
            values = column.to_numpy(dtype=object, na_value=np.nan)
            data[name] = [v if isinstance(v, float) and np.isnan(v) else str(v) for v in values]
        else:
            data[name] = column.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.DataFrame(data, columns=layout.columns).astype(
        {name: object for name in layout.categorical}
    )


def _scaler(kind: str) -> Any:
    """The scaler for ``kind``; None for "none" (the step is left out: skl2onnx cannot
    convert a "passthrough" step)."""
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    scalers = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}
    return scalers[kind]() if kind in scalers else None


def without_scaling(preprocessor: Any) -> Any:
    """``preprocessor`` (unfitted) with its numeric scaling step left out: for models that
    split on thresholds, which scaling cannot help. It also keeps their ONNX form faithful:
    ONNX scales in float32, which moves values that sit exactly on a split threshold (a
    count of 3 rooms) to the other side of it."""
    for _, transformer, _ in preprocessor.transformers:
        steps = getattr(transformer, "steps", None)
        if steps is not None:
            transformer.steps = [step for step in steps if step[0] != "scale"]
    return preprocessor


def build_preprocessor(layout: FeatureLayout, spec: PreprocessingSpec) -> Any:
    """The ColumnTransformer for ``layout`` (selecting by position for a matrix)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    def select(names: list[str]) -> list[Any]:
        return [layout.columns.index(n) for n in names] if layout.is_matrix else list(names)

    numeric = spec.numeric
    imputer = (
        SimpleImputer(strategy="constant", fill_value=0.0)
        if numeric.impute == "zero"
        else SimpleImputer(strategy=numeric.impute)
    )
    parts: list[tuple[str, Any, list[Any]]] = []
    if layout.numeric:
        scaler = _scaler(numeric.scale)
        steps = [("impute", imputer)] + ([("scale", scaler)] if scaler is not None else [])
        parts.append(("numeric", Pipeline(steps), select(layout.numeric)))
    if layout.categorical:
        categorical = spec.categorical
        fill = (
            SimpleImputer(strategy="most_frequent")
            if categorical.impute == "most_frequent"
            else SimpleImputer(strategy="constant", fill_value="missing")
        )
        encoder = (
            OneHotEncoder(handle_unknown="ignore")
            if categorical.encode == "onehot"
            else OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        )
        steps = [("impute", fill), ("encode", encoder)]
        parts.append(("categorical", Pipeline(steps), select(layout.categorical)))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
