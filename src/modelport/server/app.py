"""``create_app(settings)``: the FastAPI application with its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from modelport.about import VERSION
from modelport.access.keys import KeyStore
from modelport.access.rate_limit import RateLimiter
from modelport.api.errors import install_error_handlers
from modelport.api.openai import routers as openai_routers
from modelport.api.rest import datasets as dataset_routes
from modelport.api.rest import docs, keys, models, predict, serving, v2, v2_repository, versions
from modelport.api.rest import jobs as job_routes
from modelport.api.state import Services
from modelport.config import Settings
from modelport.errors import ModelPortError
from modelport.registry import Registry
from modelport.registry.references import parse_reference
from modelport.server.banner import print_banner
from modelport.server.bootstrap import bootstrap
from modelport.server.training import build_training
from modelport.serving.batching import QueueLimits
from modelport.serving.dataplane import DataPlane
from modelport.serving.heap import freeze_imports
from modelport.serving.model_cache import ModelCache, ServingDefaults
from modelport.serving.repository import Repository
from modelport.storage.artifacts import ArtifactStore
from modelport.storage.db import create_db_engine, create_session_factory, run_migrations

log = logging.getLogger(__name__)

RESOLVE_TTL_S = 1.0


def build_services(settings: Settings) -> tuple[Services, object]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(settings.resolved_database_url)
    run_migrations(engine)
    sessions = create_session_factory(engine)
    artifacts = ArtifactStore(settings.artifacts_dir)
    registry = Registry(sessions, artifacts)
    limits = QueueLimits(settings.max_queue_rows, settings.request_timeout_s)
    pinned = frozenset({settings.default_model.partition("@")[0]} if settings.default_model else ())
    memory_limit = int(settings.model_memory_limit) if settings.model_memory_limit else None
    defaults = ServingDefaults(
        settings.max_batch_size,
        settings.model_workers,
        server_processes=settings.workers,
        shared_arrays=artifacts.shared_arrays_dir,
    )
    cache = ModelCache(artifacts, settings.allow_pickle, defaults, limits, memory_limit, pinned)
    # With several server processes, another one may change the registry.
    dataplane = DataPlane(registry, cache, RESOLVE_TTL_S if settings.workers > 1 else None)
    limiter = RateLimiter(settings.key_rate_limit)
    services = Services(
        settings, registry, KeyStore(sessions), dataplane, Repository(dataplane), limiter
    )
    return services, engine


async def _warm_default_model(services: Services) -> None:
    if not services.settings.default_model:
        return
    try:
        await services.dataplane.served(parse_reference(services.settings.default_model))
    except ModelPortError as exc:
        log.warning(
            "default model %s is not servable yet: %s", services.settings.default_model, exc
        )


def create_app(settings: Settings, announce: bool = True) -> FastAPI:
    """The application; ``announce=False`` for the processes of ``--workers N``, whose
    parent did the first-start duties and printed the banner."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services, engine = await run_in_threadpool(build_services, settings)
        if announce:
            result = await run_in_threadpool(bootstrap, settings, services.registry, services.keys)
        app.state.services = services
        training = build_training(settings, services.registry)
        app.state.training = training
        await run_in_threadpool(training.jobs.start)
        await _warm_default_model(services)
        grpc_server = None
        if settings.grpc_port:
            # Imported here: its generated protobuf module must not load with the app
            # object alone (tests import tritonclient's copy of the same messages).
            from modelport.api.grpc.service import start_grpc_server

            grpc_server = start_grpc_server(
                services, settings.host, settings.grpc_port, asyncio.get_running_loop()
            )
        if announce:
            print_banner(settings, result)
        # Everything loaded so far lives as long as the server: keep it out of the
        # collector's full passes, which would otherwise pause requests now and then.
        freeze_imports()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await asyncio.to_thread(training.jobs.close)
            if grpc_server is not None:
                stopped = grpc_server.stop(grace=2)
                await asyncio.to_thread(stopped.wait, 5)
            await services.dataplane.close()
            engine.dispose()  # type: ignore[attr-defined]

    app = FastAPI(
        title="ModelPort",
        version=VERSION,
        summary="Trained models as fast, safe network services.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ready = False
    install_error_handlers(app)
    for router in (
        v2_repository.router,
        v2.router,
        predict.router,
        models.router,
        versions.router,
        keys.router,
        serving.router,
        docs.router,
        dataset_routes.router,
        job_routes.router,
        *openai_routers(),
    ):
        app.include_router(router)
    return app
