"""A memory budget for loaded models: least recently used versions are unloaded when a new
one would not fit, and come back on their next request."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.api.test_management import upload
from tests.conftest import ADMIN_KEY
from tests.models import regression, save_skops
from tests.servers import start_server


def test_least_recently_used_models_are_unloaded_to_fit_the_budget(tmp_path: Path) -> None:
    models = {f"m{i}": regression(n_features=4, seed=i) for i in range(3)}
    files = {name: save_skops(est, tmp_path / f"{name}.skops") for name, (est, _) in models.items()}
    budget = int(2.5 * max(path.stat().st_size for path in files.values()))
    args = ("--no-demo", "--model-memory-limit", str(budget))
    with start_server(tmp_path / "data", *args, admin_key=ADMIN_KEY) as server:
        with server.http(ADMIN_KEY) as admin:
            for name, path in files.items():
                assert upload(admin, name, path).status_code == 201

            def predict(name: str) -> None:
                estimator, x = models[name]
                response = admin.post(f"/models/{name}/predict", json={"features": x[:2].tolist()})
                assert response.status_code == 200, response.text
                assert np.allclose(response.json()["prediction"], estimator.predict(x[:2]))

            def ready() -> set[str]:
                index = admin.post("/v2/repository/index", json={"ready": True}).json()
                return {entry["name"] for entry in index}

            predict("m0")
            predict("m1")
            assert ready() == {"m0", "m1"}
            predict("m2")  # m0 is the least recently used: it makes room
            assert ready() == {"m1", "m2"}
            predict("m1")
            predict("m0")  # loads again; m2 is now the least recently used
            assert ready() == {"m1", "m0"}


def test_where_predict_runs_follows_its_cost_and_the_cores() -> None:
    from modelport.serving.model_cache import default_workers, runs_inline

    # One core: a thread runs nothing in parallel, so a few milliseconds stay inline.
    assert runs_inline(0.003, cpus=1) and not runs_inline(0.003, cpus=4)
    assert runs_inline(0.0005, cpus=4)
    assert not runs_inline(0.050, cpus=1)  # long predicts keep the loop responsive
    assert not runs_inline(None, cpus=1)  # unknown cost: a thread
    # Processes only with a core to spare, and only for slow predicts.
    assert default_workers(0.050, cpus=1) == 0
    assert default_workers(0.003, cpus=4) == 0
    assert default_workers(0.050, cpus=4) == 3
    assert default_workers(0.050, cpus=32) == 8


def test_a_loaded_model_keeps_the_short_path_after_the_registry_changes(tmp_path: Path) -> None:
    """Any registry write makes references resolve again, to new descriptions of the same
    versions; the loaded model must still be found without I/O (before the fix, every
    request after a write took the general path for good: a third fewer requests/s)."""
    models = {name: regression(n_features=4, seed=i) for i, name in enumerate(("m", "other"))}
    files = {name: save_skops(est, tmp_path / f"{name}.skops") for name, (est, _) in models.items()}
    with start_server(tmp_path / "data", "--no-demo", admin_key=ADMIN_KEY) as server:
        with server.http(ADMIN_KEY) as admin:
            estimator, x = models["m"]

            def predict() -> None:
                response = admin.post("/models/m/predict", json={"features": x[:1].tolist()})
                assert response.status_code == 200, response.text
                assert np.allclose(response.json()["prediction"], estimator.predict(x[:1]))

            def short_path_requests() -> int:
                loaded = admin.get("/api/v1/serving").json()["loaded"]
                (count,) = [item["short_path_requests"] for item in loaded if item["model"] == "m"]
                assert isinstance(count, int)
                return count

            assert upload(admin, "m", files["m"]).status_code == 201
            predict()
            assert upload(admin, "other", files["other"]).status_code == 201  # a write
            alias = admin.put("/api/v1/models/m/aliases/production", json={"version": 1})
            assert alias.status_code == 200, alias.text  # another write
            predict()  # resolves "m" again (a database lookup: the general path)
            before = short_path_requests()
            for _ in range(5):
                predict()
            assert short_path_requests() == before + 5
