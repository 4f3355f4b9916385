"""Tabular bodies and content types: KServe V1 ``instances``, MLflow's ``dataframe_split`` /
``dataframe_records`` at ``/invocations``, DataFrame-trained models (one input per
column), V2 ``pd`` and ``base64`` content types, and the SDK with numpy and pandas."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelport import Client
from tests.api.test_management import upload
from tests.conftest import ADMIN_KEY
from tests.models import regression, save_skops
from tests.servers import ServerProcess

ROWS = [[0.1] * 10, [0.5] * 10]


@pytest.fixture(scope="module")
def churn(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> object:
    """A pipeline trained on a DataFrame with a categorical (string) column."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, 200).astype(float),
            "spend": rng.normal(50, 10, 200),
            "plan": rng.choice(["basic", "pro", "team"], 200),
        }
    )
    target = (frame["spend"] > 50).astype(int)
    pipeline = make_pipeline(
        make_column_transformer((StandardScaler(), ["age", "spend"]), (OneHotEncoder(), ["plan"])),
        LogisticRegression(),
    ).fit(frame, target)
    path = save_skops(pipeline, tmp_path_factory.mktemp("churn") / "churn.skops")
    response = upload(admin, "churn", path)
    assert response.status_code == 201, response.text
    return pipeline


def test_instances_and_mlflow_bodies(admin: httpx.Client) -> None:
    expected = admin.post("/predict", json={"features": ROWS}).json()["prediction"]
    instances = admin.post("/models/demo-linear/predict", json={"instances": ROWS})
    assert instances.json() == {"predictions": expected}
    split = {"dataframe_split": {"columns": [f"c{i}" for i in range(10)], "data": ROWS}}
    assert admin.post("/invocations", json=split).json() == {"predictions": expected}
    records = [{f"c{i}": v for i, v in enumerate(row)} for row in ROWS]
    assert admin.post("/invocations", json={"dataframe_records": records}).json() == {
        "predictions": expected
    }
    assert admin.post("/invocations", json={"inputs": ROWS}).json() == {"predictions": expected}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"features": ROWS, "instances": ROWS}, "exactly one"),
        ({"dataframe_split": {"columns": ["a"]}}, "dataframe_split"),
        ({"dataframe_split": [1, 2]}, "dataframe_split"),
        ({"dataframe_records": []}, "non-empty"),
        ({"instances": "x"}, "list"),
        ({"features": ROWS, "params": 5}, "params"),
    ],
)
def test_bad_tabular_bodies(admin: httpx.Client, body: dict[str, object], message: str) -> None:
    response = admin.post("/invocations", json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]


def test_dataframe_model_has_one_input_per_column(admin: httpx.Client, churn: object) -> None:
    meta = admin.get("/v2/models/churn").json()
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("age", "FP64"),
        ("spend", "FP64"),
        ("plan", "BYTES"),
    ]
    rows = [[30.0, 61.0, "pro"], [70.0, 40.0, "basic"]]
    frame = pd.DataFrame(rows, columns=["age", "spend", "plan"])
    expected = churn.predict(frame).tolist()  # type: ignore[attr-defined]
    assert admin.post("/models/churn/predict", json={"features": rows}).json() == {
        "prediction": expected
    }
    records = frame.to_dict(orient="records")
    assert admin.post("/models/churn/predict", json={"dataframe_records": records}).json() == {
        "predictions": expected
    }
    v2 = admin.post(
        "/v2/models/churn/infer",
        json={
            "parameters": {"content_type": "pd"},
            "inputs": [
                {"name": "age", "shape": [2], "datatype": "FP64", "data": [30.0, 70.0]},
                {"name": "spend", "shape": [2], "datatype": "FP64", "data": [61.0, 40.0]},
                {"name": "plan", "shape": [2], "datatype": "BYTES", "data": ["pro", "basic"]},
            ],
        },
    )
    assert v2.status_code == 200, v2.text
    assert v2.json()["outputs"][0]["data"] == expected
    missing = admin.post("/models/churn/predict", json={"dataframe_records": [{"age": 1.0}]})
    assert missing.status_code == 400 and "missing column" in missing.json()["error"]["message"]
    with Client(admin.base_url.__str__(), api_key=ADMIN_KEY) as client:
        result = client.infer("churn", frame)
    assert result["predict"].tolist() == expected


def test_pd_content_type_stacks_columns_for_a_matrix_model(admin: httpx.Client) -> None:
    expected = admin.post("/predict", json={"features": ROWS}).json()["prediction"]
    columns = [
        {"name": f"c{i}", "shape": [2], "datatype": "FP64", "data": [ROWS[0][i], ROWS[1][i]]}
        for i in range(10)
    ]
    body = {"parameters": {"content_type": "pd"}, "inputs": columns}
    response = admin.post("/v2/models/demo-linear/infer", json=body)
    assert response.status_code == 200, response.text
    assert np.allclose(response.json()["outputs"][0]["data"], expected)


def test_base64_bytes_in_and_out(admin: httpx.Client, tmp_path: Path) -> None:
    from tests.models import text_classifier

    estimator = text_classifier()
    upload(admin, "texts-b64", save_skops(estimator, tmp_path / "t.skops"))
    texts = ["win free money", "lunch at noon"]
    encoded = [base64.b64encode(t.encode()).decode() for t in texts]
    response = admin.post(
        "/v2/models/texts-b64/infer",
        json={
            "inputs": [
                {
                    "name": "input",
                    "shape": [2],
                    "datatype": "BYTES",
                    "data": encoded,
                    "parameters": {"content_type": "base64"},
                }
            ],
            "outputs": [{"name": "predict", "parameters": {"content_type": "base64"}}],
        },
    )
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert [base64.b64decode(v).decode() for v in output["data"]] == estimator.predict(
        texts
    ).tolist()
    bad = admin.post(
        "/v2/models/texts-b64/infer",
        json={
            "inputs": [
                {
                    "name": "input",
                    "shape": [1],
                    "datatype": "BYTES",
                    "data": ["%%%"],
                    "parameters": {"content_type": "base64"},
                }
            ]
        },
    )
    assert bad.status_code == 400 and "base64" in bad.json()["error"]


def test_sdk_sends_large_tensors_as_binary(server: ServerProcess, tmp_path: Path) -> None:
    estimator, x = regression(n_features=64, seed=5)
    with Client(server.url, api_key=ADMIN_KEY) as client:
        client.push(save_skops(estimator, tmp_path / "wide.skops"), "wide")
        result = client.infer("wide", x)
        assert np.allclose(result["predict"], estimator.predict(x))
        stats = httpx.get(
            f"{server.url}/v2/models/wide/stats", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ).json()
    assert stats["model_stats"][0]["inference_stats"]["success"]["count"] == 1
