"""PyTorch models through real servers: an exported program and a state-dict folder
pushed with the CLI and served through /predict and V2 with the model's own outputs;
TorchScript refused for editors and without --allow-pickle, served when trusted; hostile
files refused with clear errors, their payloads never run, the server up throughout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from tests.api.test_management import upload
from tests.cli.test_cli import modelport
from tests.conftest import ADMIN_KEY
from tests.runtimes.test_pytorch import CODE_PATHS
from tests.runtimes.torch_models import (
    IN_FEATURES,
    expected,
    export_program,
    pickled_payload,
    save_state_dict_folder,
    save_torchscript,
    trained_mlp,
)
from tests.servers import ServerProcess, start_server

ROWS = np.random.default_rng(11).normal(size=(9, IN_FEATURES))
SIGNATURE = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, IN_FEATURES]}]})


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return trained_mlp(seed=5)


@pytest.fixture(scope="module")
def pickle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("torch-pickle") / "data"
    with start_server(data_dir, "--allow-pickle", "--no-demo", admin_key=ADMIN_KEY) as process:
        yield process


def _predict(client: httpx.Client, name: str, rows: np.ndarray) -> np.ndarray:
    response = client.post(f"/models/{name}/predict", json={"features": rows.tolist()})
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["prediction"])


def _v2(client: httpx.Client, name: str, input_name: str, rows: np.ndarray) -> np.ndarray:
    body = {
        "inputs": [
            {
                "name": input_name,
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
        ]
    }
    response = client.post(f"/v2/models/{name}/infer", json=body)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output["name"] == "output" and output["datatype"] == "FP32"
    return np.asarray(output["data"]).reshape(output["shape"])


def _agrees(predicted: np.ndarray, model: torch.nn.Module, rows: np.ndarray) -> None:
    np.testing.assert_allclose(predicted, expected(model, rows), rtol=1e-5, atol=1e-6)


def test_exported_program_pushed_with_the_cli(
    server: ServerProcess, admin: httpx.Client, model: torch.nn.Module, tmp_path: Path
) -> None:
    path = export_program(model, tmp_path / "model.pt2")
    pushed = modelport(server, "models", "push", str(path), "--name", "torch-export")
    assert pushed.returncode == 0, pushed.stderr
    version = admin.get("/api/v1/models/torch-export/versions/1").json()
    assert (version["format"], version["framework"], version["trusted"]) == (
        "torch-export",
        "torch",
        False,
    )
    assert version["signature"]["inputs"][0]["shape"] == [-1, IN_FEATURES]
    _agrees(_predict(admin, "torch-export", ROWS), model, ROWS)
    _agrees(_predict(admin, "torch-export", ROWS[:1]), model, ROWS[:1])
    _agrees(_v2(admin, "torch-export", "input", ROWS), model, ROWS)
    wrong = admin.post("/models/torch-export/predict", json={"features": [[1.0, 2.0]]})
    assert wrong.status_code == 400, wrong.text


def test_state_dict_folder_pushed_with_the_cli(
    server: ServerProcess, admin: httpx.Client, model: torch.nn.Module, tmp_path: Path
) -> None:
    folder = save_state_dict_folder(model, tmp_path / "mlp-folder")
    pushed = modelport(server, "models", "push", str(folder), "--name", "torch-folder")
    assert pushed.returncode == 0, pushed.stderr
    version = admin.get("/api/v1/models/torch-folder/versions/1").json()
    assert version["format"] == "torch-state-dict" and version["params"]["architecture"] == "mlp"
    _agrees(_predict(admin, "torch-folder", ROWS), model, ROWS)
    _agrees(_v2(admin, "torch-folder", "input", ROWS[:3]), model, ROWS[:3])


def test_torchscript_is_served_only_when_trusted(
    server: ServerProcess,
    admin: httpx.Client,
    pickle_server: ServerProcess,
    model: torch.nn.Module,
    tmp_path: Path,
) -> None:
    path = save_torchscript(model, tmp_path / "model.ts")
    refused = upload(admin, "torchscript", path, signature=SIGNATURE)
    assert refused.status_code == 400
    assert "--allow-pickle" in refused.json()["error"]["message"]
    with pickle_server.http(ADMIN_KEY) as trusted_admin:
        editor_key = trusted_admin.post(
            "/api/v1/keys", json={"name": "torch-editor", "role": "editor"}
        ).json()["key"]
        with pickle_server.http(editor_key) as editor:
            forbidden = upload(editor, "torchscript", path, signature=SIGNATURE)
        assert forbidden.status_code == 403
        assert "admin" in forbidden.json()["error"]["message"]
        unsigned = upload(trusted_admin, "torchscript", path)
        assert unsigned.status_code == 400 and "signature" in unsigned.json()["error"]["message"]
        accepted = upload(trusted_admin, "torchscript", path, signature=SIGNATURE)
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["trusted"] is True
        _agrees(_predict(trusted_admin, "torchscript", ROWS), model, ROWS)
        _agrees(_v2(trusted_admin, "torchscript", "x", ROWS), model, ROWS)
    assert server.is_healthy() and pickle_server.is_healthy()


def test_a_pt_pickle_payload_is_refused_and_never_runs(
    server: ServerProcess, admin: httpx.Client, pickle_server: ServerProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    path = pickled_payload(marker, tmp_path / "model.pt")
    refused = upload(admin, "evil-pt", path, signature=SIGNATURE)
    assert refused.status_code == 400
    message = refused.json()["error"]["message"]
    assert "runs code" in message and "torch.export" in message
    with pickle_server.http(ADMIN_KEY) as trusted_admin:
        editor_key = trusted_admin.post(
            "/api/v1/keys", json={"name": "evil-editor", "role": "editor"}
        ).json()["key"]
    with pickle_server.http(editor_key) as editor:
        assert upload(editor, "evil-pt", path, signature=SIGNATURE).status_code == 403
    assert not marker.exists()
    assert admin.get("/api/v1/models/evil-pt").status_code == 404
    assert server.is_healthy() and pickle_server.is_healthy()


@pytest.mark.parametrize("kind", list(CODE_PATHS))
def test_exported_programs_with_payloads_are_refused(
    server: ServerProcess, admin: httpx.Client, model: torch.nn.Module, tmp_path: Path, kind: str
) -> None:
    marker = tmp_path / "pwned"
    program = export_program(model, tmp_path / "model.pt2")
    hostile = CODE_PATHS[kind](program, marker, tmp_path / "hostile.pt2")
    refused = upload(admin, "evil-pt2", hostile)
    assert refused.status_code == 400
    assert "could run code" in refused.json()["error"]["message"]
    assert not marker.exists()
    assert server.is_healthy()


def _mlp(in_features: int, name: str = "mlp") -> dict[str, object]:
    return {
        "architecture": name,
        "args": {"in_features": in_features, "hidden": [16], "out_features": 2},
    }


@pytest.mark.parametrize(
    ("description", "message"),
    [
        (_mlp(7), "'0.weight' has shape [16, 4] but the architecture wants [16, 7]"),
        (_mlp(4, "transformer-xl"), "'transformer-xl', which is not registered"),
    ],
)
def test_state_dicts_that_do_not_fit_are_refused(
    server: ServerProcess,
    admin: httpx.Client,
    model: torch.nn.Module,
    tmp_path: Path,
    description: dict[str, object],
    message: str,
) -> None:
    folder = save_state_dict_folder(model, tmp_path / "bad-folder", description)
    pushed = modelport(server, "models", "push", str(folder), "--name", "bad-folder")
    assert pushed.returncode != 0
    assert message in pushed.stderr + pushed.stdout
    assert server.is_healthy()


def test_garbage_pt2_is_refused(server: ServerProcess, admin: httpx.Client, tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "garbage.pt2"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/archive_format", "pt2")
        archive.writestr("model/models/model.json", b"\xff\x00 not json")
    response = upload(admin, "garbage-pt2", path)
    assert response.status_code == 400
    assert "exported program" in response.json()["error"]["message"]
    truncated = tmp_path / "truncated.pt2"
    truncated.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    response = upload(admin, "garbage-pt2", truncated)
    assert response.status_code == 400
    assert server.is_healthy()
