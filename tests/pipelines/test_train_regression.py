"""The tutorial's walk end to end through a real server: the diabetes CSV, LinearRegression
among the candidates, registered with metrics and lineage, served through /predict with
the predictions the job made on its test split; a gate that fails leaves production where
it was; the same spec and seed give the same model."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import ADMIN_KEY
from tests.pipelines.jobs_server import run_job
from tests.pipelines.training_data import diabetes_csv
from tests.servers import ServerProcess, start_server

SPEC: dict[str, Any] = {
    "dataset": "diabetes",
    "target": "target",
    "task": "regression",
    "split": {"test_size": 0.2, "seed": 42},
    "candidates": ["LinearRegression", "Ridge"],
    "search": {"method": "random", "n_iter": 2, "cv": 3, "metric": "r2"},
    "optimize": {"onnx": True},
    "register": {"model": "diabetes-model", "alias": "production"},
    "gate": "r2 >= 0.3",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("train-regression") / "data"
    env = {"MODELPORT_MAX_TRAINING_JOBS": "2"}
    with start_server(data_dir, "--no-demo", admin_key=ADMIN_KEY, env=env) as process:
        yield process


@pytest.fixture(scope="module")
def admin(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    csv = diabetes_csv(tmp_path_factory.mktemp("csv") / "diabetes.csv")
    with server.http(ADMIN_KEY) as client:
        pushed = client.post(
            "/api/v1/datasets/diabetes/versions",
            files={"file": ("diabetes.csv", csv.read_bytes(), "text/csv")},
        )
        assert pushed.status_code == 201, pushed.text
        yield client


@pytest.fixture(scope="module")
def first_job(admin: httpx.Client) -> dict[str, Any]:
    return run_job(admin, SPEC)


def test_registered_with_metrics_and_lineage(
    admin: httpx.Client, first_job: dict[str, Any]
) -> None:
    registered = first_job["result"]["registered"]
    assert registered["version"] == 1 and registered["format"] == "onnx"
    assert registered["alias_moved"] and registered["gate"]["passed"]
    leaderboard = first_job["result"]["leaderboard"]
    assert {row["estimator"] for row in leaderboard} == {"LinearRegression", "Ridge"}
    assert all(len(row["cv_scores"]) == 3 for row in leaderboard)
    version = admin.get("/api/v1/models/diabetes-model/versions/1").json()
    assert version["aliases"] == ["production"]
    assert version["metrics"]["r2"] == pytest.approx(first_job["result"]["test_metrics"]["r2"])
    assert version["metrics"]["r2"] > 0.3
    lineage = version["params"]["lineage"]
    dataset = admin.get("/api/v1/datasets/diabetes/versions/1").json()
    assert lineage["dataset"] == {
        "name": "diabetes",
        "version": 1,
        "sha256": dataset["sha256"],
        "rows": 442,
    }
    assert lineage["spec"]["dataset"] == "diabetes@1"
    assert lineage["best"]["estimator"] in ("LinearRegression", "Ridge")
    assert lineage["libraries"]["sklearn"] and lineage["training_seconds"] > 0
    assert lineage["onnx"]["speedup"] > 1
    assert set(lineage["profile"]["features"]) == {
        "age",
        "sex",
        "bmi",
        "bp",
        "s1",
        "s2",
        "s3",
        "s4",
        "s5",
        "s6",
    }
    log = admin.get(f"/api/v1/jobs/{first_job['id']}/logs").json()["text"]
    assert "candidate 1/2: LinearRegression" in log and "registered diabetes-model@1" in log


def test_served_predictions_match_the_jobs_test_split(
    admin: httpx.Client, first_job: dict[str, Any]
) -> None:
    sample = first_job["result"]["test_sample"]
    response = admin.post("/models/diabetes-model/predict", json={"features": sample["rows"]})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["prediction"], sample["predictions"], rtol=1e-6)


def test_failing_gate_keeps_production_and_same_seed_same_model(
    admin: httpx.Client, first_job: dict[str, Any]
) -> None:
    again = run_job(admin, {**SPEC, "gate": "r2 >= 0.99"})
    registered = again["result"]["registered"]
    assert registered["version"] == 2 and not registered["alias_moved"]
    assert (
        not registered["gate"]["passed"]
        and "the gate wants r2 >= 0.99" in registered["gate"]["reason"]
    )
    assert admin.get("/api/v1/models/diabetes-model/aliases").json() == {"production": 1}
    # Reproducible: the same spec and seed on the same dataset version, the same model.
    assert (
        again["result"]["test_predictions_sha256"] == first_job["result"]["test_predictions_sha256"]
    )
    rows = first_job["result"]["test_sample"]["rows"]
    one = admin.post("/models/diabetes-model@1/predict", json={"features": rows}).json()
    two = admin.post("/models/diabetes-model@2/predict", json={"features": rows}).json()
    assert one == two


def test_better_than_production_on_the_same_split(
    admin: httpx.Client, first_job: dict[str, Any]
) -> None:
    worse = {
        **SPEC,
        "candidates": [{"estimator": "Ridge", "params": {"alpha": [1000.0]}}],
        "optimize": {"onnx": False},
        "gate": "better_than: production",
    }
    job = run_job(admin, worse)
    registered = job["result"]["registered"]
    assert registered["format"] == "skops" and not registered["alias_moved"]
    assert registered["gate"]["reason"].startswith("not better: r2")
    baseline = job["result"]["baseline"]
    assert baseline["version"] == 1
    assert baseline["value"] == pytest.approx(first_job["result"]["test_metrics"]["r2"], rel=1e-5)
    assert admin.get("/api/v1/models/diabetes-model/aliases").json() == {"production": 1}


def test_jobs_listing_and_digest_of_the_dataset(admin: httpx.Client, tmp_path: Path) -> None:
    jobs = admin.get("/api/v1/jobs", params={"state": "succeeded"}).json()
    assert len(jobs) >= 1 and all(job["state"] == "succeeded" for job in jobs)
    assert admin.get("/api/v1/jobs", params={"state": "bogus"}).status_code == 400
    assert admin.get("/api/v1/jobs/999999").status_code == 404
    csv = diabetes_csv(tmp_path / "d.csv").read_bytes()
    dataset = admin.get("/api/v1/datasets/diabetes/versions/1").json()
    assert dataset["sha256"] == hashlib.sha256(csv).hexdigest()


def test_a_failing_gate_on_an_unpromoted_model_registers_nothing(admin: httpx.Client) -> None:
    """Without a production alias a model's bare name serves its latest version, so a
    version that failed its gate would change serving: it is not registered."""
    spec = {
        **SPEC,
        "candidates": ["LinearRegression"],
        "search": {"method": "none", "cv": 2, "metric": "r2"},
        "optimize": {"onnx": False},
        "register": {"model": "never-promoted", "alias": "production"},
        "gate": "r2 >= 0.99",
    }
    job = run_job(admin, spec)
    registered = job["result"]["registered"]
    assert registered["version"] is None and not registered["gate"]["passed"]
    assert "no 'production' alias" in registered["not_registered"]
    assert admin.get("/api/v1/models/never-promoted").status_code == 404
    log = admin.get(f"/api/v1/jobs/{job['id']}/logs").json()["text"]
    assert "not registered" in log


@pytest.mark.parametrize("candidate", ["XGBRegressor", "LGBMRegressor"])
def test_xgboost_and_lightgbm_candidates_are_trained_and_served(
    admin: httpx.Client, candidate: str
) -> None:
    """Their scikit-learn wrappers are stored as skops (boosters in their frameworks' own
    formats) and served without trust, with the job's own test-split predictions."""
    spec = {
        **SPEC,
        "candidates": [{"estimator": candidate, "params": {"n_estimators": [20]}}],
        "search": {"method": "none", "cv": 2, "metric": "r2"},
        "optimize": {"onnx": False},
        "register": {"model": f"boosted-{candidate.lower()}", "alias": "production"},
        "gate": None,
    }
    job = run_job(admin, spec)
    assert job["state"] == "succeeded", job
    registered = job["result"]["registered"]
    assert registered["format"] == "skops" and registered["alias_moved"]
    assert job["result"]["best"]["estimator"] == candidate
    sample = job["result"]["test_sample"]
    response = admin.post(
        f"/models/{registered['model']}/predict", json={"features": sample["rows"]}
    )
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["prediction"], sample["predictions"], rtol=1e-5)
