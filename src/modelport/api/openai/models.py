"""``GET /v1/models`` and ``GET /v1/models/{model}`` in OpenAI's shape: the models a key
may call through ``/v1`` (any key that may predict sees every model that has a version;
ModelPort has no per-model permissions). An id is a ModelPort reference: the plain name
lists the model, and ``name@alias`` or ``name@3`` may be retrieved too."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelport.api.auth import require
from modelport.api.rest.encoding import json_response
from modelport.api.state import services_of
from modelport.registry.references import parse_reference
from modelport.types import ModelInfo, Principal, Scope

router = APIRouter(prefix="/v1", tags=["openai"])


def model_object(model_id: str, info: ModelInfo) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": int(info.created_at.timestamp()),
        "owned_by": info.created_by or "modelport",
    }


@router.get("/models", summary="OpenAI model list: every model with a version")
async def list_models(request: Request, _: Principal = require(Scope.PREDICT)) -> Response:
    models = await run_in_threadpool(services_of(request).registry.list_models)
    data = [model_object(m.name, m) for m in models if m.latest_version is not None]
    return json_response({"object": "list", "data": data})


@router.get("/models/{model:path}", summary="OpenAI model: one model by reference")
async def retrieve_model(
    model: str, request: Request, _: Principal = require(Scope.PREDICT)
) -> Response:
    services = services_of(request)
    reference = parse_reference(model)
    await services.dataplane.resolve(reference)  # NotFoundError for a name or alias unknown
    info = await run_in_threadpool(services.registry.get_model, reference.name)
    return json_response(model_object(model, info))
