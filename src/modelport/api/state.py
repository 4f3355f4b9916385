"""What the adapters need from the assembled server, kept on ``app.state.services``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.requests import Request

from modelport.access.keys import KeyStore
from modelport.access.rate_limit import RateLimiter
from modelport.config import Settings
from modelport.registry import Registry
from modelport.serving.dataplane import DataPlane
from modelport.serving.repository import Repository
from modelport.types import Principal


@dataclass
class Services:
    settings: Settings
    registry: Registry
    keys: KeyStore
    dataplane: DataPlane
    repository: Repository
    limiter: RateLimiter
    key_lookups: dict[str, asyncio.Future[Principal | None]] = field(default_factory=dict)
    """Keys being looked up in the database: concurrent callers share one lookup."""
    direct_requests: int = 0
    """Inference requests answered on the direct HTTP path (``FastPath.start_now``)."""
    deferred_reads: int = 0
    """Requests read past a turn's parsing budget, parsed on a later turn (a flood)."""


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services
