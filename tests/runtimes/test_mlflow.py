"""MLflow model directories, saved with the mlflow package and pushed with the CLI as they
are, served by ModelPort's own runtimes (no MLflow at load) with the original model's
predictions through /predict and V2; pickles and pyfunc code only as trusted versions;
hostile MLmodel files refused with clear errors while the server stays up."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelport.client.packing import pack_folder
from modelport.errors import InvalidInputError
from modelport.runtimes.loader import inspect_upload
from tests.api.test_management import upload
from tests.cli.test_cli import modelport
from tests.conftest import ADMIN_KEY
from tests.runtimes.mlflow_models import COLUMNS, X_CLASSES, X_VALUES, pyfunc_expected, save_all
from tests.servers import ServerProcess, start_server

Saved = dict[str, tuple[Path, Any]]


@pytest.fixture(scope="module")
def saved_and_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Saved, ServerProcess]]:
    root = tmp_path_factory.mktemp("mlflow")
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        # The server starts (and is waited for) on a thread while the models are saved.
        starting = pool.submit(
            stack.enter_context,
            start_server(root / "data", "--allow-pickle", "--no-demo", admin_key=ADMIN_KEY),
        )
        models = save_all(root / "models")
        yield models, starting.result()


@pytest.fixture(scope="module")
def saved(saved_and_server: tuple[Saved, ServerProcess]) -> Saved:
    return saved_and_server[0]


@pytest.fixture(scope="module")
def trusting(saved_and_server: tuple[Saved, ServerProcess]) -> ServerProcess:
    return saved_and_server[1]


@pytest.fixture(scope="module")
def client(trusting: ServerProcess) -> Iterator[httpx.Client]:
    with trusting.http(ADMIN_KEY) as http:
        yield http


@pytest.fixture(scope="module")
def editor(client: httpx.Client) -> str:
    key: str = client.post("/api/v1/keys", json={"name": "mlflow-editor", "role": "editor"}).json()[
        "key"
    ]
    return key


def _push(
    server: ServerProcess, folder: Path, name: str, key: str = ADMIN_KEY
) -> subprocess.CompletedProcess[str]:
    return modelport(server, "models", "push", str(folder), "--name", name, key=key)


def _predict(client: httpx.Client, name: str, rows: np.ndarray) -> np.ndarray:
    response = client.post(f"/models/{name}/predict", json={"features": rows.tolist()})
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["prediction"])


def _v2(
    client: httpx.Client, name: str, rows: np.ndarray, output: str, datatype: str = "FP64"
) -> np.ndarray:
    body = {
        "inputs": [
            {
                "name": "features",
                "shape": list(rows.shape),
                "datatype": datatype,
                "data": rows.ravel().tolist(),
            }
        ],
        "outputs": [{"name": output}],
    }
    response = client.post(f"/v2/models/{name}/infer", json=body)
    assert response.status_code == 200, response.text
    out = response.json()["outputs"][0]
    return np.asarray(out["data"]).reshape(out["shape"])


def _pushed(
    server: ServerProcess, client: httpx.Client, saved: Saved, flavor: str
) -> dict[str, Any]:
    folder, _ = saved[flavor]
    pushed = _push(server, folder, f"ml-{flavor}")
    assert pushed.returncode == 0, pushed.stderr
    described: dict[str, Any] = client.get(f"/api/v1/models/ml-{flavor}/versions/1").json()
    return described


def test_sklearn_flavor(trusting: ServerProcess, client: httpx.Client, saved: Saved) -> None:
    described = _pushed(trusting, client, saved, "sklearn")
    assert described["format"] == "mlflow" and described["framework"] == "mlflow/sklearn"
    assert described["trusted"] is False and described["params"]["model_file"] == "model.skops"
    _, model = saved["sklearn"]
    rows = X_CLASSES[:20]
    np.testing.assert_array_equal(_predict(client, "ml-sklearn", rows), model.predict(rows))
    np.testing.assert_allclose(
        _v2(client, "ml-sklearn", rows, "predict_proba"), model.predict_proba(rows), rtol=1e-12
    )


def test_sklearn_flavor_trained_on_a_frame(
    trusting: ServerProcess, client: httpx.Client, saved: Saved
) -> None:
    described = _pushed(trusting, client, saved, "sklearn-frame")
    assert [spec["name"] for spec in described["signature"]["inputs"]] == COLUMNS
    _, model = saved["sklearn-frame"]
    import pandas as pd

    rows = X_CLASSES[:10]
    expected = model.predict(pd.DataFrame(rows, columns=COLUMNS))
    np.testing.assert_array_equal(_predict(client, "ml-sklearn-frame", rows), expected)
    split = {"dataframe_split": {"columns": COLUMNS, "data": rows.tolist()}}
    response = client.post("/models/ml-sklearn-frame/predict", json=split)
    assert response.status_code == 200 and response.json()["predictions"] == expected.tolist()


def test_xgboost_flavor(trusting: ServerProcess, client: httpx.Client, saved: Saved) -> None:
    described = _pushed(trusting, client, saved, "xgboost")
    assert described["framework"] == "mlflow/xgboost"
    _, model = saved["xgboost"]
    rows = X_CLASSES[:20]
    np.testing.assert_allclose(
        _predict(client, "ml-xgboost", rows), model.predict_proba(rows)[:, 1], rtol=1e-5
    )
    np.testing.assert_array_equal(_v2(client, "ml-xgboost", rows, "label"), model.predict(rows))


@pytest.mark.parametrize("flavor", ["lightgbm", "lightgbm-sklearn"])
def test_lightgbm_flavor(
    trusting: ServerProcess, client: httpx.Client, saved: Saved, flavor: str
) -> None:
    described = _pushed(trusting, client, saved, flavor)
    assert described["framework"] == "mlflow/lightgbm" and described["trusted"] is False
    _, model = saved[flavor]
    if flavor == "lightgbm":
        rows = X_VALUES[:20]
        np.testing.assert_allclose(
            _predict(client, f"ml-{flavor}", rows), model.predict(rows), rtol=1e-9
        )
    else:
        rows = X_CLASSES[:20]
        np.testing.assert_allclose(
            _predict(client, f"ml-{flavor}", rows), model.predict_proba(rows)[:, 1], rtol=1e-9
        )
        np.testing.assert_array_equal(
            _v2(client, f"ml-{flavor}", rows, "label"), model.predict(rows)
        )


def test_onnx_flavor(trusting: ServerProcess, client: httpx.Client, saved: Saved) -> None:
    described = _pushed(trusting, client, saved, "onnx")
    assert described["framework"] == "mlflow/onnx"
    _, model = saved["onnx"]
    rows = X_VALUES[:20].astype(np.float32)
    predicted = _v2(client, "ml-onnx", rows, "variable", datatype="FP32")
    np.testing.assert_allclose(predicted.ravel(), model.predict(rows), rtol=1e-4, atol=1e-3)


def test_pytorch_flavor(trusting: ServerProcess, client: httpx.Client, saved: Saved) -> None:
    import torch

    described = _pushed(trusting, client, saved, "pytorch")
    assert described["framework"] == "mlflow/pytorch" and described["trusted"] is False
    _, network = saved["pytorch"]
    rows = X_VALUES[:9].astype(np.float32)
    spec = described["signature"]["inputs"][0]
    body = {
        "inputs": [
            {
                "name": spec["name"],
                "shape": [9, 4],
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
        ]
    }
    response = client.post("/v2/models/ml-pytorch/infer", json=body)
    assert response.status_code == 200, response.text
    out = response.json()["outputs"][0]
    with torch.no_grad():
        expected = network(torch.from_numpy(rows)).numpy()
    np.testing.assert_allclose(np.asarray(out["data"]).reshape(out["shape"]), expected, rtol=1e-5)


def test_pickled_sklearn_flavor_needs_trust(
    trusting: ServerProcess, client: httpx.Client, saved: Saved, editor: str
) -> None:
    folder, model = saved["sklearn-pickle"]
    refused = _push(trusting, folder, "ml-pickle", key=editor)
    assert refused.returncode != 0 and "only admin keys" in refused.stderr
    assert "serialization_format='skops'" in refused.stderr
    assert client.get("/api/v1/models/ml-pickle").status_code == 404
    with pytest.raises(InvalidInputError, match="--allow-pickle"):
        inspect_upload(pack_folder(folder, folder.parent / "p.tar.gz"), False, True, None)

    described = _pushed(trusting, client, saved, "sklearn-pickle")
    assert described["trusted"] is True
    rows = X_CLASSES[:10]
    np.testing.assert_array_equal(_predict(client, "ml-sklearn-pickle", rows), model.predict(rows))


def test_pyfunc_model_is_served_only_when_trusted(
    trusting: ServerProcess, client: httpx.Client, saved: Saved, editor: str
) -> None:
    folder, _ = saved["pyfunc"]
    refused = _push(trusting, folder, "ml-pyfunc-editor", key=editor)
    assert refused.returncode != 0 and "only admin keys" in refused.stderr
    with pytest.raises(InvalidInputError, match="--allow-pickle"):
        inspect_upload(pack_folder(folder, folder.parent / "f.tar.gz"), False, True, None)

    described = _pushed(trusting, client, saved, "pyfunc")
    assert described["format"] == "mlflow-pyfunc" and described["trusted"] is True
    assert described["framework"] == "mlflow/python_function"
    rows = X_VALUES[:12]
    np.testing.assert_allclose(
        _predict(client, "ml-pyfunc", rows), pyfunc_expected(rows), rtol=1e-12
    )
    np.testing.assert_allclose(
        _v2(client, "ml-pyfunc", rows, "predict"), pyfunc_expected(rows), rtol=1e-12
    )


def test_pyfunc_without_mlflow_names_the_extra(saved: Saved, tmp_path: Path) -> None:
    archive = pack_folder(saved["pyfunc"][0], tmp_path / "pyfunc.tar.gz")
    script = (
        "import sys; sys.modules['mlflow'] = None\n"
        "from pathlib import Path\n"
        "from modelport.errors import InvalidInputError\n"
        "from modelport.runtimes.loader import inspect_upload\n"
        "try:\n"
        f"    inspect_upload(Path({str(archive)!r}), True, True, None)\n"
        "except InvalidInputError as exc:\n"
        "    print(exc.message)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert "pip install 'modelport[mlflow]'" in output and "pyfunc" in output


def _folder_with(tmp_path: Path, saved: Saved, mlmodel: str, name: str = "model") -> Path:
    folder = tmp_path / name
    shutil.copytree(saved["sklearn"][0], folder)
    (folder / "MLmodel").write_text(mlmodel)
    return folder


def _sklearn_mlmodel(
    model_file: str,
    inputs: str = '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]',
) -> str:
    return (
        "flavors:\n  sklearn:\n"
        f"    pickled_model: {json.dumps(model_file)}\n"
        "    serialization_format: skops\n"
        "signature:\n"
        f"  inputs: '{inputs}'\n"
        '  outputs: \'[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]\'\n'
    )


@pytest.mark.parametrize(
    ("mlmodel", "expected"),
    [
        ("flavors: [unclosed\n", "the MLmodel file is not valid YAML"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("flavors: {}\n", "names no flavors"),
        ("flavors:\n  transformers: {}\n", "has the flavors transformers"),
        (_sklearn_mlmodel("../outside.skops"), "outside the model folder"),
        (_sklearn_mlmodel("/etc/passwd"), "absolute path"),
        (_sklearn_mlmodel("missing.skops"), "which is not in the folder"),
        (_sklearn_mlmodel("."), "names the folder itself"),
        (_sklearn_mlmodel("data/.."), "outside the model folder"),
        (_sklearn_mlmodel("MLmodel"), "cannot read"),
        (
            _sklearn_mlmodel(
                "model.skops",
                '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 5]}}]',
            ),
            "takes 5 columns but its model file takes 4",
        ),
    ],
)
def test_hostile_mlmodel_files_are_refused(
    trusting: ServerProcess,
    client: httpx.Client,
    saved: Saved,
    tmp_path: Path,
    mlmodel: str,
    expected: str,
) -> None:
    folder = _folder_with(tmp_path, saved, mlmodel)
    response = upload(client, "hostile", pack_folder(folder, tmp_path / "hostile.tar.gz"))
    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]["message"]
    assert trusting.is_healthy()


def test_yaml_tags_that_build_objects_never_run(
    trusting: ServerProcess, client: httpx.Client, saved: Saved, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    mlmodel = f"flavors: !!python/object/apply:os.system ['touch {marker}']\n"
    folder = _folder_with(tmp_path, saved, mlmodel)
    response = upload(client, "tagged", pack_folder(folder, tmp_path / "tagged.tar.gz"))
    assert response.status_code == 400
    assert "not valid YAML" in response.json()["error"]["message"]
    assert not marker.exists()


def test_a_model_file_outside_the_folder_is_refused_even_when_it_exists(
    saved: Saved, tmp_path: Path
) -> None:
    from modelport.runtimes.mlflow import MLflowRuntime
    from modelport.runtimes.plugins import InspectOptions

    shutil.copy(saved["sklearn"][0] / "model.skops", tmp_path / "outside.skops")
    folder = _folder_with(tmp_path, saved, _sklearn_mlmodel("../outside.skops"))
    options = InspectOptions(allow_pickle=True, uploader_is_admin=True, signature=None)
    with pytest.raises(InvalidInputError, match="outside the model folder"):
        MLflowRuntime().inspect(folder, "mlflow", options)


WEIGHTS = np.arange(8, dtype=np.float32).reshape(4, 2)


def _onnx_with_external_weights(saved: Saved, folder: Path, location: str) -> Path:
    """The MLflow ONNX directory with a MatMul graph whose weights live in ``location``
    (relative to the .onnx file), written beside the folder or inside it."""
    from onnx import TensorProto, external_data_helper, helper, numpy_helper

    shutil.copytree(saved["onnx"][0], folder)
    weights = numpy_helper.from_array(WEIGHTS, "W")
    (folder / location).write_bytes(WEIGHTS.tobytes())
    external_data_helper.set_external_data(weights, location=location)
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    return folder


def test_onnx_external_data_is_read_only_inside_the_folder(saved: Saved, tmp_path: Path) -> None:
    from modelport.runtimes.mlflow import MLflowRuntime
    from modelport.runtimes.plugins import InspectOptions, LoadOptions

    runtime = MLflowRuntime()
    options = InspectOptions(allow_pickle=False, uploader_is_admin=False, signature=None)
    inside = _onnx_with_external_weights(saved, tmp_path / "inside", "weights.bin")
    inspected = runtime.inspect(inside, "mlflow", options)
    loaded = runtime.load(inside, "mlflow", inspected.signature, LoadOptions(False, False))
    rows = X_VALUES[:3].astype(np.float32)
    np.testing.assert_allclose(
        loaded.predict({"x": rows}, frozenset({"y"}))["y"], rows @ WEIGHTS, rtol=1e-6
    )

    (tmp_path / "outside").mkdir()
    outside = _onnx_with_external_weights(saved, tmp_path / "outside" / "model", "../weights.bin")
    assert (outside.parent / "weights.bin").is_file()  # it exists, and still is not read
    with pytest.raises(InvalidInputError, match="ONNX model could not be loaded"):
        runtime.inspect(outside, "mlflow", options)


def _signature_of(tmp_path: Path, inputs: str, outputs: str) -> Any:
    from modelport.runtimes.mlmodel import read_mlmodel

    (tmp_path / "MLmodel").write_text(
        "flavors:\n  python_function: {}\nsignature:\n"
        f"  inputs: {json.dumps(inputs)}\n  outputs: {json.dumps(outputs)}\n"
    )
    return read_mlmodel(tmp_path)


def test_mlflow_signatures_become_v2_tensors(tmp_path: Path) -> None:
    mixed = _signature_of(
        tmp_path,
        '[{"type": "string", "name": "city"}, {"type": "long", "name": "rooms"}]',
        '[{"type": "double"}]',
    ).signature
    assert [(s.name, s.datatype, s.shape) for s in mixed.inputs] == [
        ("city", "BYTES", [-1]),
        ("rooms", "INT64", [-1]),
    ]
    assert all(s.parameters == {"content_type": "pd"} for s in mixed.inputs)
    assert [(s.name, s.datatype, s.shape) for s in mixed.outputs] == [("predict", "FP64", [-1])]

    unnamed = _signature_of(
        tmp_path, '[{"type": "float"}, {"type": "float"}]', '[{"type": "long"}, {"type": "long"}]'
    ).signature
    assert unnamed.inputs[0].shape == [-1, 2] and unnamed.inputs[0].parameters == {
        "columns": [0, 1]
    }
    assert (unnamed.outputs[0].name, unnamed.outputs[0].shape) == ("predict", [-1, 2])

    tensors = _signature_of(
        tmp_path,
        '[{"type": "tensor", "name": "ids", "tensor-spec": {"dtype": "int64", "shape": [-1, 8]}},'
        ' {"type": "tensor", "name": "mask", "tensor-spec": {"dtype": "bool", "shape": [-1, 8]}}]',
        '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}]',
    ).signature
    assert [(s.name, s.datatype) for s in tensors.inputs] == [("ids", "INT64"), ("mask", "BOOL")]
    assert (tensors.outputs[0].name, tensors.outputs[0].shape) == ("predict", [-1, 3])


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [
        ('[{"type": "datetime", "name": "when"}]', "column of type datetime"),
        ("not json", "are not JSON"),
        (
            '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-2]}}]',
            "invalid shape",
        ),
        ('[{"type": "tensor"}, {"type": "double"}]', "mixes tensor and column specs"),
    ],
)
def test_signatures_that_cannot_be_mapped_are_explained(
    tmp_path: Path, inputs: str, problem: str
) -> None:
    read = _signature_of(tmp_path, inputs, '[{"type": "double"}]')
    assert read.signature is None and problem in (read.signature_problem or "")


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    "tail",
    [
        "mlflow_version: *i\nflavors:\n  sklearn: {pickled_model: model.skops}\n",
        "flavors:\n  python_function: {}\nsignature:\n  inputs: *i\n  outputs: *i\n",
    ],
)
def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path, tail: str) -> None:
    # 9**9 values from a 1 KB file: str() or a walk over them froze the server (holding
    # the GIL) and ate its memory before the fix. A child process, so a regression fails
    # the test instead of hanging the suite.
    (tmp_path / "MLmodel").write_text(BILLION_LAUGHS + tail)
    code = (
        "import sys; from pathlib import Path; from modelport.errors import InvalidInputError\n"
        "from modelport.runtimes.mlmodel import read_mlmodel\n"
        "try:\n    read_mlmodel(Path(sys.argv[1]))\n"
        "except InvalidInputError as exc:\n    print(exc.message)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail("reading the MLmodel file did not finish within 30 s")
    assert "YAML aliases" in done.stdout, done.stdout + done.stderr
