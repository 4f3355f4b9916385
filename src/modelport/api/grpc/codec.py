"""Protobuf messages of the V2 gRPC protocol ↔ DataPlane types."""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import json_format

from modelport.api.codec import check_shape, parse_datatype
from modelport.api.grpc.protocol import inference_pb2 as pb
from modelport.errors import InvalidInputError
from modelport.serving.inference import InferenceRequest, InferenceResponse, Tensor
from modelport.tensors.binary import decode_tensor, element_count, encode_tensor
from modelport.tensors.dtypes import NUMPY_DTYPES
from modelport.types import Datatype

# Which typed ``contents`` field carries each datatype when raw contents are not used.
_CONTENTS_FIELD: dict[Datatype, str] = {
    Datatype.BOOL: "bool_contents",
    Datatype.INT8: "int_contents",
    Datatype.INT16: "int_contents",
    Datatype.INT32: "int_contents",
    Datatype.INT64: "int64_contents",
    Datatype.UINT8: "uint_contents",
    Datatype.UINT16: "uint_contents",
    Datatype.UINT32: "uint_contents",
    Datatype.UINT64: "uint64_contents",
    Datatype.FP32: "fp32_contents",
    Datatype.FP64: "fp64_contents",
    Datatype.BYTES: "bytes_contents",
}


# The protobuf element type of each contents field, so that large 64-bit values stay exact.
_WIRE_DTYPES: dict[str, Any] = {
    "bool_contents": np.bool_,
    "int_contents": np.int32,
    "int64_contents": np.int64,
    "uint_contents": np.uint32,
    "uint64_contents": np.uint64,
    "fp32_contents": np.float32,
    "fp64_contents": np.float64,
}


def parameters_of(message_parameters: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, parameter in message_parameters.items():
        kind = parameter.WhichOneof("parameter_choice")
        values[key] = getattr(parameter, kind) if kind else None
    return values


def _typed_contents(name: str, datatype: Datatype, shape: list[int], contents: Any) -> np.ndarray:
    field = _CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidInputError(
            f"input '{name}': {datatype.value} must be sent in raw_input_contents"
        )
    values = getattr(contents, field)
    count = element_count(shape)
    if len(values) != count:
        raise InvalidInputError(
            f"input '{name}': shape {shape} needs {count} values but {field} has {len(values)}"
        )
    if datatype is Datatype.BYTES:
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    target = NUMPY_DTYPES[datatype]
    wide = np.array(values, dtype=_WIRE_DTYPES[field])
    if target.kind in "iu" and wide.size:
        info = np.iinfo(target)
        if wide.min() < info.min or wide.max() > info.max:
            raise InvalidInputError(f"input '{name}': a value is out of the {datatype} range")
    return wide.astype(target).reshape(shape)


def decode_infer_request(request: Any) -> InferenceRequest:
    """A ``ModelInferRequest`` as DataPlane types (raw contents decoded without copies)."""
    if not request.inputs:
        raise InvalidInputError("the request has no inputs")
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidInputError(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs"
        )
    tensors: list[Tensor] = []
    seen: set[str] = set()
    for position, item in enumerate(request.inputs):
        name = item.name
        if not name:
            raise InvalidInputError(f"inputs[{position}] needs a name")
        if name in seen:
            raise InvalidInputError(f"input '{name}' appears more than once")
        seen.add(name)
        shape = check_shape(list(item.shape), name)
        datatype = parse_datatype(item.datatype, name)
        if raw:
            if item.HasField("contents"):
                raise InvalidInputError("use either raw_input_contents or contents, not both")
            data = decode_tensor(name, datatype, shape, memoryview(raw[position]))
        else:
            data = _typed_contents(name, datatype, shape, item.contents)
        tensors.append(Tensor(name, datatype, shape, data, parameters_of(item.parameters)))
    outputs = [output.name for output in request.outputs] or None
    if outputs is not None and len(set(outputs)) != len(outputs):
        raise InvalidInputError("an output is requested more than once")
    return InferenceRequest(
        inputs=tensors,
        outputs=outputs,
        id=request.id or None,
        parameters=parameters_of(request.parameters),
    )


def encode_infer_response(response: InferenceResponse) -> Any:
    """A ``ModelInferResponse`` carrying every output in ``raw_output_contents``."""
    message = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=str(response.model_version),
        id=response.id or "",
    )
    for tensor in response.outputs:
        message.outputs.add(name=tensor.name, datatype=tensor.datatype.value, shape=tensor.shape)
        message.raw_output_contents.append(encode_tensor(tensor.datatype, tensor.data))
    return message


def from_document(document: dict[str, Any], message_type: Any) -> Any:
    """Fill a protobuf message from the REST adapter's JSON document of the same shape."""
    return json_format.ParseDict(document, message_type(), ignore_unknown_fields=True)
