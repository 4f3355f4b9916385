"""The simple JSON endpoint of the classic Flask tutorial:
``{"features": [[...], ...]}`` → ``{"prediction": [...]}``, byte-for-byte the same shape,
so its clients keep working. The version used is named in response headers."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from modelport.api.auth import require
from modelport.api.body import read_json_object
from modelport.api.codec import rows_from_json
from modelport.api.rest.encoding import json_ready, json_response
from modelport.api.state import services_of
from modelport.errors import InvalidInputError, NotFoundError
from modelport.registry.references import Reference, parse_reference, parse_version_selector
from modelport.types import Principal, Scope

router = APIRouter(tags=["predict"])


async def _predict(request: Request, reference: Reference) -> Response:
    services = services_of(request)
    document = await read_json_object(request, services.settings.max_request_bytes)
    if "features" not in document:
        raise InvalidInputError('the body needs a "features" field: {"features": [[...], ...]}')
    features = rows_from_json(document["features"])
    prediction = await services.dataplane.predict(reference, features)
    version = prediction.version
    return json_response(
        {"prediction": json_ready(prediction.outputs["predict"])},
        headers={"X-Model-Name": version.model, "X-Model-Version": str(version.version)},
    )


@router.post("/predict", summary="Predict with the default model")
async def predict_default(request: Request, _: Principal = require(Scope.PREDICT)) -> Response:
    default = services_of(request).settings.default_model
    if not default:
        raise NotFoundError(
            "no default model is set; use POST /models/{name}/predict or start the server "
            "with MODELPORT_DEFAULT_MODEL"
        )
    return await _predict(request, parse_reference(default))


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
