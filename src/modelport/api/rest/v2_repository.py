"""The V2 repository and statistics extensions over REST (model list, index, explicit
load/unload, per-version statistics). Included before the metadata routes so that
``/v2/models/stats`` is not read as a model called "stats"."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from modelport.api.auth import require
from modelport.api.body import parse_json
from modelport.api.rest.encoding import json_response
from modelport.api.state import services_of
from modelport.api.v2_codec import encode_statistics
from modelport.errors import InvalidInputError
from modelport.registry.references import parse_version_selector
from modelport.types import Principal, Scope

router = APIRouter(prefix="/v2", tags=["v2"])


class IndexRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ready: bool = False


class RepositoryRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    parameters: dict[str, Any] = Field(default_factory=dict)


Body = TypeVar("Body", bound=BaseModel)


async def _optional_body(request: Request, model: type[Body]) -> Body:
    """An optional JSON body, whatever its Content-Type (tritonclient sends none)."""
    raw = await request.body()
    if not raw.strip():
        return model()
    document = parse_json(raw)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise InvalidInputError(f"invalid request body: {exc.errors()[0]['msg']}") from None


@router.get("/models", summary="List models (repository index of the registry)")
async def list_models(request: Request, _: Principal = require(Scope.PREDICT)) -> Response:
    entries = await services_of(request).repository.index()
    return json_response({"models": [e.name for e in entries]})


@router.post("/repository/index", summary="Repository index: models, versions and states")
async def repository_index(request: Request, _: Principal = require(Scope.PREDICT)) -> Response:
    ready_only = (await _optional_body(request, IndexRequest)).ready
    entries = await services_of(request).repository.index(ready_only)
    return json_response(
        [
            {"name": e.name, "version": e.version, "state": e.state, "reason": e.reason}
            for e in entries
        ]
    )


@router.post("/repository/models/{name}/load", summary="Load a model (its default version)")
async def repository_load(
    name: str,
    request: Request,
    _: Principal = require(Scope.WRITE),
) -> Response:
    await _optional_body(request, RepositoryRequest)
    await services_of(request).repository.load(parse_version_selector(name, None).name)
    return json_response({})


@router.post("/repository/models/{name}/unload", summary="Unload a model")
async def repository_unload(
    name: str,
    request: Request,
    _: Principal = require(Scope.WRITE),
) -> Response:
    await _optional_body(request, RepositoryRequest)
    await services_of(request).repository.unload(parse_version_selector(name, None).name)
    return json_response({})


@router.get("/models/stats", summary="Statistics of every loaded model")
async def all_statistics(request: Request, _: Principal = require(Scope.PREDICT)) -> Response:
    stats = await services_of(request).repository.statistics(None)
    return json_response(encode_statistics(stats))


@router.get("/models/{name}/stats", summary="Statistics of a model")
async def model_statistics(
    name: str, request: Request, _: Principal = require(Scope.PREDICT)
) -> Response:
    reference = parse_version_selector(name, None)
    return json_response(
        encode_statistics(await services_of(request).repository.statistics(reference))
    )


@router.get("/models/{name}/versions/{version}/stats", summary="Statistics of a version")
async def version_statistics(
    name: str, version: str, request: Request, _: Principal = require(Scope.PREDICT)
) -> Response:
    reference = parse_version_selector(name, version)
    return json_response(
        encode_statistics(await services_of(request).repository.statistics(reference))
    )
