"""Training jobs through a real server: classification with text columns and missing
values, bad inputs refused before anything is queued or registered, cancellation of a
running grid search, and a server restart that marks the running job failed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.pipelines.jobs_server import run_job, wait_for
from tests.pipelines.training_data import customers_csv
from tests.servers import ServerProcess, start_server

SPEC: dict[str, Any] = {
    "dataset": "customers",
    "target": "churn",
    "split": {"test_size": 0.25, "seed": 7},
    "candidates": ["LogisticRegression", "DecisionTreeClassifier"],
    "search": {"method": "random", "n_iter": 2, "cv": 3, "metric": "f1_macro"},
    "register": {"model": "churn", "alias": "production"},
    "gate": "accuracy >= 0.6",
}
SLOW_GRID: dict[str, Any] = {
    **SPEC,
    "candidates": [
        {
            "estimator": "RandomForestClassifier",
            "params": {"n_estimators": [300, 400], "min_samples_leaf": [1, 2, 3, 4, 5]},
        }
    ],
    "search": {"method": "grid", "cv": 5},
    "register": {"model": "never-registered"},
}


def _start(data_dir: Path) -> Any:
    env = {"MODELPORT_MAX_TRAINING_JOBS": "1"}
    return start_server(data_dir, "--no-demo", admin_key=ADMIN_KEY, env=env)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("train-jobs") / "data"


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[ServerProcess]:
    with _start(data_dir) as process:
        yield process


@pytest.fixture(scope="module")
def admin(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    csv = customers_csv(tmp_path_factory.mktemp("csv") / "customers.csv")
    with server.http(ADMIN_KEY) as client:
        pushed = client.post(
            "/api/v1/datasets/customers/versions",
            files={"file": ("customers.csv", csv.read_bytes(), "text/csv")},
        )
        assert pushed.status_code == 201, pushed.text
        yield client


def test_classification_with_text_columns_and_missing_values(admin: httpx.Client) -> None:
    job = run_job(admin, SPEC)
    result = job["result"]
    assert result["task"] == "classification" and result["metric"] == "f1_macro"
    assert result["features"]["categorical"] == ["city", "plan"]
    registered = result["registered"]
    assert registered["format"] == "skops" and registered["alias_moved"]
    version = admin.get(f"/api/v1/models/churn/versions/{registered['version']}").json()
    inputs = {spec["name"]: spec["datatype"] for spec in version["signature"]["inputs"]}
    assert inputs == {"age": "FP64", "monthly": "FP64", "city": "BYTES", "plan": "BYTES"}
    assert version["metrics"]["accuracy"] >= 0.6
    sample = result["test_sample"]
    complete = [
        (row, label)
        for row, label in zip(sample["rows"], sample["predictions"], strict=True)
        if None not in row.values()
    ]
    rows = [row for row, _ in complete]
    response = admin.post("/models/churn/predict", json={"dataframe_records": rows})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [label for _, label in complete]


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"target": "nope"}, 400, "target column 'nope' is not in dataset customers@1"),
        (
            {"task": "regression", "target": "city", "search": {"cv": 3}},
            400,
            "cannot be a regression target",
        ),
        ({"features": ["age", "height"]}, 400, "height"),
        ({"candidates": ["NoSuchClassifier"]}, 400, "unknown classifier 'NoSuchClassifier'"),
        ({"candidates": ["Ridge"]}, 400, "Ridge is a regressor"),
        ({"candidates": ["XGBRegressor"]}, 400, "XGBRegressor is for regression"),
        ({"dataset": "missing-dataset"}, 404, "dataset 'missing-dataset' does not exist"),
        ({"dataset": "customers@9"}, 404, "has no version 9"),
        ({"dataset": "../x"}, 400, "invalid dataset name"),
        ({"gate": "exec('x')"}, 400, "cannot read the gate"),
    ],
)
def test_bad_inputs_are_refused_before_a_job_exists(
    admin: httpx.Client, change: dict[str, Any], status: int, message: str
) -> None:
    jobs_before = len(admin.get("/api/v1/jobs").json())
    response = admin.post("/api/v1/jobs", json={**SPEC, **change, "register": {"model": "bad"}})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert len(admin.get("/api/v1/jobs").json()) == jobs_before
    assert admin.get("/api/v1/models/bad").status_code == 404


def test_a_failing_run_registers_nothing(admin: httpx.Client) -> None:
    spec = {
        **SPEC,
        "candidates": [{"estimator": "LogisticRegression", "params": {"C": [-1.0]}}],
        "register": {"model": "bad-fit"},
    }
    job = run_job(admin, spec, end="failed")
    assert "every candidate failed" in job["error"] and "LogisticRegression" in job["error"]
    assert admin.get("/api/v1/models/bad-fit").status_code == 404
    assert "failed" in admin.get(f"/api/v1/jobs/{job['id']}/logs").json()["text"]


def test_hostile_job_requests(server: ServerProcess, admin: httpx.Client) -> None:
    assert admin.post("/api/v1/jobs", json=[1, 2]).status_code == 400
    assert admin.post("/api/v1/jobs", content=b"{not json").status_code == 400
    assert admin.post("/api/v1/jobs/0/cancel").status_code == 400
    assert admin.post("/api/v1/jobs/424242/cancel").status_code == 404
    assert admin.get("/api/v1/jobs/1/logs", params={"offset": -1}).status_code == 400
    key = admin.post("/api/v1/keys", json={"name": "p", "role": "predict"}).json()["key"]
    with server.http(key) as predictor:
        assert predictor.post("/api/v1/jobs", json=SPEC).status_code == 403
        assert predictor.get("/api/v1/jobs").status_code == 403


def _worker_pids(server: ServerProcess) -> set[int]:
    """The server's worker processes (children of any of its threads)."""
    pids = set()
    for children in Path(f"/proc/{server.process.pid}/task").glob("*/children"):
        pids.update(int(pid) for pid in children.read_text().split())
    return {
        pid
        for pid in pids
        if Path(f"/proc/{pid}/cmdline").exists()
        and b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    }


def test_cancel_stops_a_running_grid_search(server: ServerProcess, admin: httpx.Client) -> None:
    submitted = admin.post("/api/v1/jobs", json=SLOW_GRID).json()
    queued_behind = admin.post("/api/v1/jobs", json=SLOW_GRID).json()
    running = wait_for(admin, submitted["id"], ("running",))
    deadline = time.monotonic() + 120
    while running["progress"]["stage"] != "search" and time.monotonic() < deadline:
        time.sleep(0.2)
        running = admin.get(f"/api/v1/jobs/{submitted['id']}").json()
    assert running["progress"]["fits_total"] == 50 and _worker_pids(server)
    # The second job waits for the first (one job at a time on this server).
    assert admin.get(f"/api/v1/jobs/{queued_behind['id']}").json()["state"] == "queued"
    assert admin.post(f"/api/v1/jobs/{queued_behind['id']}/cancel").json()["state"] == "cancelled"
    admin.post(f"/api/v1/jobs/{submitted['id']}/cancel").raise_for_status()
    cancelled = wait_for(admin, submitted["id"], ("cancelled",))
    assert cancelled["progress"]["fits_done"] < 50
    deadline = time.monotonic() + 15
    while _worker_pids(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _worker_pids(server)
    assert admin.get("/api/v1/models/never-registered").status_code == 404
    again = admin.post(f"/api/v1/jobs/{submitted['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]


def test_restart_marks_the_running_job_failed(
    server: ServerProcess, admin: httpx.Client, data_dir: Path
) -> None:
    job = admin.post("/api/v1/jobs", json=SLOW_GRID).json()
    wait_for(admin, job["id"], ("running",))
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    with _start(data_dir) as restarted, restarted.http(ADMIN_KEY) as client:
        failed = client.get(f"/api/v1/jobs/{job['id']}").json()
        assert failed["state"] == "failed"
        assert "the server restarted while the job was running" in failed["error"]
        assert client.get("/api/v1/models/never-registered").status_code == 404
        assert not (data_dir / "jobs" / str(job["id"]) / "work").exists()
