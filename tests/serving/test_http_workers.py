"""``--workers N``: several server processes share the HTTP and gRPC ports; a registry
change made through one is seen by all; a process that dies is replaced."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import numpy as np
import tritonclient.grpc as grpcclient

from tests.api.test_management import upload
from tests.conftest import ADMIN_KEY
from tests.models import regression, save_skops
from tests.servers import start_server
from tests.serving.test_workers import until

GRPC_AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}


def _pids(url: str, tries: int = 40) -> set[int]:
    """Server processes answering fresh connections (the kernel spreads them)."""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    return {
        httpx.get(f"{url}/api/v1/serving", headers=headers).json()["process_id"]
        for _ in range(tries)
    }


def _both(url: str, without: int | None = None) -> set[int] | None:
    pids = _pids(url)
    return pids if len(pids) == 2 and without not in pids else None


def test_several_processes_share_the_port(tmp_path: Path) -> None:
    (first, x), (second, _) = regression(seed=1), regression(seed=2)
    with start_server(tmp_path / "data", "--workers", "2", admin_key=ADMIN_KEY) as server:
        pids = until(lambda: _both(server.url))
        assert server.process.pid not in pids
        for _ in range(6):  # every process serves gRPC on the shared port too
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
            assert client.is_model_ready("demo-linear", headers=GRPC_AUTH)
            client.close()
        with server.http(ADMIN_KEY) as admin:
            assert upload(admin, "shared", save_skops(first, tmp_path / "1.skops")).is_success
            assert upload(admin, "shared", save_skops(second, tmp_path / "2.skops")).is_success
            admin.put("/api/v1/models/shared/aliases/production", json={"version": 1})

        def answers() -> set[float]:
            """What fresh connections (so: both processes) answer for one row."""
            body = {"features": x[:1].tolist()}
            return {
                round(
                    httpx.post(
                        f"{server.url}/models/shared/predict",
                        json=body,
                        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                    ).json()["prediction"][0],
                    9,
                )
                for _ in range(30)
            }

        one, two = (round(float(m.predict(x[:1])[0]), 9) for m in (first, second))
        assert until(lambda: answers() == {one})
        with server.http(ADMIN_KEY) as admin:  # moved through one process ...
            admin.put("/api/v1/models/shared/aliases/production", json={"version": 2})
        assert until(lambda: answers() == {two})  # ... seen by both

        victim = next(iter(pids))
        os.kill(victim, signal.SIGKILL)
        replaced = until(lambda: _both(server.url, without=victim))
        assert victim not in replaced
        with server.http(ADMIN_KEY) as admin:
            response = admin.post("/predict", json={"features": np.zeros((1, 10)).tolist()})
            assert response.status_code == 200
