"""What the data plane is doing: loaded versions (how and where they run, learned costs,
queues) and the Prometheus metrics endpoint."""

from __future__ import annotations

import os

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from modelport.api.auth import require
from modelport.api.state import services_of
from modelport.serving.metrics import DataPlaneCollector
from modelport.serving.model_cache import ServedModel
from modelport.types import Principal, Scope, ServingConfig

router = APIRouter(tags=["serving"])


class GenerationState(BaseModel):
    """A text-generation model's scheduler: what its decoding steps have done."""

    requests: int
    steps: int
    tokens_generated: int
    largest_batch: int
    """Most sequences one decoding step served."""
    cancelled: int
    """Requests stopped early because their client went away."""
    active: int
    waiting: int


class LoadedVersion(BaseModel):
    """One version in memory."""

    model: str
    version: int
    serving: ServingConfig
    mode: str
    workers: int
    worker_pids: list[int]
    worker_restarts: int
    load_ms: float
    warm_up_predict_ms: float | None
    max_batch_size: int
    batch_cost_ms_per_row: float
    batch_cost_ms_fixed: float
    queued_rows: int
    running_batches: int
    requests_shed: int
    short_path_requests: int
    """Requests queued straight from their row matrix, without the general path's steps
    (a one-input numeric model and the tutorial's ``{"features": ...}`` body)."""
    memory_bytes: int
    generation: GenerationState | None = None


class ServingState(BaseModel):
    process_id: int
    """The server process that answered (one of several with ``--workers N``)."""
    memory_limit_bytes: int | None
    memory_used_bytes: int
    loads: int
    evictions: int
    direct_requests: int
    """Inference requests this process answered on the direct HTTP path (read whole by
    the server's own protocol, no ASGI cycle); the others went through ASGI."""
    deferred_reads: int
    """Requests this process read while a flood took its turn's parsing time, parsed on a
    later turn (their wait counts against their deadline)."""
    loaded: list[LoadedVersion]


def _loaded(served: ServedModel) -> LoadedVersion:
    batcher = served.batcher
    return LoadedVersion(
        model=served.version.model,
        version=served.version.version,
        serving=served.version.serving,
        mode=batcher.mode,
        workers=served.workers,
        worker_pids=served.pool.pids() if served.pool else [],
        worker_restarts=served.pool.replaced if served.pool else 0,
        load_ms=round(served.load_seconds * 1000, 3),
        warm_up_predict_ms=(
            round(served.predict_seconds * 1000, 3) if served.predict_seconds is not None else None
        ),
        max_batch_size=batcher.policy.max_batch_size,
        batch_cost_ms_per_row=round(batcher.cost.per_row * 1000, 4),
        batch_cost_ms_fixed=round(batcher.cost.fixed * 1000, 4),
        queued_rows=batcher.queued_rows,
        running_batches=batcher.running_batches,
        requests_shed=batcher.shed,
        short_path_requests=served.short_path_requests,
        memory_bytes=served.footprint,
        generation=_generation(served),
    )


def _generation(served: ServedModel) -> GenerationState | None:
    scheduler = served.generation
    if scheduler is None:
        return None
    counters = scheduler.counters
    return GenerationState(
        requests=counters.requests,
        steps=counters.steps,
        tokens_generated=counters.tokens,
        largest_batch=counters.largest_batch,
        cancelled=counters.cancelled,
        active=scheduler.active,
        waiting=scheduler.waiting,
    )


@router.get("/api/v1/serving", summary="Loaded versions and how they are served")
async def serving_state(request: Request, _: Principal = require(Scope.READ)) -> ServingState:
    services = services_of(request)
    cache = services.dataplane.models
    return ServingState(
        process_id=os.getpid(),
        memory_limit_bytes=cache.memory_limit,
        memory_used_bytes=cache.memory_used(),
        loads=cache.counters.loads,
        evictions=cache.counters.evictions,
        direct_requests=services.direct_requests,
        deferred_reads=services.deferred_reads,
        loaded=[_loaded(served) for served in cache.loaded()],
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request, _: Principal = require(Scope.READ)) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DataPlaneCollector(services_of(request).dataplane.models))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
