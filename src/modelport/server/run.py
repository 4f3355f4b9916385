"""Run the server under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from modelport.config import Settings, is_loopback
from modelport.errors import InvalidInputError


def run_server(overrides: dict[str, Any]) -> None:
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
    uvicorn.run(
        FastPath(create_app(settings)),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
    )


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
