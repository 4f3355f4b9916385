"""Every route declares the scope it needs with ``require(scope)``; a test walks the app
and fails on any route without one. Keys come as ``Authorization: Bearer <key>``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from modelport.access.roles import role_allows
from modelport.api.state import Services
from modelport.errors import ForbiddenError, UnauthenticatedError
from modelport.types import Principal, Role, Scope

ANONYMOUS_ADMIN = Principal(key_id=None, name="anonymous (--no-auth)", role=Role.ADMIN)
PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})


class ScopeCheck:
    """A FastAPI dependency that authenticates the caller and checks one scope."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, connection: HTTPConnection) -> Principal:
        services: Services = connection.app.state.services
        return await authorize(services, connection.headers.get("authorization"), self.scope)


async def authorize(services: Services, authorization: str | None, scope: Scope) -> Principal:
    """The caller behind an ``Authorization`` header, if its role grants ``scope``."""
    principal = authorize_now(services, authorization, scope)
    if principal is not None:
        return principal
    key = bearer_key(authorization)
    shared = services.key_lookups.get(key) or _start_lookup(services, key, services.keys.verify)
    principal = await asyncio.shield(shared)
    return _allowed(services, principal, scope)


def _start_lookup(
    services: Services, key: str, lookup: Callable[[str], Principal | None]
) -> asyncio.Future[Principal | None]:
    """The key's principal from the database, off the event loop; requests that miss the
    cache meanwhile await this same lookup instead of starting one each."""
    lookups = services.key_lookups
    shared = asyncio.ensure_future(run_in_threadpool(lookup, key))

    def finished(done: asyncio.Future[Principal | None]) -> None:
        lookups.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: a refresh that fails may have nobody awaiting it

    shared.add_done_callback(finished)
    lookups[key] = shared
    return shared


def authorize_now(services: Services, authorization: str | None, scope: Scope) -> Principal | None:
    """``authorize`` without I/O: None when the key is not in the cache (nothing is
    checked or counted then; ``authorize`` looks it up). A key in use is looked up again
    shortly before its entry expires, so that under load its requests keep this path."""
    if services.settings.no_auth:
        return ANONYMOUS_ADMIN
    key = bearer_key(authorization)
    keys = services.keys
    hit, principal = keys.cached(key)
    if not hit:
        return None
    if key not in services.key_lookups and keys.needs_refresh(key):
        _start_lookup(services, key, keys.refresh)  # (asked after: it marks the refresh)
    return _allowed(services, principal, scope)


def _allowed(services: Services, principal: Principal | None, scope: Scope) -> Principal:
    if principal is None:
        raise UnauthenticatedError("the API key is not valid or was revoked")
    if not role_allows(principal.role, scope):
        raise ForbiddenError(
            f"a '{principal.role.value}' key cannot do this; it needs the '{scope.value}' scope"
        )
    services.limiter.check(principal)
    return principal


def bearer_key(header: str | None) -> str:
    if not header:
        raise UnauthenticatedError("missing API key: send the header 'Authorization: Bearer <key>'")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise UnauthenticatedError("malformed Authorization header: use 'Bearer <key>'")
    return key


def require(scope: Scope) -> Any:
    """``principal: Principal = require(Scope.READ)`` in a route's signature."""
    return Depends(ScopeCheck(scope))
