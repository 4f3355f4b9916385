"""500 registered models served from a memory budget that holds 50 of them, under a Zipf
request mix; concurrent first requests for one model load it once."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LinearRegression

from tests.conftest import ADMIN_KEY
from tests.servers import ServerProcess, start_server

MODELS = 500
RESIDENT = 50


def _model(index: int) -> LinearRegression:
    rng = np.random.default_rng(index)
    x = rng.random((20, 4))
    return LinearRegression().fit(x, x @ rng.random(4) + index)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    root = tmp_path_factory.mktemp("many")
    blobs = [sio.dumps(_model(i)) for i in range(MODELS)]
    budget = RESIDENT * max(len(blob) for blob in blobs)
    args = ("--no-demo", "--model-memory-limit", str(budget))
    with start_server(root / "data", *args, admin_key=ADMIN_KEY) as server:

        def push(index: int) -> int:
            with server.http(ADMIN_KEY) as admin:
                files = {"file": ("m.skops", blobs[index], "application/octet-stream")}
                return admin.post(f"/api/v1/models/m{index}/versions", files=files).status_code

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            assert set(pool.map(push, range(MODELS))) == {201}
        yield server, budget


def _serving(admin: httpx.Client) -> dict[str, Any]:
    state: dict[str, Any] = admin.get("/api/v1/serving").json()
    return state


def test_500_models_are_served_from_a_budget_for_50(many: tuple[ServerProcess, int]) -> None:
    server, budget = many
    rng = np.random.default_rng(7)
    ranks = np.arange(1, MODELS + 1)
    weights = ranks**-1.1 / (ranks**-1.1).sum()
    mix = [*rng.choice(MODELS, size=1000, p=weights).tolist(), *range(MODELS)]
    rng.shuffle(mix)
    row = [[0.25, 0.5, 0.75, 1.0]]

    def predict(index: int) -> tuple[int, int, float]:
        with server.http(ADMIN_KEY) as client:
            response = client.post(f"/models/m{index}/predict", json={"features": row})
            return index, response.status_code, response.json()["prediction"][0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(predict, mix))
    assert {status for _, status, _ in answers} == {200}
    for index, _, value in answers:
        assert value == pytest.approx(_model(index).predict(np.array(row))[0])
    with server.http(ADMIN_KEY) as admin:
        state = _serving(admin)
    assert len(state["loaded"]) <= RESIDENT
    assert state["memory_used_bytes"] <= budget == state["memory_limit_bytes"]
    assert state["loads"] >= MODELS  # every model was loaded at least once
    assert state["evictions"] == state["loads"] - len(state["loaded"])
    hits = len(mix) - state["loads"]
    assert hits > 0.3 * len(mix)  # the popular models stay resident


def test_concurrent_first_requests_load_a_model_once(many: tuple[ServerProcess, int]) -> None:
    server, _ = many
    with server.http(ADMIN_KEY) as admin:
        files = {"file": ("m.skops", sio.dumps(_model(MODELS)), "application/octet-stream")}
        assert admin.post("/api/v1/models/fresh/versions", files=files).status_code == 201
        loads_before = _serving(admin)["loads"]

    def first(_: int) -> int:
        with server.http(ADMIN_KEY) as client:
            body = {"features": [[1, 2, 3, 4]]}
            return client.post("/models/fresh/predict", json=body).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert set(pool.map(first, range(16))) == {200}
    with server.http(ADMIN_KEY) as admin:
        assert _serving(admin)["loads"] == loads_before + 1
