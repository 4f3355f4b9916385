"""Management API for models and aliases under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from modelport.api.auth import require
from modelport.api.state import services_of
from modelport.api.text import MAX_TAGS, Description, Name, TagKey, TagValue
from modelport.registry.references import validate_alias, validate_name
from modelport.types import AliasInfo, AliasMove, ModelInfo, Principal, Scope

router = APIRouter(prefix="/api/v1", tags=["models"])


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=MAX_TAGS)


class ModelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: Description | None = None
    tags: dict[TagKey, TagValue] | None = Field(default=None, max_length=MAX_TAGS)


class AliasTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: StrictInt = Field(ge=1, le=2**31 - 1)


@router.get("/models", summary="List models")
async def list_models(request: Request, _: Principal = require(Scope.READ)) -> list[ModelInfo]:
    return await run_in_threadpool(services_of(request).registry.list_models)


@router.post("/models", status_code=201, summary="Create a model")
async def create_model(
    body: ModelCreate, request: Request, principal: Principal = require(Scope.WRITE)
) -> ModelInfo:
    registry = services_of(request).registry
    return await run_in_threadpool(
        registry.create_model, body.name, body.description, body.tags, principal.name
    )


@router.get("/models/{name}", summary="Get a model")
async def get_model(name: str, request: Request, _: Principal = require(Scope.READ)) -> ModelInfo:
    validate_name(name)
    return await run_in_threadpool(services_of(request).registry.get_model, name)


@router.patch("/models/{name}", summary="Update a model's description or tags")
async def update_model(
    name: str, body: ModelUpdate, request: Request, _: Principal = require(Scope.WRITE)
) -> ModelInfo:
    validate_name(name)
    registry = services_of(request).registry
    return await run_in_threadpool(registry.update_model, name, body.description, body.tags)


@router.delete("/models/{name}", status_code=204, summary="Delete a model and its versions")
async def delete_model(
    name: str, request: Request, _: Principal = require(Scope.WRITE)
) -> Response:
    validate_name(name)
    services = services_of(request)
    await run_in_threadpool(services.registry.delete_model, name)
    await services.dataplane.models.unload(name)
    return Response(status_code=204)


@router.get("/models/{name}/aliases", summary="List a model's aliases")
async def list_aliases(
    name: str, request: Request, _: Principal = require(Scope.READ)
) -> dict[str, int]:
    validate_name(name)
    model = await run_in_threadpool(services_of(request).registry.get_model, name)
    return model.aliases


@router.put("/models/{name}/aliases/{alias}", summary="Point an alias at a version")
async def set_alias(
    name: str,
    alias: str,
    body: AliasTarget,
    request: Request,
    principal: Principal = require(Scope.WRITE),
) -> AliasInfo:
    validate_name(name)
    validate_alias(alias)
    registry = services_of(request).registry
    return await run_in_threadpool(registry.set_alias, name, alias, body.version, principal.name)


@router.delete("/models/{name}/aliases/{alias}", status_code=204, summary="Remove an alias")
async def remove_alias(
    name: str, alias: str, request: Request, principal: Principal = require(Scope.WRITE)
) -> Response:
    validate_name(name)
    validate_alias(alias)
    registry = services_of(request).registry
    await run_in_threadpool(registry.remove_alias, name, alias, principal.name)
    return Response(status_code=204)


@router.get("/models/{name}/alias-history", summary="Every move of the model's aliases")
async def alias_history(
    name: str, request: Request, alias: str | None = None, _: Principal = require(Scope.READ)
) -> list[AliasMove]:
    validate_name(name)
    return await run_in_threadpool(services_of(request).registry.alias_history, name, alias)
