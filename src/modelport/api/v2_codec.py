"""Open Inference Protocol V2 JSON documents ↔ DataPlane types."""

from __future__ import annotations

from typing import Any

from modelport.api.codec import check_shape, parse_datatype, tensor_from_json
from modelport.api.rest.encoding import json_ready
from modelport.errors import InvalidInputError
from modelport.serving.inference import InferenceRequest, InferenceResponse, Tensor


def decode_request(document: dict[str, Any]) -> InferenceRequest:
    """A V2 JSON inference request as DataPlane types."""
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError("'inputs' must be a non-empty list of tensors")
    tensors: list[Tensor] = []
    seen: set[str] = set()
    for position, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise InvalidInputError(f"inputs[{position}] must be an object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"inputs[{position}] needs a 'name' string")
        if name in seen:
            raise InvalidInputError(f"input '{name}' appears more than once")
        seen.add(name)
        for required in ("shape", "datatype", "data"):
            if required not in item:
                raise InvalidInputError(f"input '{name}' is missing '{required}'")
        shape = check_shape(item["shape"], name)
        datatype = parse_datatype(item["datatype"], name)
        data = tensor_from_json(name, datatype, shape, item["data"])
        tensors.append(Tensor(name=name, datatype=datatype, shape=shape, data=data))
    return InferenceRequest(
        inputs=tensors,
        outputs=_requested_outputs(document.get("outputs")),
        id=_request_id(document.get("id")),
        parameters=_parameters(document.get("parameters")),
    )


def _requested_outputs(outputs: Any) -> list[str] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise InvalidInputError("'outputs' must be a list of objects with a 'name'")
    return [o["name"] for o in outputs]


def _request_id(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidInputError("'id' must be a string")


def _parameters(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError("'parameters' must be an object")
    return value


def encode_response(response: InferenceResponse) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": str(response.model_version),
        "outputs": [
            {
                "name": tensor.name,
                "datatype": tensor.datatype.value,
                "shape": tensor.shape,
                "data": json_ready(tensor.data.reshape(-1)),
            }
            for tensor in response.outputs
        ],
    }
    if response.id is not None:
        body["id"] = response.id
    return body
