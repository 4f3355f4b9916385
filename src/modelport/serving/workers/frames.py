"""The wire between the server and its predict processes: no pickling.

A request is a small JSON header sent over the pipe; the input arrays themselves are
copied once into a shared-memory segment the worker maps, and read there without a copy.
A reply is one pipe message: a 4-byte header length, a JSON header, then each output's
raw bytes. Arrays of objects (BYTES) travel as length-prefixed elements.
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


def reply(seq: int, tensors: Tensors) -> bytes:
    """One reply message holding every output."""
    parts: list[bytes | np.ndarray] = []
    specs: list[Spec] = []
    offset = 0
    for name, array in tensors.items():
        tag, data = serialized(array)
        nbytes = data.nbytes if isinstance(data, np.ndarray) else len(data)
        specs.append([name, tag, list(array.shape), offset, nbytes])
        parts.append(data)
        offset += nbytes
    header = orjson.dumps({"seq": seq, "outputs": specs})
    buffers = [memoryview(part).cast("B") for part in parts]  # type: ignore[arg-type]
    return b"".join([_LENGTH.pack(len(header)), header, *buffers])


def error_reply(seq: int, code: str, message: str) -> bytes:
    header = orjson.dumps({"seq": seq, "error": code, "message": message})
    return _LENGTH.pack(len(header)) + header


def parse_reply(message: bytes) -> tuple[dict[str, Any], memoryview]:
    """The header and the payload that follows it."""
    (length,) = _LENGTH.unpack_from(message)
    view = memoryview(message)
    return orjson.loads(view[4 : 4 + length]), view[4 + length :]
