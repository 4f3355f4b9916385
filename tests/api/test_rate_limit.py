"""A key over its request rate gets 429 with Retry-After at once (REST and gRPC); other
keys are unaffected; the limit is set per key or as a server default."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.conftest import ADMIN_KEY
from tests.servers import ServerProcess, start_server

ROW = {"features": [[0.1] * 10]}


def _key(admin: httpx.Client, **body: object) -> httpx.Response:
    return admin.post("/api/v1/keys", json={"name": "limited", "role": "predict", **body})


def test_a_key_over_its_rate_gets_429_with_retry_after(
    server: ServerProcess, admin: httpx.Client
) -> None:
    created = _key(admin, rate_limit=5)
    assert created.status_code == 201, created.text
    assert created.json()["rate_limit"] == 5
    with server.http(created.json()["key"]) as limited:
        statuses = [limited.post("/predict", json=ROW).status_code for _ in range(25)]
        refused = limited.post("/predict", json=ROW)
    assert 5 <= statuses.count(200) <= 10, statuses  # the burst, plus what refilled meanwhile
    assert set(statuses) == {200, 429}
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert "rate limit of 5 requests per second" in refused.json()["error"]["message"]
    # Another key is not slowed down by this one.
    assert all(admin.post("/predict", json=ROW).status_code == 200 for _ in range(25))
    listed = {k["id"]: k for k in admin.get("/api/v1/keys").json()}
    assert listed[created.json()["id"]]["rate_limit"] == 5


def test_the_limit_applies_to_grpc_too(server: ServerProcess, admin: httpx.Client) -> None:
    key = _key(admin, rate_limit=2).json()["key"]
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    headers = {"authorization": f"Bearer {key}"}
    tensor = grpcclient.InferInput("features", [1, 10], "FP64")
    tensor.set_data_from_numpy(np.full((1, 10), 0.1))
    errors = []
    for _ in range(10):
        try:
            client.infer("demo-linear", [tensor], headers=headers)
        except InferenceServerException as exc:
            errors.append(exc)
    client.close()
    assert errors and len(errors) <= 8
    assert all(e.status() == "StatusCode.RESOURCE_EXHAUSTED" for e in errors)
    assert "rate limit" in errors[0].message()


@pytest.mark.parametrize("rate", [0, -1, 1e-300, "fast", 1e9, True, [5], {"rps": 5}])
def test_invalid_rate_limits_are_refused(admin: httpx.Client, rate: object) -> None:
    response = _key(admin, rate_limit=rate)
    assert response.status_code == 400, response.text


def test_the_server_default_limits_keys_without_their_own(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    env = {"MODELPORT_KEY_RATE_LIMIT": "3"}
    with start_server(tmp_path / "data", admin_key=ADMIN_KEY, env=env) as limited_server:
        with limited_server.http(ADMIN_KEY) as admin:
            generous = _key(admin, rate_limit=1000).json()["key"]
            statuses = [admin.post("/predict", json=ROW).status_code for _ in range(15)]
        with limited_server.http(generous) as fast:
            assert all(fast.post("/predict", json=ROW).status_code == 200 for _ in range(15))
        assert all(limited_server.is_healthy() for _ in range(10))  # health is not limited
    assert statuses[:2] == [200, 200] and 429 in statuses
