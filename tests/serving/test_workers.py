"""Predict in worker processes: same answers as in-process predict, a worker that dies is
replaced and only the request it was running fails; serving configuration per version;
the serving state and Prometheus metrics."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier

from tests.api.test_management import upload
from tests.conftest import ADMIN_KEY
from tests.models import save_skops
from tests.servers import ServerProcess, start_server

X, Y = make_classification(n_samples=600, n_features=30, n_informative=12, random_state=42)
HGB = HistGradientBoostingClassifier(max_iter=60, random_state=42).fit(X, Y)


@pytest.fixture(scope="module")
def workers_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("workers")
    path = save_skops(HGB, root / "hgb.skops")
    with start_server(root / "data", "--no-demo", admin_key=ADMIN_KEY) as server:
        with server.http(ADMIN_KEY) as admin:
            serving = orjson.dumps({"workers": 2}).decode()
            assert upload(admin, "hgb", path, serving=serving).status_code == 201
            assert upload(admin, "hgb1", path, serving='{"workers": 1}').status_code == 201
        yield server


def until(condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``condition`` until it returns something truthy (a readiness check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met in time (last: {value!r})")


def loaded(admin: httpx.Client, name: str) -> dict[str, Any] | None:
    state = admin.get("/api/v1/serving").json()
    return next((v for v in state["loaded"] if v["model"] == name), None)


def test_worker_processes_answer_like_in_process_predict(workers_server: ServerProcess) -> None:
    def infer(rows: int) -> tuple[int, dict[str, Any]]:
        x = X[rows : rows * 2]
        body = {
            "inputs": [
                {
                    "name": "features",
                    "shape": list(x.shape),
                    "datatype": "FP64",
                    "data": x.ravel().tolist(),
                }
            ],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        }
        with workers_server.http(ADMIN_KEY) as client:
            return rows, client.post("/v2/models/hgb/infer", json=body).json()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(infer, [1, 7, 3, 40, 2, 11, 5, 1, 64, 9] * 3))
    for rows, answer in answers:
        outputs = {o["name"]: o for o in answer["outputs"]}
        x = X[rows : rows * 2]
        assert outputs["predict"]["data"] == HGB.predict(x).tolist()
        proba = np.array(outputs["predict_proba"]["data"]).reshape(rows, 2)
        assert np.allclose(proba, HGB.predict_proba(x), atol=1e-12)
    with workers_server.http(ADMIN_KEY) as admin:
        state = loaded(admin, "hgb")
    assert state is not None and state["mode"] == "processes" and state["workers"] == 2
    assert len(set(state["worker_pids"])) == 2 and os.getpid() not in state["worker_pids"]


def test_a_dead_worker_fails_only_its_request_and_is_replaced(
    workers_server: ServerProcess,
) -> None:
    big = np.tile(X, (300, 1))  # 180k rows, sent as binary: long enough to catch in flight
    with workers_server.http(ADMIN_KEY) as admin:
        assert admin.post("/models/hgb1/predict", json={"features": X[:2].tolist()}).is_success
        before = loaded(admin, "hgb1")
        assert before is not None and len(before["worker_pids"]) == 1
        pid = before["worker_pids"][0]
        idle_ticks = _cpu_ticks(pid)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            running = pool.submit(_infer_binary, workers_server, big)
            until(lambda: _cpu_ticks(pid) > idle_ticks + 5 and _queued(admin) == 0)
            queued = pool.submit(
                _post, workers_server, "/models/hgb1/predict", {"features": X[:3].tolist()}
            )
            until(lambda: _queued(admin) == 3)  # the big request runs, the small one waits
            os.kill(pid, signal.SIGKILL)
            failed, answered = running.result(), queued.result()
        assert failed.status_code == 503 and "exited" in failed.json()["error"]
        assert failed.headers["retry-after"] == "1"
        assert answered.status_code == 200, answered.text
        assert answered.json()["prediction"] == HGB.predict(X[:3]).tolist()
        after = until(lambda: _replaced(admin))
        assert after["worker_pids"] != before["worker_pids"] and after["worker_restarts"] == 1
        again = admin.post("/models/hgb1/predict", json={"features": X[:4].tolist()})
        assert again.json()["prediction"] == HGB.predict(X[:4]).tolist()


def _post(server: ServerProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    with server.http(ADMIN_KEY) as client:
        return client.post(path, json=body)


def _infer_binary(server: ServerProcess, x: np.ndarray) -> httpx.Response:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": list(x.shape),
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ]
        }
    )
    with server.http(ADMIN_KEY) as client:
        return client.post(
            "/v2/models/hgb1/infer",
            content=header + x.astype("<f8").tobytes(),
            headers={"Inference-Header-Content-Length": str(len(header))},
        )


def _queued(admin: httpx.Client) -> int:
    state = loaded(admin, "hgb1")
    return state["queued_rows"] if state else -1


def _replaced(admin: httpx.Client) -> dict[str, Any] | None:
    state = loaded(admin, "hgb1")
    return state if state and state["worker_restarts"] == 1 else None


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11])  # utime


def test_serving_configuration_is_validated_and_applied(workers_server: ServerProcess) -> None:
    with workers_server.http(ADMIN_KEY) as admin:
        url = "/api/v1/models/hgb/versions/1/serving"
        for bad in (
            {"max_batch_size": 0},
            {"workers": -1},
            {"max_batch_delay_ms": 5000},
            {"latency_target_ms": 0},
            {"batch": 4},
            {"workers": "two"},
            {"max_batch_delay_ms": "NaN"},
            {"latency_target_ms": "Infinity"},
        ):
            response = admin.put(url, json=bad)
            assert response.status_code == 400, (bad, response.text)
            assert response.json()["error"]
        assert admin.put("/api/v1/models/nope/versions/1/serving", json={}).status_code == 404
        assert admin.put("/api/v1/models/hgb/versions/9/serving", json={}).status_code == 404
        config = {
            "max_batch_size": 4,
            "max_batch_delay_ms": 2,
            "latency_target_ms": 500,
            "workers": 0,
        }
        changed = admin.put(url, json=config)
        assert changed.status_code == 200 and changed.json()["serving"] == config
        assert admin.get("/api/v1/models/hgb/versions/1").json()["serving"] == config
        answer = admin.post("/models/hgb/predict", json={"features": X[:9].tolist()})
        assert answer.json()["prediction"] == HGB.predict(X[:9]).tolist()
        state = until(lambda: loaded(admin, "hgb"))
        assert state["mode"] in ("inline", "thread") and state["workers"] == 0
        assert state["max_batch_size"] == 4 and state["worker_pids"] == []
        bad_form = upload(admin, "hgb", Path(__file__), serving='{"workers": 100}')
        assert bad_form.status_code == 400
        assert "serving" in bad_form.json()["error"]["message"]


def test_metrics_endpoint_serves_prometheus_text(workers_server: ServerProcess) -> None:
    with workers_server.http(ADMIN_KEY) as admin:
        assert admin.post("/models/hgb/predict", json={"features": X[:2].tolist()}).is_success
        response = admin.get("/metrics")
        keys = admin.post("/api/v1/keys", json={"name": "scraper", "role": "predict"}).json()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    loads = families["modelport_model_loads"].samples[0].value
    assert loads >= 2
    histogram = {s.name: s for s in families["modelport_model_load_seconds"].samples}
    assert histogram["modelport_model_load_seconds_count"].value == loads
    assert histogram["modelport_model_load_seconds_sum"].value > 0
    successes = [
        s.value
        for s in families["modelport_requests"].samples
        if s.labels.get("model") == "hgb" and s.labels.get("outcome") == "success"
    ]
    assert successes and successes[0] >= 1
    durations = {
        (s.name, s.labels.get("outcome")): s.value
        for family in ("modelport_request_duration_seconds", "modelport_request_longest_seconds")
        for s in families[family].samples
        if s.labels.get("model") == "hgb"
    }
    longest = durations[("modelport_request_longest_seconds", "success")]
    total = durations[("modelport_request_duration_seconds_sum", None)]
    assert 0 < longest <= total  # one request's time, within all requests' time
    assert httpx.get(f"{workers_server.url}/metrics").status_code == 401
    with workers_server.http(keys["key"]) as predict_only:
        assert predict_only.get("/metrics").status_code == 403
