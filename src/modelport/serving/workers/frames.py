"""The wire between the server and its predict processes: no pickling.

A request is a small JSON header sent over the socket; the input arrays themselves are
copied once into a shared-memory segment the worker maps, and read there without a copy.
Every message is framed: an 8-byte length, a 4-byte header length, the JSON header, then
raw buffers (a reply's outputs). Arrays of objects (BYTES) travel as length-prefixed elements.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

from modelport.runtimes.base import Tensors
from modelport.tensors.binary import decode_bytes_elements, encode_tensor
from modelport.types import Datatype

ALIGNMENT = 64
_LENGTH = struct.Struct("<I")
_FRAME = struct.Struct("<Q")
FRAME_PREFIX = _FRAME.size

Spec = list[Any]
"""``[name, dtype, shape, offset, nbytes]``; dtype is a numpy type string, ``"bytes"`` or
``"str"`` for object arrays."""


def aligned(size: int) -> int:
    return (size + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def object_kind(array: np.ndarray) -> str:
    first = array.reshape(-1)[:1].tolist()
    return "str" if first and isinstance(first[0], str) else "bytes"


def serialized(array: np.ndarray) -> tuple[str, bytes | np.ndarray]:
    """The dtype tag and the bytes (or a contiguous array) that carry ``array``."""
    if array.dtype == object:
        return object_kind(array), encode_tensor(Datatype.BYTES, array)
    return array.dtype.str, np.ascontiguousarray(array)


def array_from(tag: str, shape: list[int], buffer: Any, offset: int, nbytes: int) -> np.ndarray:
    """The array a spec describes, over ``buffer`` (no copy for numeric types)."""
    if tag in ("bytes", "str"):
        count = int(np.prod(shape)) if shape else 1
        raw = memoryview(buffer)[offset : offset + nbytes]
        array = decode_bytes_elements("tensor", raw, count)
        if tag == "str":
            array[:] = [item.decode("utf-8") for item in array]
        return array.reshape(shape)
    return np.ndarray(shape, dtype=np.dtype(tag), buffer=buffer, offset=offset)


def write_arrays(tensors: Tensors, buffer: memoryview) -> list[Spec]:
    """Copy ``tensors`` into ``buffer`` (which must hold ``size_of(...)``); their specs."""
    specs: list[Spec] = []
    offset = 0
    for name, array in tensors.items():
        tag, data = serialized(array)
        if isinstance(data, np.ndarray):
            nbytes = data.nbytes
            target = np.ndarray(data.shape, dtype=data.dtype, buffer=buffer, offset=offset)
            target[...] = data
        else:
            nbytes = len(data)
            buffer[offset : offset + nbytes] = data
        specs.append([name, tag, list(array.shape), offset, nbytes])
        offset = aligned(offset + nbytes)
    return specs


def size_of(tensors: Tensors) -> int:
    """Bytes ``write_arrays`` needs (object arrays are measured by encoding them)."""
    total = 0
    for array in tensors.values():
        if array.dtype == object:
            total += aligned(len(encode_tensor(Datatype.BYTES, array)))
        else:
            total += aligned(array.nbytes)
    return total


def read_arrays(specs: list[Spec], buffer: Any) -> Tensors:
    return {name: array_from(tag, shape, buffer, at, size) for name, tag, shape, at, size in specs}


def reply(seq: int, tensors: Tensors) -> list[bytes | memoryview]:
    """One reply message holding every output (header, then each output's bytes)."""
    buffers: list[bytes | memoryview] = []
    specs: list[Spec] = []
    offset = 0
    for name, array in tensors.items():
        tag, data = serialized(array)
        view = memoryview(data).cast("B") if isinstance(data, np.ndarray) else memoryview(data)  # type: ignore[arg-type]
        specs.append([name, tag, list(array.shape), offset, view.nbytes])
        buffers.append(view)
        offset += view.nbytes
    return message({"seq": seq, "outputs": specs}, buffers)


def message(
    header: dict[str, Any], buffers: list[bytes | memoryview] | None = None
) -> list[bytes | memoryview]:
    """A framed message: total length, header length, JSON header, then raw buffers."""
    encoded = orjson.dumps(header)
    payload = [_LENGTH.pack(len(encoded)), encoded, *(buffers or [])]
    total = sum(len(part) if isinstance(part, bytes) else part.nbytes for part in payload)
    return [_FRAME.pack(total), *payload]


def parse(payload: bytes) -> tuple[dict[str, Any], memoryview]:
    """The header of a message (its frame length already read) and the bytes after it."""
    (length,) = _LENGTH.unpack_from(payload)
    view = memoryview(payload)
    return orjson.loads(view[4 : 4 + length]), view[4 + length :]


def frame_length(prefix: bytes) -> int:
    (length,) = _FRAME.unpack(prefix)
    return int(length)
