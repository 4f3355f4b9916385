"""Run the server under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from pydantic import ValidationError

from modelport.config import Settings, is_loopback
from modelport.errors import InvalidInputError


def run_server(overrides: dict[str, Any]) -> None:
    # Before anything imports torch, here and in the worker processes that inherit it:
    # OpenMP threads sleep instead of spinning (runtimes/torch_import.py says why).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import uvicorn

    from modelport.api.fastpath import FastPath
    from modelport.server.app import create_app

    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"MODELPORT_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise InvalidInputError(f"invalid settings: {problems}") from None
    if settings.no_auth and not is_loopback(settings.host):
        raise InvalidInputError(
            f"--no-auth is refused on {settings.host}: without keys the server may only "
            "listen on a loopback address (127.0.0.1, ::1, localhost)"
        )
    _preflight(settings)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "modelport.server.protocol:DirectHttpProtocol",  # httptools, hot routes direct
        "log_level": settings.log_level,
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,  # nothing reads the client address; saves a layer per request
        "backlog": LISTEN_BACKLOG,
    }
    if settings.workers == 1:
        from modelport.server.accepting import AcceptingServer

        server = AcceptingServer(uvicorn.Config(FastPath(create_app(settings)), **options))
        server.run()
        if not server.started:  # it could not start (the reason is logged): as uvicorn.run
            raise SystemExit(STARTUP_FAILURE)
        return
    # Several processes share the port (uvicorn binds it once and restarts a process that
    # dies); each builds its own app from the settings passed down here. First-start
    # duties run once, before any of them starts.
    _bootstrap_once(settings)
    os.environ[WORKER_SETTINGS] = _dump_settings(settings)
    uvicorn.run(f"{__name__}:worker_app", factory=True, workers=settings.workers, **options)


STARTUP_FAILURE = 3
"""The exit status of a server that could not start (uvicorn's)."""

LISTEN_BACKLOG = 4096
"""Connections the kernel holds until the server accepts them (capped by
net.core.somaxconn): a flood of new connections must not crowd out a health probe."""

WORKER_SETTINGS = "MODELPORT_WORKER_SETTINGS"
"""The settings of ``--workers N`` processes, as JSON (the secret included)."""


def worker_app() -> Any:
    """The app of one ``--workers N`` process (a uvicorn factory)."""
    from modelport.api.fastpath import FastPath
    from modelport.server.app import create_app

    settings = Settings.model_validate_json(os.environ[WORKER_SETTINGS])
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    return FastPath(create_app(settings, announce=False))


def _dump_settings(settings: Settings) -> str:
    values = settings.model_dump(mode="json")
    if settings.admin_key is not None:
        values["admin_key"] = settings.admin_key.get_secret_value()
    return json.dumps(values)


def _bootstrap_once(settings: Settings) -> None:
    """The admin key and the demo model, then the banner (the processes stay quiet)."""
    from modelport.access.keys import KeyStore
    from modelport.registry import Registry
    from modelport.server.banner import print_banner
    from modelport.server.bootstrap import bootstrap
    from modelport.storage.artifacts import ArtifactStore
    from modelport.storage.db import create_db_engine, create_session_factory

    engine = create_db_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    registry = Registry(sessions, ArtifactStore(settings.artifacts_dir))
    result = bootstrap(settings, registry, KeyStore(sessions))
    engine.dispose()
    print_banner(settings, result)
    print(f"Starting {settings.workers} server processes on the same port.", flush=True)


def _preflight(settings: Settings) -> None:
    """Fail with one clear line before the server starts: data dir, database, schema."""
    from sqlalchemy.exc import SQLAlchemyError

    from modelport.storage.db import create_db_engine, run_migrations

    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        raise InvalidInputError(f"--data-dir {settings.data_dir} exists and is not a folder")
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create the data dir {settings.data_dir}: {exc}") from None
    try:
        engine = create_db_engine(settings.resolved_database_url)
        run_migrations(engine)
        engine.dispose()
    except (SQLAlchemyError, ImportError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise InvalidInputError(f"cannot open the database: {reason}") from None
