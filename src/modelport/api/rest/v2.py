"""Open Inference Protocol V2 over REST (JSON tensors)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from modelport.about import VERSION
from modelport.api import v2_codec
from modelport.api.auth import require
from modelport.api.body import read_body
from modelport.api.handlers import handle_infer
from modelport.api.rest.encoding import json_response, reply_response, request_meta
from modelport.api.state import services_of
from modelport.registry.references import Reference, parse_version_selector
from modelport.types import Principal, Scope

router = APIRouter(prefix="/v2", tags=["v2"])

EXTENSIONS = ["binary_tensor_data", "model_repository", "statistics", "parameters"]


@router.get("/health/live", summary="Server liveness (no key needed)")
async def live() -> Response:
    return json_response({"live": True})


@router.get("/health/ready", summary="Server readiness (no key needed)")
async def ready(request: Request) -> Response:
    is_ready = bool(getattr(request.app.state, "ready", False))
    return json_response({"ready": is_ready}, status_code=200 if is_ready else 503)


@router.get("", summary="Server metadata")
async def server_metadata(_: Principal = require(Scope.PREDICT)) -> Response:
    return json_response({"name": "modelport", "version": VERSION, "extensions": EXTENSIONS})


async def _metadata(request: Request, reference: Reference) -> Response:
    version = await services_of(request).dataplane.resolve(reference)
    return json_response(v2_codec.model_metadata(version))


async def _model_ready(request: Request, reference: Reference) -> Response:
    is_ready = await services_of(request).dataplane.is_ready(reference)
    return json_response(
        {"name": reference.name, "ready": is_ready}, status_code=200 if is_ready else 503
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


async def _infer(request: Request, reference: Reference) -> Response:
    services = services_of(request)
    body = await read_body(request, services.settings.max_request_bytes)
    reply = await handle_infer(services, reference, body, request_meta(request))
    return reply_response(reply)


@router.post("/models/{name}/infer", summary="Inference")
async def infer(name: str, request: Request, _: Principal = require(Scope.PREDICT)) -> Response:
    return await _infer(request, parse_version_selector(name, None))


@router.post("/models/{name}/versions/{version}/infer", summary="Inference on one version")
async def infer_version(
    name: str, version: str, request: Request, _: Principal = require(Scope.PREDICT)
) -> Response:
    return await _infer(request, parse_version_selector(name, version))
