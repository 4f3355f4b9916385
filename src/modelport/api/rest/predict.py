"""The simple JSON endpoint of the classic Flask tutorial:
``{"features": [[...], ...]}`` → ``{"prediction": [...]}``, byte-for-byte the same shape,
so its clients keep working. The version used is named in response headers."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from modelport.api.auth import require
from modelport.api.body import read_body
from modelport.api.handlers import default_reference, handle_predict
from modelport.api.rest.encoding import reply_response, request_meta
from modelport.api.state import services_of
from modelport.registry.references import Reference, parse_reference, parse_version_selector
from modelport.types import Principal, Scope

router = APIRouter(tags=["predict"])


async def _predict(request: Request, reference: Reference) -> Response:
    services = services_of(request)
    body = await read_body(request, services.settings.max_request_bytes)
    return reply_response(await handle_predict(services, reference, body, request_meta(request)))


@router.post("/predict", summary="Predict with the default model")
async def predict_default(request: Request, _: Principal = require(Scope.PREDICT)) -> Response:
    return await _predict(request, default_reference(services_of(request)))


@router.post("/invocations", summary="MLflow scoring protocol, default model")
async def invocations(request: Request, _: Principal = require(Scope.PREDICT)) -> Response:
    """``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs`` →
    ``{"predictions": [...]}``, as MLflow's scoring server answers."""
    return await _predict(request, default_reference(services_of(request)))


@router.post("/models/{ref}/predict", summary="Predict with name, name@alias or name@N")
async def predict_reference(
    ref: str, request: Request, _: Principal = require(Scope.PREDICT)
) -> Response:
    return await _predict(request, parse_reference(ref))


@router.post("/models/{name}/versions/{version}/predict", summary="Predict with one version")
async def predict_version(
    name: str, version: str, request: Request, _: Principal = require(Scope.PREDICT)
) -> Response:
    return await _predict(request, parse_version_selector(name, version))
