"""Raw tensor bytes, as the binary tensor data extension defines them: little-endian,
row-major, no padding; BOOL is one byte; each BYTES element is a 4-byte little-endian
length followed by its bytes; BF16 travels as its raw 16-bit patterns."""

from __future__ import annotations

import struct

import numpy as np

from modelport.errors import InvalidInputError
from modelport.tensors.dtypes import NUMPY_DTYPES
from modelport.types import Datatype

BF16_STORAGE = np.dtype("<u2")


def element_count(shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def storage_dtype(datatype: Datatype) -> np.dtype:
    if datatype is Datatype.BF16:
        return BF16_STORAGE
    return NUMPY_DTYPES[datatype].newbyteorder("<")


def decode_tensor(name: str, datatype: Datatype, shape: list[int], raw: memoryview) -> np.ndarray:
    """An array over ``raw`` (no copy for fixed-size types)."""
    count = element_count(shape)
    if datatype is Datatype.BYTES:
        return decode_bytes_elements(name, raw, count).reshape(shape)
    dtype = storage_dtype(datatype)
    if len(raw) != count * dtype.itemsize:
        raise InvalidInputError(
            f"input '{name}': shape {shape} of {datatype.value} needs "
            f"{count * dtype.itemsize} bytes but binary_data_size is {len(raw)}"
        )
    array = np.frombuffer(raw, dtype=dtype, count=count)
    if datatype is Datatype.BOOL:
        as_bytes = array.view(np.uint8)
        if as_bytes.size and as_bytes.max() > 1:
            raise InvalidInputError(f"input '{name}': BOOL bytes must be 0 or 1")
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array.reshape(shape)


def decode_bytes_elements(name: str, raw: memoryview, count: int) -> np.ndarray:
    items: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidInputError(f"input '{name}': truncated BYTES length prefix")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInputError(
                f"input '{name}': a BYTES element claims {length} bytes but only "
                f"{len(raw) - offset} remain"
            )
        items.append(bytes(raw[offset : offset + length]))
        offset += length
    if len(items) != count:
        raise InvalidInputError(
            f"input '{name}': shape needs {count} BYTES elements but the data has {len(items)}"
        )
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def encode_tensor(datatype: Datatype, array: np.ndarray) -> bytes:
    if datatype is Datatype.BYTES:
        parts: list[bytes] = []
        for item in array.reshape(-1).tolist():
            data = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(struct.pack("<I", len(data)))
            parts.append(data)
        return b"".join(parts)
    dtype = storage_dtype(datatype)
    return np.ascontiguousarray(array, dtype=dtype).tobytes()
