"""Backpressure: a full queue answers 503 with Retry-After at once, a caller waiting past
its timeout gets a 503 and leaves the queue, and health checks keep answering."""

from __future__ import annotations

import concurrent.futures
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from sklearn.ensemble import RandomForestRegressor

from tests.api.test_management import upload
from tests.conftest import ADMIN_KEY
from tests.models import save_skops
from tests.servers import ServerProcess, start_server
from tests.serving.test_workers import until

ROW = [[0.5] * 8]


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One row per predict call (no batching) on a model that takes ~15 ms per call, with
    room for 2 queued rows."""
    env = {"MODELPORT_MAX_BATCH_SIZE": "1", "MODELPORT_MAX_QUEUE_ROWS": "2"}
    root = tmp_path_factory.mktemp("slow")
    x = np.random.default_rng(0).random((300, 8))
    forest = RandomForestRegressor(n_estimators=200, random_state=0).fit(x, x.sum(axis=1))
    with start_server(root / "data", "--no-demo", admin_key=ADMIN_KEY, env=env) as process:
        with process.http(ADMIN_KEY) as admin:
            response = upload(admin, "slow", save_skops(forest, root / "forest.skops"))
            assert response.status_code == 201, response.text
            assert admin.post("/models/slow/predict", json={"features": ROW}).status_code == 200
        yield process


def _post(server: ServerProcess, path: str, body: dict[str, object]) -> httpx.Response:
    with server.http(ADMIN_KEY) as client:
        return client.post(path, json=body)


def test_full_queue_is_refused_at_once_with_retry_after(slow_server: ServerProcess) -> None:
    with concurrent.futures.ThreadPoolExecutor(48) as pool:
        futures = [
            pool.submit(_post, slow_server, "/models/slow/predict", {"features": ROW})
            for _ in range(48)
        ]
        started = time.monotonic()
        live = httpx.get(f"{slow_server.url}/v2/health/live", timeout=10)
        health_seconds = time.monotonic() - started
        responses = [future.result() for future in futures]
    statuses = [r.status_code for r in responses]
    assert live.status_code == 200 and health_seconds < 5.0, health_seconds
    assert statuses.count(200) >= 3, statuses
    refused = [r for r in responses if r.status_code == 503]
    assert refused, statuses
    assert set(statuses) <= {200, 503}
    for response in refused:
        assert response.headers["retry-after"] == "1"
        assert "overloaded" in response.json()["error"]["message"]
    # Once the burst is over the model answers normally again.
    assert _post(slow_server, "/models/slow/predict", {"features": ROW}).status_code == 200


def test_caller_waiting_past_its_timeout_gets_503(slow_server: ServerProcess) -> None:
    body = {
        "parameters": {"timeout": 1_000},  # microseconds, as Triton defines it
        "inputs": [{"name": "features", "shape": [1, 8], "datatype": "FP64", "data": ROW[0]}],
    }
    # One predict takes far longer than 1 ms: every caller is refused (at once, since the
    # batcher has learned the predict cost, or at its deadline).
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        responses = list(
            pool.map(lambda _: _post(slow_server, "/v2/models/slow/infer", body), range(3))
        )
    assert [r.status_code for r in responses] == [503, 503, 503]
    assert all("deadline" in r.json()["error"] for r in responses)
    assert all(r.headers["retry-after"] == "1" for r in responses)
    assert _post(slow_server, "/models/slow/predict", {"features": ROW}).status_code == 200
    bad = dict(body, parameters={"timeout": "soon"})
    rejected = _post(slow_server, "/v2/models/slow/infer", bad)
    assert rejected.status_code == 400 and "microseconds" in rejected.json()["error"]


def test_statistics_count_the_failures(slow_server: ServerProcess, tmp_path: Path) -> None:
    with slow_server.http(ADMIN_KEY) as admin:
        stats = admin.get("/v2/models/slow/stats").json()["model_stats"][0]["inference_stats"]
    assert stats["fail"]["count"] >= 1
    assert stats["success"]["count"] >= 4


def test_a_client_that_disconnects_frees_its_queued_rows(slow_server: ServerProcess) -> None:
    big = {"features": np.random.default_rng(1).random((60_000, 8)).tolist()}
    with slow_server.http(ADMIN_KEY) as admin:

        def state() -> dict[str, int]:
            served = admin.get("/api/v1/serving").json()["loaded"]
            return next(v for v in served if v["model"] == "slow")

        def rows_done() -> int:
            stats = admin.get("/v2/models/slow/stats").json()["model_stats"][0]
            return int(stats["inference_count"])

        before = rows_done()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(_post, slow_server, "/models/slow/predict", big)
            until(lambda: state()["running_batches"] == 1 and state()["queued_rows"] == 0)
            body = orjson.dumps({"features": [[7.0] * 8, [8.0] * 8]})
            with socket.create_connection(("127.0.0.1", slow_server.port)) as conn:
                conn.sendall(
                    b"POST /models/slow/predict HTTP/1.1\r\nHost: x\r\n"
                    + f"Authorization: Bearer {ADMIN_KEY}\r\n".encode()
                    + b"Content-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                until(lambda: state()["queued_rows"] == 2)
            until(lambda: state()["queued_rows"] == 0)  # freed when the socket closed
            assert not running.done()  # ... while the big request still runs
            assert running.result().status_code == 200, running.result().text
        assert rows_done() == before + 60_000  # the two abandoned rows were never predicted


def test_an_overloaded_model_refuses_on_the_headers(slow_server: ServerProcess) -> None:
    """With the queue full, a /predict request is answered 503 as soon as its headers
    arrive, before its body is sent; the connection then carries on normally."""
    big = {"features": np.random.default_rng(2).random((60_000, 8)).tolist()}
    row = orjson.dumps({"features": ROW})
    head = (
        b"POST /models/slow/predict HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {ADMIN_KEY}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(row)}\r\n\r\n".encode()
    )
    with slow_server.http(ADMIN_KEY) as admin:

        def state() -> dict[str, int]:
            served = admin.get("/api/v1/serving").json()["loaded"]
            return next(v for v in served if v["model"] == "slow")

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            running = pool.submit(_post, slow_server, "/models/slow/predict", big)
            until(lambda: state()["running_batches"] == 1)
            queued = [
                pool.submit(_post, slow_server, "/models/slow/predict", {"features": ROW})
                for _ in range(2)
            ]
            until(lambda: state()["queued_rows"] == 2)  # the queue is full (2 rows)
            with socket.create_connection(("127.0.0.1", slow_server.port), timeout=30) as conn:
                conn.sendall(head)  # no body yet
                answer = conn.recv(65536)
                assert answer.startswith(b"HTTP/1.1 503 "), answer
                assert b"retry-after: 1" in answer.lower()
                assert b"overloaded" in answer
                conn.sendall(row)  # the body arrives after its answer: skipped
                conn.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                assert conn.recv(65536).startswith(b"HTTP/1.1 200 ")
            assert running.result().status_code == 200
            assert [f.result().status_code for f in queued] == [200, 200]
