"""Shared fixtures: real server processes on free ports, real models, real databases."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.servers import ServerProcess, start_server

ADMIN_KEY = "mp_test-admin-key-0123456789abcdefghijklmnop"
UPLOAD_LIMIT = 4 * 1024 * 1024
REQUEST_LIMIT = 8 * 1024 * 1024


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One shared server on SQLite with the demo model; admin key ``ADMIN_KEY``."""
    data_dir = tmp_path_factory.mktemp("shared") / "data"
    limits = {
        "MODELPORT_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "MODELPORT_MAX_REQUEST_BYTES": str(REQUEST_LIMIT),
    }
    with start_server(data_dir, admin_key=ADMIN_KEY, env=limits) as process:
        yield process


@pytest.fixture(scope="session")
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.http(ADMIN_KEY) as client:
        yield client


def _create_key(admin: httpx.Client, role: str) -> str:
    response = admin.post("/api/v1/keys", json={"name": f"test-{role}", "role": role})
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


@pytest.fixture(scope="session")
def editor_key(admin: httpx.Client) -> str:
    return _create_key(admin, "editor")


@pytest.fixture(scope="session")
def predict_key(admin: httpx.Client) -> str:
    return _create_key(admin, "predict")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    from tests.postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> str:
    """The PostgreSQL database, emptied for this test."""
    from tests.postgres import empty_database

    empty_database(postgres_server_url)
    return postgres_server_url
