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
