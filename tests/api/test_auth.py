"""Deny by default: every route checks a scope; keys, roles and the bootstrap key."""

from __future__ import annotations

import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from modelport.api.auth import PUBLIC_PATHS, ScopeCheck
from modelport.api.fastpath import HOT_ROUTES
from modelport.config import Settings
from modelport.server.app import create_app
from tests.servers import ServerProcess, start_server


def _scope_checks(route: APIRoute) -> list[ScopeCheck]:
    found: list[ScopeCheck] = []
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        if isinstance(dependant.call, ScopeCheck):
            found.append(dependant.call)
        pending.extend(dependant.dependencies)
    return found


def _flatten(routes: list[BaseRoute]) -> list[BaseRoute]:
    flat: list[BaseRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        flat.extend(_flatten(included.routes) if included is not None else [route])
    return flat


def _app_routes(tmp_path: Path) -> list[Route]:
    app = create_app(Settings(data_dir=tmp_path))
    routes = _flatten(list(app.routes))
    unknown = [route for route in routes if not isinstance(route, Route)]
    assert not unknown, f"routes of unexpected kinds (mounts?) escape the check: {unknown}"
    return [route for route in routes if isinstance(route, Route)]


def test_every_route_declares_a_scope_check(tmp_path: Path) -> None:
    routes = _app_routes(tmp_path)
    assert len(routes) > 20
    for route in routes:
        if route.path in PUBLIC_PATHS:
            continue
        assert isinstance(route, APIRoute), f"{route.path} is not an APIRoute"
        assert _scope_checks(route), f"route {route.path} has no auth check"
    for hot in HOT_ROUTES:
        documented = [r for r in routes if isinstance(r, APIRoute) and r.path == hot.path]
        assert documented, f"fast-path route {hot.path} is not documented"
        assert {c.scope for c in _scope_checks(documented[0])} == {hot.scope}


def test_every_route_refuses_a_request_without_a_key(tmp_path: Path, server: ServerProcess) -> None:
    with server.http() as anonymous:
        for route in _app_routes(tmp_path):
            path = re.sub(r"\{[^}]+\}", "1", route.path).replace("/models/1", "/models/demo-linear")
            for method in sorted(route.methods or {"GET"}):
                if method == "HEAD":
                    continue
                response = anonymous.request(method, path)
                if route.path in PUBLIC_PATHS:
                    assert response.status_code == 200
                else:
                    assert response.status_code == 401, f"{method} {path}: {response.status_code}"


def test_roles_limit_what_a_key_can_do(
    server: ServerProcess, predict_key: str, editor_key: str, tmp_path: Path
) -> None:
    with server.http(predict_key) as predictor:
        assert predictor.get("/api/v1/models").status_code == 403
        denied = predictor.post("/api/v1/models", json={"name": "nope"})
        assert denied.status_code == 403 and "scope" in denied.json()["error"]["message"]
        assert predictor.get("/v2/models/demo-linear").status_code == 200
    with server.http(editor_key) as editor:
        assert editor.post("/api/v1/models", json={"name": "by-editor"}).status_code == 201
        assert editor.get("/api/v1/keys").status_code == 403
        assert editor.post("/api/v1/keys", json={"name": "x", "role": "admin"}).status_code == 403


def test_keys_are_shown_once_and_revocable(admin: httpx.Client, server: ServerProcess) -> None:
    created = admin.post("/api/v1/keys", json={"name": "temp", "role": "predict"}).json()
    assert created["key"].startswith("mp_") and created["prefix"] == created["key"][:11]
    listed = admin.get("/api/v1/keys").json()
    assert all("key" not in item for item in listed)
    assert created["id"] in [item["id"] for item in listed]
    with server.http(created["key"]) as temp:
        assert temp.get("/api/v1/whoami").json()["role"] == "predict"
        assert admin.delete(f"/api/v1/keys/{created['id']}").json()["revoked_at"] is not None
        assert temp.get("/api/v1/whoami").status_code == 401
    assert admin.post("/api/v1/keys", json={"name": "x", "role": "root"}).status_code == 400
    assert admin.delete("/api/v1/keys/999999").status_code == 404
    assert admin.delete("/api/v1/keys/99999999999999").status_code in (400, 422)


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer ,", "mp_key", "Token x"])
def test_malformed_authorization_is_401(server: ServerProcess, header: str) -> None:
    response = httpx.get(f"{server.url}/api/v1/models", headers={"Authorization": header})
    assert response.status_code == 401
    message = response.json()["error"]["message"]
    assert "Bearer" in message or "not valid" in message


def test_first_start_generates_and_prints_the_admin_key_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with start_server(data_dir, "--no-demo") as first:
        key_file = data_dir / "admin.key"
        key = key_file.read_text().strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert key in first.output()
        with first.http(key) as client:
            assert client.get("/api/v1/whoami").json()["role"] == "admin"
    stored = sqlite3.connect(data_dir / "modelport.db").execute("SELECT key_hash FROM api_keys")
    assert key not in [row[0] for row in stored]
    assert key.encode() not in (data_dir / "modelport.db").read_bytes()
    with start_server(data_dir, "--no-demo") as second:
        assert key not in second.output()
        assert "admin.key" in second.output()
        with second.http(key) as client:
            assert client.get("/api/v1/whoami").status_code == 200


def test_no_auth_is_refused_on_a_public_address(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelport",
            "serve",
            "--host",
            "0.0.0.0",
            "--no-auth",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "modelport.db").exists()


def test_no_auth_on_loopback_needs_no_key(tmp_path: Path) -> None:
    with start_server(tmp_path / "data", "--no-auth") as open_server, open_server.http() as client:
        assert client.post("/predict", json={"features": [[0.0] * 10]}).status_code == 200


def test_python_dash_m_is_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelport", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "serve" in result.stdout
