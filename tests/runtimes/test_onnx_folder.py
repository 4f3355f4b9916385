"""ONNX models with external data travel as folders: served through a real server, and
external-data locations that leave the folder are refused at upload."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelport import Client
from modelport.client.packing import pack_folder
from tests.api.test_management import upload
from tests.conftest import ADMIN_KEY
from tests.servers import ServerProcess

WEIGHTS = np.arange(12, dtype=np.float32).reshape(4, 3) / 10


def _model_with_external_data(folder: Path) -> Path:
    folder.mkdir(parents=True)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "W"], ["scores"])],
        "external",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(WEIGHTS, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "model.onnx"
    onnx.save_model(
        model, path, save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    return path


def _point_weights_at(model_path: Path, location: str) -> None:
    model = onnx.load(model_path, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, model_path)


def test_a_folder_with_external_data_is_served(
    admin: httpx.Client, server: ServerProcess, tmp_path: Path
) -> None:
    _model_with_external_data(tmp_path / "model")
    with Client(server.url, api_key=ADMIN_KEY) as client:
        version = client.push(tmp_path / "model", "onnx-external")  # packed by the client
    assert version.format == "onnx-folder"
    rows = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, -1.0, 2.0]]
    answer = admin.post("/models/onnx-external/predict", json={"features": rows})
    assert answer.status_code == 200, answer.text
    expected = np.asarray(rows, dtype=np.float32) @ WEIGHTS
    np.testing.assert_allclose(answer.json()["prediction"], expected, rtol=1e-6)


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/hostname", "missing.bin"])
def test_external_data_outside_the_folder_is_refused(
    admin: httpx.Client, server: ServerProcess, tmp_path: Path, location: str
) -> None:
    model_path = _model_with_external_data(tmp_path / "model")
    (tmp_path / "secret.bin").write_bytes((tmp_path / "model" / "weights.bin").read_bytes())
    _point_weights_at(model_path, location)
    archive = pack_folder(tmp_path / "model", tmp_path / "model.tar.gz")
    response = upload(admin, "onnx-escape", archive)
    assert response.status_code == 400, response.text
    assert "could not be loaded" in response.json()["error"]["message"]
    assert server.is_healthy()


def test_a_single_onnx_file_cannot_pull_in_external_data(
    admin: httpx.Client, server: ServerProcess, tmp_path: Path
) -> None:
    model_path = _model_with_external_data(tmp_path / "model")
    response = upload(admin, "onnx-lonely", model_path)  # weights.bin stays behind
    assert response.status_code == 400, response.text
    assert "could not be loaded" in response.json()["error"]["message"]
