"""Tabular request bodies for the simple endpoints: the Flask tutorial's ``features``, KServe
V1 / TF Serving ``instances``, and MLflow's ``dataframe_split``, ``dataframe_records`` and
``inputs``. Each becomes the model's input tensors, guided by its signature: a model
trained on a DataFrame takes one input per column, others one row matrix."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelport.api.codec import rows_from_json
from modelport.errors import InvalidInputError
from modelport.serving.inference import Tensor, tensor_of
from modelport.types import Signature

BODY_KEYS = ("features", "instances", "dataframe_split", "dataframe_records", "inputs")


def body_kind(document: dict[str, Any]) -> str:
    present = [key for key in BODY_KEYS if key in document]
    if len(present) != 1:
        raise InvalidInputError(
            'the body needs exactly one of "features" (e.g. {"features": [[...], ...]}), '
            '"instances", "dataframe_split", "dataframe_records" or "inputs"'
            + (f"; it has {', '.join(present)}" if present else "")
        )
    return present[0]


def _columns_of(signature: Signature) -> list[str] | None:
    names = [spec.name for spec in signature.inputs]
    if len(names) > 1 or signature.inputs[0].parameters.get("content_type") == "pd":
        return names
    return None


def _frame(kind: str, value: Any, columns: list[str] | None) -> Any:
    import pandas as pd

    try:
        if kind == "dataframe_split":
            if not isinstance(value, dict) or "data" not in value:
                raise InvalidInputError(
                    '"dataframe_split" must be {"columns": [...], "data": [[...], ...]}'
                )
            return pd.DataFrame(value["data"], columns=value.get("columns") or columns)
        if not isinstance(value, list) or not value:
            raise InvalidInputError(f'"{kind}" must be a non-empty list')
        if all(isinstance(row, dict) for row in value):
            return pd.DataFrame.from_records(value)
        return pd.DataFrame(value, columns=columns)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f'"{kind}" is not a table: {exc}') from None


def _column_array(frame: Any, name: str) -> np.ndarray:
    if name not in frame.columns:
        raise InvalidInputError(f"missing column '{name}'")
    array = np.asarray(frame[name].to_numpy())
    if array.dtype.kind == "O":
        if not all(isinstance(item, str) for item in array):
            raise InvalidInputError(f"column '{name}' mixes strings with other values")
        return np.asarray(array.astype(str))
    return array


def tensors_from_body(kind: str, value: Any, signature: Signature) -> list[Tensor]:
    """The model's input tensors from a simple-endpoint body of the given kind."""
    columns = _columns_of(signature)
    if columns is None and kind in ("features", "instances", "inputs"):
        if kind == "inputs" and isinstance(value, dict):
            return [tensor_of(name, rows_from_json(rows, name)) for name, rows in value.items()]
        return [tensor_of(signature.inputs[0].name, rows_from_json(value, kind))]
    frame = _frame(kind, value, columns)
    if columns is None:
        array = rows_from_json(frame.to_numpy().tolist(), kind)
        return [tensor_of(signature.inputs[0].name, array)]
    return [tensor_of(name, _column_array(frame, name)) for name in columns]
