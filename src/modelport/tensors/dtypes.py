"""Mapping between V2 datatypes and numpy dtypes."""

from __future__ import annotations

import math

import numpy as np

from modelport.types import Datatype

NUMPY_DTYPES: dict[Datatype, np.dtype] = {
    Datatype.BOOL: np.dtype(np.bool_),
    Datatype.UINT8: np.dtype(np.uint8),
    Datatype.UINT16: np.dtype(np.uint16),
    Datatype.UINT32: np.dtype(np.uint32),
    Datatype.UINT64: np.dtype(np.uint64),
    Datatype.INT8: np.dtype(np.int8),
    Datatype.INT16: np.dtype(np.int16),
    Datatype.INT32: np.dtype(np.int32),
    Datatype.INT64: np.dtype(np.int64),
    Datatype.FP16: np.dtype(np.float16),
    Datatype.FP32: np.dtype(np.float32),
    Datatype.FP64: np.dtype(np.float64),
    Datatype.BYTES: np.dtype(object),
}

_BY_NUMPY = {dtype: datatype for datatype, dtype in NUMPY_DTYPES.items()}


def datatype_of(dtype: np.dtype) -> Datatype:
    """The V2 datatype that represents arrays of ``dtype`` (strings become BYTES)."""
    if dtype.kind in "USO":
        return Datatype.BYTES
    found = _BY_NUMPY.get(dtype)
    if found is None:
        raise TypeError(f"numpy dtype {dtype} has no V2 datatype")
    return found


SMALL = 32


def all_finite(array: np.ndarray) -> bool:
    """No NaN and no infinity in a floating-point array (small ones checked in Python,
    which costs less than two numpy calls)."""
    if array.size <= SMALL:
        return all(map(math.isfinite, array.ravel().tolist()))
    return bool(np.isfinite(array).all())
