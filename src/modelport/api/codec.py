"""Conversion of JSON data to numpy arrays, with messages that say what to fix."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelport.errors import InvalidInputError
from modelport.tensors.dtypes import NUMPY_DTYPES
from modelport.types import Datatype

MAX_DIMENSION = 2**63 - 1


def rows_from_json(features: Any, field: str = "features") -> np.ndarray:
    """Turn the ``features`` of a simple /predict request into a numeric or text array."""
    if not isinstance(features, list):
        raise InvalidInputError(f"'{field}' must be a list of rows, e.g. [[1.0, 2.0, 3.0]]")
    if not features:
        raise InvalidInputError(f"'{field}' is empty; send at least one row")
    try:
        array = np.asarray(features)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInputError(
            f"'{field}' must be rows of equal length holding only numbers"
        ) from None
    if array.dtype.kind == "O":
        raise InvalidInputError(f"'{field}' must be rows of equal length holding only numbers")
    return array


def check_shape(shape: Any, name: str) -> list[int]:
    if not isinstance(shape, list) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) for dim in shape
    ):
        raise InvalidInputError(f"input '{name}': 'shape' must be a list of integers")
    for dim in shape:
        if dim < 0:
            raise InvalidInputError(f"input '{name}': shape {shape} has a negative dimension")
        if dim > MAX_DIMENSION:
            raise InvalidInputError(f"input '{name}': shape dimension {dim} is too large")
    return shape


def tensor_from_json(name: str, datatype: Datatype, shape: list[int], data: Any) -> np.ndarray:
    """Decode a V2 JSON tensor (nested or flat data) and check it against its shape."""
    expected = 1
    for dim in shape:
        expected *= dim
    if datatype is Datatype.BF16:
        raise InvalidInputError(
            f"input '{name}': BF16 cannot be sent as JSON; use the binary tensor extension"
        )
    if not isinstance(data, list):
        data = [data]
    if datatype is Datatype.BYTES:
        return _bytes_tensor(name, shape, expected, data)
    try:
        array = np.asarray(data)
        if array.dtype.kind == "f" and NUMPY_DTYPES[datatype].kind in "iu":
            array = _exact_integers(name, datatype, data)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInputError(
            f"input '{name}': 'data' must be a flat or evenly nested list of {datatype} values"
        ) from None
    if array.size != expected:
        raise InvalidInputError(
            f"input '{name}': shape {shape} needs {expected} values but 'data' has {array.size}"
        )
    array = _as_datatype(name, datatype, array)
    return array.reshape(shape)


def flatten(data: list[Any]) -> list[Any]:
    """The leaves of nested lists, in row-major order."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _bytes_tensor(name: str, shape: list[int], expected: int, data: list[Any]) -> np.ndarray:
    """BYTES from JSON strings, kept exactly (numpy's own string type would drop trailing
    NUL characters)."""
    flat = flatten(data)
    if not all(isinstance(item, str) for item in flat):
        raise InvalidInputError(f"input '{name}': BYTES data must be strings")
    if len(flat) != expected:
        raise InvalidInputError(
            f"input '{name}': shape {shape} needs {expected} values but 'data' has {len(flat)}"
        )
    array = np.empty(len(flat), dtype=object)
    array[:] = [item.encode("utf-8", "surrogatepass") for item in flat]
    return array.reshape(shape)


def _exact_integers(name: str, datatype: Datatype, data: list[Any]) -> np.ndarray:
    """Integers too large for int64 next to small ones make numpy pick float64 and lose
    precision; convert them exactly instead (or say which type they do not fit)."""
    flat = flatten(data)
    if not all(isinstance(item, int) and not isinstance(item, bool) for item in flat):
        raise InvalidInputError(f"input '{name}': {datatype} data must be integers")
    try:
        return np.array(flat, dtype=NUMPY_DTYPES[datatype])
    except OverflowError:
        raise InvalidInputError(f"input '{name}': a value is out of the {datatype} range") from None


def _as_datatype(name: str, datatype: Datatype, array: np.ndarray) -> np.ndarray:
    kind = array.dtype.kind
    if datatype is Datatype.BYTES:
        if kind != "U":
            raise InvalidInputError(f"input '{name}': BYTES data must be strings")
        return np.asarray([item.encode("utf-8") for item in array.ravel()], dtype=object)
    target = NUMPY_DTYPES[datatype]
    if datatype is Datatype.BOOL:
        if kind != "b":
            raise InvalidInputError(f"input '{name}': BOOL data must be true or false")
        return array
    if kind not in "biuf" or (target.kind in "iu" and kind == "f"):
        wanted = "integers" if target.kind in "iu" else "numbers"
        raise InvalidInputError(f"input '{name}': {datatype} data must be {wanted}")
    if target.kind in "iu" and array.size:
        info = np.iinfo(target)
        if array.min() < info.min or array.max() > info.max:
            raise InvalidInputError(
                f"input '{name}': a value is out of the {datatype} range [{info.min}, {info.max}]"
            )
    if array.dtype == target:
        return array
    if target.kind == "f" and kind == "f":
        with np.errstate(over="ignore"):
            converted = array.astype(target)
        if not np.isfinite(converted).all() and np.isfinite(array).all():
            raise InvalidInputError(f"input '{name}': a value is out of the {datatype} range")
        return converted
    return array.astype(target)


def parse_datatype(value: Any, name: str) -> Datatype:
    try:
        return Datatype(value)
    except ValueError:
        allowed = ", ".join(datatype.value for datatype in Datatype)
        raise InvalidInputError(
            f"input '{name}': unknown datatype {str(value)[:32]!r}; use one of {allowed}"
        ) from None
