"""Management API for API keys (admin only), plus ``whoami`` for any key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from modelport.api.auth import require
from modelport.api.state import services_of
from modelport.api.text import Name
from modelport.types import CreatedKey, KeyInfo, Principal, Role, Scope

router = APIRouter(prefix="/api/v1", tags=["keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    role: Role
    rate_limit: float | None = Field(
        default=None,
        ge=0.01,
        le=1_000_000,
        strict=True,
        description="requests per second (default: the server's)",
    )


@router.get("/whoami", summary="The caller's key name and role")
async def whoami(principal: Principal = require(Scope.PREDICT)) -> Principal:
    return principal


@router.get("/keys", summary="List API keys (never their secrets)")
async def list_keys(request: Request, _: Principal = require(Scope.ADMIN)) -> list[KeyInfo]:
    return await run_in_threadpool(services_of(request).keys.list)


@router.post("/keys", status_code=201, summary="Create an API key; the secret is shown once")
async def create_key(
    body: KeyCreate, request: Request, principal: Principal = require(Scope.ADMIN)
) -> CreatedKey:
    keys = services_of(request).keys
    return await run_in_threadpool(
        keys.create, body.name, body.role, principal.name, None, body.rate_limit
    )


@router.delete("/keys/{key_id}", summary="Revoke an API key")
async def revoke_key(
    key_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    request: Request,
    _: Principal = require(Scope.ADMIN),
) -> KeyInfo:
    return await run_in_threadpool(services_of(request).keys.revoke, key_id)
