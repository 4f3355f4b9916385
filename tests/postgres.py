"""A throwaway PostgreSQL server for the registry tests.

``MODELPORT_TEST_POSTGRES_URL`` points at an existing server when set; otherwise the
Debian ``postgresql`` package's binaries start a private cluster in a temporary folder
(as the ``postgres`` user when the tests run as root), on a free loopback port.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import free_port

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def _pg_bin() -> Path | None:
    candidates = sorted(glob.glob(PG_BIN_GLOB), key=lambda p: int(Path(p).parent.name))
    return Path(candidates[-1]) if candidates else None


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the SQLAlchemy URL of an empty database on a running PostgreSQL server."""
    external = os.environ.get("MODELPORT_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    pg_bin = _pg_bin()
    if pg_bin is None:
        raise RuntimeError(
            "PostgreSQL is not installed: `apt-get install postgresql` (the CI script does), "
            "or set MODELPORT_TEST_POSTGRES_URL"
        )
    root = Path(tempfile.mkdtemp(prefix="modelport-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    run = lambda *cmd: subprocess.run(_as_postgres(list(cmd)), check=True, capture_output=True)  # noqa: E731
    run(str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = root / "postgres.log"
    subprocess.run(  # no pipes: the server would inherit them and never let them close
        _as_postgres(
            [
                str(pg_bin / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        database = f"modelport_{uuid.uuid4().hex[:8]}"
        run(
            str(pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run(
            _as_postgres([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(root, ignore_errors=True)


def empty_database(url: str) -> None:
    """Drop every table (a fresh ``public`` schema) so a test starts from nothing."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
