"""What the adapters need from the assembled server, kept on ``app.state.services``."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from modelport.access.keys import KeyStore
from modelport.access.rate_limit import RateLimiter
from modelport.config import Settings
from modelport.registry import Registry
from modelport.serving.dataplane import DataPlane
from modelport.serving.repository import Repository


@dataclass
class Services:
    settings: Settings
    registry: Registry
    keys: KeyStore
    dataplane: DataPlane
    repository: Repository
    limiter: RateLimiter


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services
