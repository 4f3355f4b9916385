"""Open Inference Protocol V2 documents ↔ DataPlane types, JSON tensors and the binary
tensor data extension (JSON header followed by raw tensor bytes)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelport.api.codec import check_shape, flatten, parse_datatype, tensor_from_json
from modelport.api.rest.encoding import json_ready
from modelport.errors import InvalidInputError
from modelport.serving.inference import InferenceRequest, InferenceResponse, Tensor, tensor_of
from modelport.serving.repository import VersionStatistics
from modelport.tensors.binary import decode_tensor, element_count, encode_tensor, storage_dtype
from modelport.types import Datatype, VersionInfo


@dataclass
class OutputChoice:
    """Which outputs the caller asked for, and which of them should come back binary."""

    names: list[str] | None
    binary: dict[str, bool]
    binary_default: bool
    base64: dict[str, bool] = field(default_factory=dict)
    base64_default: bool = False


def decode_request(
    document: dict[str, Any], binary: memoryview | None = None
) -> tuple[InferenceRequest, OutputChoice]:
    """A V2 inference request as DataPlane types; ``binary`` holds the bytes after the
    JSON header, consumed by inputs with a ``binary_data_size`` parameter, in order."""
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError("'inputs' must be a non-empty list of tensors")
    tensors: list[Tensor] = []
    seen: set[str] = set()
    offset = 0
    for position, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise InvalidInputError(f"inputs[{position}] must be an object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"inputs[{position}] needs a 'name' string")
        if name in seen:
            raise InvalidInputError(f"input '{name}' appears more than once")
        seen.add(name)
        for required in ("shape", "datatype"):
            if required not in item:
                raise InvalidInputError(f"input '{name}' is missing '{required}'")
        shape = check_shape(item["shape"], name)
        datatype = parse_datatype(item["datatype"], name)
        parameters = _parameters(item.get("parameters"), f"input '{name}' parameters")
        size = parameters.get("binary_data_size")
        if size is not None:
            if "data" in item:
                raise InvalidInputError(f"input '{name}' has both 'data' and binary_data_size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidInputError(f"input '{name}': binary_data_size must be an integer")
            available = len(binary) if binary is not None else 0
            if offset + size > available:
                raise InvalidInputError(
                    f"input '{name}': binary_data_size {size} goes past the end of the body "
                    f"({available - offset} bytes left)"
                )
            assert binary is not None
            data = decode_tensor(name, datatype, shape, binary[offset : offset + size])
            offset += size
        elif "data" in item:
            if parameters.get("content_type") == "base64" and datatype is Datatype.BYTES:
                data = _base64_tensor(name, shape, item["data"])
            else:
                data = tensor_from_json(name, datatype, shape, item["data"])
        else:
            raise InvalidInputError(f"input '{name}' is missing 'data'")
        tensors.append(Tensor(name, datatype, shape, data, parameters))
    if binary is not None and offset != len(binary):
        raise InvalidInputError(
            f"the body has {len(binary) - offset} bytes after the last binary input; "
            "check binary_data_size and Inference-Header-Content-Length"
        )
    choice = output_choice(document)
    request = InferenceRequest(
        inputs=tensors,
        outputs=choice.names,
        id=_request_id(document.get("id")),
        parameters=_parameters(document.get("parameters"), "'parameters'"),
    )
    return request, choice


def _base64_tensor(name: str, shape: list[int], data: Any) -> np.ndarray:
    items = _base64_decoded(name, data)
    if len(items) != element_count(shape):
        raise InvalidInputError(
            f"input '{name}': shape {shape} needs {element_count(shape)} values but 'data' "
            f"has {len(items)}"
        )
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array.reshape(shape)


def _base64_decoded(name: str, data: Any) -> list[bytes]:
    decoded: list[bytes] = []
    for item in flatten(data if isinstance(data, list) else [data]):
        if not isinstance(item, str):
            raise InvalidInputError(f"input '{name}': base64 data must be strings")
        try:
            decoded.append(base64.b64decode(item, validate=True))
        except binascii.Error:
            raise InvalidInputError(f"input '{name}': {item[:32]!r} is not valid base64") from None
    return decoded


def stack_columns(request: InferenceRequest, input_name: str) -> None:
    """The "pd" content type for a model taking one row matrix: named 1-D inputs become
    the matrix's columns, in request order."""
    columns = []
    for tensor in request.inputs:
        column = tensor.data.reshape(len(tensor.data), -1) if tensor.data.ndim else tensor.data
        if column.ndim != 2 or column.shape[1] != 1:
            raise InvalidInputError(
                f"input '{tensor.name}': a pd column must have shape [N] or [N,1]"
            )
        columns.append(column)
    if len({len(column) for column in columns}) != 1:
        raise InvalidInputError("pd columns must all have the same number of rows")
    matrix = np.hstack(columns)
    request.inputs = [tensor_of(input_name, matrix)]


def output_choice(document: dict[str, Any]) -> OutputChoice:
    parameters = _parameters(document.get("parameters"), "'parameters'")
    default = parameters.get("binary_data_output", False)
    if not isinstance(default, bool):
        raise InvalidInputError("parameter binary_data_output must be true or false")
    base64_default = parameters.get("content_type") == "base64"
    outputs = document.get("outputs")
    if outputs is None:
        return OutputChoice(None, {}, default, base64_default=base64_default)
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise InvalidInputError("'outputs' must be a list of objects with a 'name'")
    binary: dict[str, bool] = {}
    as_base64: dict[str, bool] = {}
    for output in outputs:
        output_parameters = _parameters(output.get("parameters"), "output parameters")
        if "content_type" in output_parameters:
            as_base64[output["name"]] = output_parameters["content_type"] == "base64"
        flag = output_parameters.get("binary_data")
        if flag is not None:
            if not isinstance(flag, bool):
                raise InvalidInputError("output parameter binary_data must be true or false")
            binary[output["name"]] = flag
    return OutputChoice([o["name"] for o in outputs], binary, default, as_base64, base64_default)


def decode_raw_request(
    body: bytes, name: str, datatype: Datatype, shape: list[int]
) -> InferenceRequest:
    """The raw binary form: the whole body is the single input's bytes, batch of one."""
    free = [i for i, dim in enumerate(shape) if dim < 0]
    if len(free) > 1:
        raise InvalidInputError("a raw binary request needs a model input with at most one -1")
    concrete = [1 if dim < 0 else dim for dim in shape]
    if datatype is Datatype.BYTES:
        concrete = [1]
    elif free:
        itemsize = storage_dtype(datatype).itemsize
        fixed = element_count([dim for dim in concrete]) * itemsize
        if fixed == 0 or len(body) % fixed:
            raise InvalidInputError(
                f"raw binary body of {len(body)} bytes does not fit input '{name}' "
                f"of shape {shape} ({datatype.value})"
            )
        concrete[free[0]] = len(body) // fixed
    data = decode_tensor(name, datatype, concrete, memoryview(body))
    return InferenceRequest(inputs=[Tensor(name, datatype, concrete, data)])


def _request_id(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidInputError("'id' must be a string")


def _parameters(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{what} must be an object")
    return value


def encode_response(
    response: InferenceResponse, choice: OutputChoice | None = None
) -> tuple[dict[str, Any], list[bytes]]:
    """The JSON document and, for outputs asked for as binary, their raw bytes in order."""
    chunks: list[bytes] = []
    outputs: list[dict[str, Any]] = []
    for tensor in response.outputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype.value,
            "shape": tensor.shape,
        }
        wants_binary = (
            choice is not None and choice.binary.get(tensor.name, choice.binary_default)
        ) or tensor.datatype is Datatype.BF16
        if wants_binary:
            raw = encode_tensor(tensor.datatype, tensor.data)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        elif choice is not None and choice.base64.get(tensor.name, choice.base64_default):
            entry["data"] = [
                base64.b64encode(v if isinstance(v, bytes) else str(v).encode()).decode()
                for v in tensor.data.reshape(-1).tolist()
            ]
            entry["parameters"] = {"content_type": "base64"}
        else:
            entry["data"] = json_ready(tensor.data.reshape(-1))
        outputs.append(entry)
    body: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": str(response.model_version),
        "outputs": outputs,
    }
    if response.id is not None:
        body["id"] = response.id
    if response.parameters:
        body["parameters"] = response.parameters
    return body, chunks


PLATFORMS = {"sklearn": "sklearn_skops", "onnxruntime": "onnxruntime_onnx"}


def model_metadata(version: VersionInfo) -> dict[str, Any]:
    def tensors(specs: list[Any]) -> list[dict[str, Any]]:
        return [{"name": s.name, "datatype": s.datatype.value, "shape": s.shape} for s in specs]

    return {
        "name": version.model,
        "versions": [str(version.version)],
        "platform": PLATFORMS.get(version.framework, version.framework),
        "inputs": tensors(version.signature.inputs),
        "outputs": tensors(version.signature.outputs),
    }


def _duration(count: int, ns: int) -> dict[str, int]:
    return {"count": count, "ns": ns}


def encode_statistics(stats: list[VersionStatistics]) -> dict[str, Any]:
    """The statistics extension's ``{"model_stats": [...]}`` document."""
    model_stats = []
    for entry in stats:
        requests, batches = entry.requests, entry.batches
        model_stats.append(
            {
                "name": entry.name,
                "version": entry.version,
                "last_inference": requests.last_inference_ms,
                "inference_count": requests.inference_count,
                "execution_count": batches.execution_count,
                "inference_stats": {
                    "success": _duration(requests.success.count, requests.success.ns),
                    "fail": _duration(requests.fail.count, requests.fail.ns),
                    "queue": _duration(batches.queue.count, batches.queue.ns),
                    "compute_input": _duration(
                        requests.compute_input.count, requests.compute_input.ns
                    ),
                    "compute_infer": _duration(
                        batches.compute_infer.count, batches.compute_infer.ns
                    ),
                    "compute_output": _duration(
                        requests.compute_output.count, requests.compute_output.ns
                    ),
                    "cache_hit": _duration(0, 0),
                    "cache_miss": _duration(0, 0),
                },
                "batch_stats": [
                    {
                        "batch_size": size,
                        "compute_input": _duration(0, 0),
                        "compute_infer": _duration(item.compute_infer.count, item.compute_infer.ns),
                        "compute_output": _duration(0, 0),
                    }
                    for size, item in sorted(batches.by_batch_size.items())
                ],
            }
        )
    return {"model_stats": model_stats}
