"""Open Inference Protocol V2 over REST (JSON tensors)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

import modelport
from modelport.api.auth import require
from modelport.api.body import read_json_object
from modelport.api.codec import check_shape, parse_datatype, tensor_from_json
from modelport.api.rest.encoding import json_ready, json_response
from modelport.api.state import services_of
from modelport.errors import InvalidInputError, ModelPortError
from modelport.registry.references import Reference, parse_version_selector
from modelport.serving.inference import InferenceRequest, InferenceResponse, Tensor
from modelport.types import Principal, Scope, VersionInfo

router = APIRouter(prefix="/v2", tags=["v2"])

EXTENSIONS: list[str] = []
PLATFORMS = {"sklearn": "sklearn_skops"}


@router.get("/health/live", summary="Server liveness (no key needed)")
async def live() -> Response:
    return json_response({"live": True})


@router.get("/health/ready", summary="Server readiness (no key needed)")
async def ready(request: Request) -> Response:
    is_ready = bool(getattr(request.app.state, "ready", False))
    return json_response({"ready": is_ready}, status_code=200 if is_ready else 503)


@router.get("", summary="Server metadata")
async def server_metadata(_: Principal = require(Scope.PREDICT)) -> Response:
    return json_response(
        {"name": "modelport", "version": modelport.__version__, "extensions": EXTENSIONS}
    )


def _model_metadata(version: VersionInfo) -> dict[str, Any]:
    def tensors(specs: list[Any]) -> list[dict[str, Any]]:
        return [
            {"name": s.name, "datatype": s.datatype.value, "shape": s.shape} for s in specs
        ]

    return {
        "name": version.model,
        "versions": [str(version.version)],
        "platform": PLATFORMS.get(version.framework, version.framework),
        "inputs": tensors(version.signature.inputs),
        "outputs": tensors(version.signature.outputs),
    }


async def _metadata(request: Request, reference: Reference) -> Response:
    version = await services_of(request).dataplane.resolve(reference)
    return json_response(_model_metadata(version))


async def _model_ready(request: Request, reference: Reference) -> Response:
    dataplane = services_of(request).dataplane
    version = await dataplane.resolve(reference)
    try:
        await dataplane.models.get(version)
        is_ready = True
    except ModelPortError:
        is_ready = False
    return json_response(
        {"name": version.model, "ready": is_ready}, status_code=200 if is_ready else 503
    )


@router.get("/models/{name}", summary="Model metadata")
async def model_metadata(
    name: str, request: Request, _: Principal = require(Scope.PREDICT)
) -> Response:
    return await _metadata(request, parse_version_selector(name, None))


@router.get("/models/{name}/versions/{version}", summary="Model version metadata")
async def version_metadata(
    name: str, version: str, request: Request, _: Principal = require(Scope.PREDICT)
) -> Response:
    return await _metadata(request, parse_version_selector(name, version))


@router.get("/models/{name}/ready", summary="Model readiness")
async def model_ready(
    name: str, request: Request, _: Principal = require(Scope.PREDICT)
) -> Response:
    return await _model_ready(request, parse_version_selector(name, None))


@router.get("/models/{name}/versions/{version}/ready", summary="Model version readiness")
async def version_ready(
    name: str, version: str, request: Request, _: Principal = require(Scope.PREDICT)
) -> Response:
    return await _model_ready(request, parse_version_selector(name, version))


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


async def _infer(request: Request, reference: Reference) -> Response:
    services = services_of(request)
    document = await read_json_object(request, services.settings.max_request_bytes)
    result = await services.dataplane.infer(reference, decode_request(document))
    return json_response(encode_response(result))


@router.post("/models/{name}/infer", summary="Inference")
async def infer(name: str, request: Request, _: Principal = require(Scope.PREDICT)) -> Response:
    return await _infer(request, parse_version_selector(name, None))


@router.post("/models/{name}/versions/{version}/infer", summary="Inference on one version")
async def infer_version(
    name: str, version: str, request: Request, _: Principal = require(Scope.PREDICT)
) -> Response:
    return await _infer(request, parse_version_selector(name, version))
