"""V2 inference requests for the SDK: numpy arrays and pandas frames in, arrays out.

Large numeric tensors travel with the binary tensor data extension (raw bytes after a
JSON header); small ones and strings as JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelport.errors import InvalidInputError
from modelport.tensors.binary import decode_tensor, encode_tensor
from modelport.tensors.dtypes import NUMPY_DTYPES, datatype_of
from modelport.types import Datatype

BINARY_THRESHOLD_BYTES = 4096
"""Numeric tensors at least this large are sent as raw bytes."""


def as_named_arrays(inputs: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Named arrays and request parameters from an array, a DataFrame or a mapping."""
    if isinstance(inputs, dict):
        return {name: np.asarray(value) for name, value in inputs.items()}, {}
    if hasattr(inputs, "columns") and hasattr(inputs, "to_numpy"):  # a pandas DataFrame
        arrays = {}
        for column in inputs.columns:
            values = inputs[column].to_numpy()
            arrays[str(column)] = values.astype(str) if values.dtype.kind == "O" else values
        return arrays, {"content_type": "pd"}
    return {"input-0": np.asarray(inputs)}, {}


def build_request(
    arrays: dict[str, np.ndarray],
    parameters: dict[str, Any],
    outputs: list[str] | None,
    binary: bool | None,
) -> tuple[bytes, dict[str, str]]:
    """The request body and headers; ``binary`` None picks binary for large tensors."""
    import orjson

    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    use_binary_outputs = False
    for name, array in arrays.items():
        datatype = datatype_of(array.dtype)
        entry: dict[str, Any] = {
            "name": name,
            "datatype": datatype.value,
            "shape": list(array.shape),
        }
        numeric = datatype is not Datatype.BYTES
        as_binary = (
            binary if binary is not None else numeric and array.nbytes >= BINARY_THRESHOLD_BYTES
        )
        if as_binary:
            raw = encode_tensor(datatype, array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
            use_binary_outputs = True
        elif datatype is Datatype.BYTES:
            entry["data"] = [_text(item) for item in array.reshape(-1).tolist()]
        else:
            entry["data"] = array.reshape(-1).tolist()
        entries.append(entry)
    document: dict[str, Any] = {"inputs": entries}
    if use_binary_outputs:
        parameters = {**parameters, "binary_data_output": True}
    if parameters:
        document["parameters"] = parameters
    if outputs:
        document["outputs"] = [{"name": name} for name in outputs]
    header = orjson.dumps(document)
    if not chunks:
        return header, {"Content-Type": "application/json"}
    return b"".join([header, *chunks]), {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }


def _text(item: Any) -> str:
    return item.decode("utf-8") if isinstance(item, bytes) else str(item)


def parse_response(
    body: bytes, header_length: str | None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The response document and its outputs as arrays (binary or JSON)."""
    import orjson

    split = int(header_length) if header_length else len(body)
    document = orjson.loads(body[:split])
    raw = memoryview(body)[split:]
    offset = 0
    arrays: dict[str, np.ndarray] = {}
    for output in document.get("outputs", []):
        datatype = Datatype(output["datatype"])
        shape = list(output["shape"])
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            arrays[output["name"]] = decode_tensor(
                output["name"], datatype, shape, raw[offset : offset + size]
            )
            offset += size
        elif datatype is Datatype.BYTES:
            arrays[output["name"]] = np.asarray(output["data"], dtype=object).reshape(shape)
        elif datatype in NUMPY_DTYPES:
            arrays[output["name"]] = np.asarray(
                output["data"], dtype=NUMPY_DTYPES[datatype]
            ).reshape(shape)
        else:
            raise InvalidInputError(f"output {output['name']} has datatype {datatype} without data")
    return document, arrays
