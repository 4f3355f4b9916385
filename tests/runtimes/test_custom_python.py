"""Custom Python models through a real server: a folder with modelport.json and a class,
pushed with the CLI by an admin to a server started with --allow-pickle, answered from a
worker process (never the server's); refused for editors and without --allow-pickle;
requirements checked; a model that kills its process fails only that request and the next
one is answered by a replacement; code that fails on import or load is a clear 400."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelport.client.packing import pack_folder
from modelport.errors import ForbiddenError, InvalidInputError
from modelport.runtimes.loader import inspect_upload, load_model
from modelport.types import Signature
from tests.api.test_management import upload
from tests.cli.test_cli import modelport
from tests.conftest import ADMIN_KEY
from tests.servers import ServerProcess, start_server

WEIGHTS = np.array([0.5, -2.0, 3.0])
ROWS = np.random.default_rng(5).normal(size=(6, 3))
CRASH = -999.0
"""A feature value on which the model's predict kills its own process."""

MODEL_SOURCE = f"""
import os

import numpy as np
from helpers import scale  # a sibling module of the model folder


class Model:
    def load(self, folder):
        self.weights = np.load(folder / "weights.npy")

    def predict(self, inputs):
        features = inputs["features"]
        if (features == {CRASH}).any():
            os._exit(1)
        rows = len(features)
        return {{
            "predict": scale(features @ self.weights),
            "pid": np.full(rows, os.getpid(), dtype=np.int64),
        }}
"""

SIGNATURE = {
    "inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 3]}],
    "outputs": [
        {"name": "predict", "datatype": "FP64", "shape": [-1]},
        {"name": "pid", "datatype": "INT64", "shape": [-1]},
    ],
}


def write_model(
    folder: Path,
    source: str = MODEL_SOURCE,
    requirements: list[str] | None = None,
    manifest: dict[str, object] | None = None,
) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(textwrap.dedent(source))
    (folder / "helpers.py").write_text("def scale(values):\n    return values * 2.0\n")
    np.save(folder / "weights.npy", WEIGHTS)
    document = manifest or {
        "class": "model:Model",
        "requirements": requirements if requirements is not None else ["numpy>=1.26"],
        "signature": SIGNATURE,
    }
    (folder / "modelport.json").write_text(json.dumps(document))
    return folder


@pytest.fixture(scope="module")
def trusting_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("custom") / "data"
    with start_server(data_dir, "--allow-pickle", "--no-demo", admin_key=ADMIN_KEY) as process:
        yield process


@pytest.fixture(scope="module")
def admin_client(trusting_server: ServerProcess) -> Iterator[httpx.Client]:
    with trusting_server.http(ADMIN_KEY) as client:
        yield client


@pytest.fixture(scope="module")
def custom_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("custom-model") / "model")


@pytest.fixture(scope="module")
def served(trusting_server: ServerProcess, custom_model: Path) -> str:
    pushed = modelport(trusting_server, "models", "push", str(custom_model), "--name", "custom")
    assert pushed.returncode == 0, pushed.stderr
    return "custom"


def _predict(client: httpx.Client, rows: np.ndarray) -> httpx.Response:
    return client.post("/models/custom/predict", json={"features": rows.tolist()})


def _pids(client: httpx.Client, rows: np.ndarray) -> set[int]:
    body = {
        "inputs": [
            {
                "name": "features",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ],
        "outputs": [{"name": "pid"}],
    }
    response = client.post("/v2/models/custom/infer", json=body)
    assert response.status_code == 200, response.text
    return set(response.json()["outputs"][0]["data"])


def test_custom_model_is_served_from_a_worker_process(
    served: str, admin_client: httpx.Client, trusting_server: ServerProcess
) -> None:
    described = admin_client.get("/api/v1/models/custom/versions/1").json()
    assert described["format"] == "python" and described["trusted"] is True
    assert described["params"]["requirements"] == ["numpy>=1.26"]

    response = _predict(admin_client, ROWS)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["prediction"], ROWS @ WEIGHTS * 2.0)

    body = {
        "inputs": [
            {"name": "features", "shape": [6, 3], "datatype": "FP64", "data": ROWS.ravel().tolist()}
        ],
        "outputs": [{"name": "predict"}],
    }
    v2 = admin_client.post("/v2/models/custom/infer", json=body)
    assert v2.status_code == 200, v2.text
    np.testing.assert_allclose(v2.json()["outputs"][0]["data"], ROWS @ WEIGHTS * 2.0)

    pids = _pids(admin_client, ROWS[:2])
    assert len(pids) == 1 and trusting_server.process.pid not in pids


def test_a_crash_fails_only_its_request_and_a_new_worker_answers_the_next(
    served: str, admin_client: httpx.Client, trusting_server: ServerProcess
) -> None:
    before = _pids(admin_client, ROWS[:1])
    crashing = ROWS[:2].copy()
    crashing[1, 0] = CRASH
    response = _predict(admin_client, crashing)
    assert response.status_code == 503, response.text
    message = response.json()["error"]["message"]
    assert "exited" in message and "retry" in message
    assert trusting_server.is_healthy()

    after = _predict(admin_client, ROWS)
    assert after.status_code == 200, after.text
    np.testing.assert_allclose(after.json()["prediction"], ROWS @ WEIGHTS * 2.0)
    replacement = _pids(admin_client, ROWS[:1])
    assert replacement.isdisjoint(before) and trusting_server.process.pid not in replacement
    state = _served_state(admin_client, "custom")
    assert state["worker_restarts"] == 1 and set(state["worker_pids"]) == replacement


def _served_state(client: httpx.Client, name: str) -> dict[str, object]:
    loaded = client.get("/api/v1/serving").json()["loaded"]
    found: dict[str, object] = next(entry for entry in loaded if entry["model"] == name)
    return found


def test_custom_code_never_predicts_in_the_server_process(
    served: str, admin_client: httpx.Client, trusting_server: ServerProcess
) -> None:
    # Even when asked to predict in the server process (0 workers), it gets one worker.
    changed = admin_client.put("/api/v1/models/custom/versions/1/serving", json={"workers": 0})
    assert changed.status_code == 200, changed.text
    pids = _pids(admin_client, ROWS[:2])
    assert trusting_server.process.pid not in pids
    state = _served_state(admin_client, "custom")
    assert state["workers"] == 1 and state["mode"] == "processes"


def test_an_untrusted_or_disallowed_version_is_not_loaded(custom_model: Path) -> None:
    signature = Signature.model_validate(SIGNATURE)
    for trusted, allow_pickle in [(False, True), (True, False)]:
        with pytest.raises(ForbiddenError, match="--allow-pickle"):
            load_model(custom_model, "python", signature, trusted, allow_pickle)


def test_custom_code_is_refused_for_editors_and_without_allow_pickle(
    trusting_server: ServerProcess,
    admin_client: httpx.Client,
    custom_model: Path,
    tmp_path: Path,
) -> None:
    editor = admin_client.post("/api/v1/keys", json={"name": "cp-editor", "role": "editor"})
    pushed = modelport(
        trusting_server,
        "models",
        "push",
        str(custom_model),
        "--name",
        "x",
        key=editor.json()["key"],
    )
    assert pushed.returncode != 0
    assert "only admin keys" in pushed.stderr
    assert admin_client.get("/api/v1/models/x").status_code == 404

    # A server without --allow-pickle refuses it before looking inside (no code runs).
    archive = pack_folder(custom_model, tmp_path / "custom.tar.gz")
    with pytest.raises(InvalidInputError, match="--allow-pickle"):
        inspect_upload(archive, allow_pickle=False, uploader_is_admin=True, signature=None)


def _push_folder(client: httpx.Client, folder: Path, name: str) -> httpx.Response:
    return upload(client, name, pack_folder(folder, folder.parent / f"{folder.name}.tar.gz"))


def test_unmet_requirements_are_listed(admin_client: httpx.Client, tmp_path: Path) -> None:
    folder = write_model(
        tmp_path / "needs",
        requirements=["nonexistent-package-xyz>=1", "numpy<1", "numpy>=1.26"],
    )
    response = _push_folder(admin_client, folder, "needs")
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "nonexistent-package-xyz>=1 (not installed)" in message
    assert "numpy<1 (installed: " in message and "numpy>=1.26" not in message
    assert "pip install" in message


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "raise RuntimeError('no GPU here')\n",
            "importing model failed: RuntimeError: no GPU here",
        ),
        ("import os\nos._exit(3)\n", "its process exited (code 3)"),
        (
            "class Model:\n    def load(self, folder):\n        raise KeyError('weights')\n",
            "Model failed to load: KeyError",
        ),
        ("class Other:\n    pass\n", "defines no class Model"),
        ("class Model:\n    pass\n", "has no predict(inputs) method"),
    ],
)
def test_code_that_fails_to_load_is_refused_at_upload(
    admin_client: httpx.Client,
    trusting_server: ServerProcess,
    tmp_path: Path,
    source: str,
    expected: str,
) -> None:
    response = _push_folder(admin_client, write_model(tmp_path / "broken", source), "broken")
    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]["message"]
    assert trusting_server.is_healthy()


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ({"class": "../evil:Model", "signature": SIGNATURE}, '"class": "module:Class"'),
        ({"class": "model", "signature": SIGNATURE}, '"class": "module:Class"'),
        ({"class": "missing:Model", "signature": SIGNATURE}, "has no missing.py"),
        ({"class": "json:Model", "signature": SIGNATURE}, "has no json.py"),
        ({"class": "model:Model"}, "needs a signature"),
        ({"class": "model:Model", "signature": {"inputs": "x"}}, "signature in modelport.json"),
        ({"class": "model:Model", "signature": SIGNATURE, "requirement": []}, "unknown keys"),
        (
            {"class": "model:Model", "signature": SIGNATURE, "requirements": "numpy"},
            "list of strings",
        ),
        (
            {"class": "model:Model", "signature": SIGNATURE, "requirements": ["num py!"]},
            "not valid",
        ),
    ],
)
def test_bad_manifests_are_refused_clearly(
    admin_client: httpx.Client, tmp_path: Path, manifest: dict[str, object], expected: str
) -> None:
    response = _push_folder(admin_client, write_model(tmp_path / "m", manifest=manifest), "bad")
    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]["message"]


def test_a_manifest_that_is_not_json_is_refused(admin_client: httpx.Client, tmp_path: Path) -> None:
    folder = write_model(tmp_path / "m")
    (folder / "modelport.json").write_text("{class: model:Model")
    response = _push_folder(admin_client, folder, "bad")
    assert response.status_code == 400
    assert "modelport.json is not valid JSON" in response.json()["error"]["message"]


def test_a_module_named_like_an_installed_one_is_refused(
    admin_client: httpx.Client, tmp_path: Path
) -> None:
    folder = write_model(tmp_path / "m", manifest={"class": "json:Model", "signature": SIGNATURE})
    (folder / "json.py").write_text(
        "class Model:\n    def predict(self, inputs):\n        return {}\n"
    )
    response = _push_folder(admin_client, folder, "shadow")
    assert response.status_code == 400, response.text
    assert "'json' is taken by an installed module" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("returned", "expected"),
    [("{}", "returned no output 'predict'"), ("[1.0]", "returned list, not a dict of arrays")],
)
def test_a_predict_that_breaks_the_contract_fails_clearly(
    admin_client: httpx.Client, tmp_path: Path, returned: str, expected: str
) -> None:
    source = f"class Model:\n    def predict(self, inputs):\n        return {returned}\n"
    name = f"contract-{len(returned)}"
    assert _push_folder(admin_client, write_model(tmp_path / "m", source), name).status_code == 201
    answered = admin_client.post(f"/models/{name}/predict", json={"features": ROWS[:1].tolist()})
    assert answered.status_code == 503
    assert expected in answered.json()["error"]["message"]
