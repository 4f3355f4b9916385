"""Open Inference Protocol V2 over REST with JSON tensors."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from modelport.server.demo import train_demo_model
from tests.servers import ServerProcess

ROW = [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8, 0.9, 1.0]


def infer_body(
    data: list[float] | list[list[float]], datatype: str = "FP64", shape: list[int] | None = None
) -> dict[str, object]:
    array = np.asarray(data)
    return {
        "id": "req-1",
        "inputs": [
            {
                "name": "features",
                "shape": shape if shape is not None else list(array.shape),
                "datatype": datatype,
                "data": data,
            }
        ],
    }


def test_health_routes_need_no_key(server: ServerProcess) -> None:
    with server.http() as anonymous:
        assert anonymous.get("/v2/health/live").status_code == 200
        assert anonymous.get("/v2/health/ready").status_code == 200
        assert anonymous.get("/v2").status_code == 401


def test_server_metadata(admin: httpx.Client) -> None:
    body = admin.get("/v2").json()
    assert body["name"] == "modelport"
    assert isinstance(body["extensions"], list)


def test_model_metadata_and_readiness(admin: httpx.Client) -> None:
    meta = admin.get("/v2/models/demo-linear").json()
    assert meta["name"] == "demo-linear"
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, 10]}]
    assert meta["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    assert admin.get("/v2/models/demo-linear/versions/1").json() == meta
    assert admin.get("/v2/models/demo-linear/versions/production").json() == meta
    ready = admin.get("/v2/models/demo-linear/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert admin.get("/v2/models/demo-linear/versions/1/ready").status_code == 200
    missing = admin.get("/v2/models/nope/ready")
    assert missing.status_code == 404
    assert "nope" in missing.json()["error"]


def test_infer_matches_the_model_and_names_the_version(admin: httpx.Client) -> None:
    estimator = train_demo_model().estimator
    rows = [ROW, [2.0] * 10]
    response = admin.post("/v2/models/demo-linear/infer", json=infer_body(rows))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "demo-linear"
    assert body["model_version"] == "1"
    assert body["id"] == "req-1"
    [output] = body["outputs"]
    assert output["name"] == "predict" and output["datatype"] == "FP64"
    assert output["shape"] == [2]
    assert np.allclose(output["data"], estimator.predict(np.asarray(rows)), rtol=1e-12)


@pytest.mark.parametrize(
    "datatype",
    [
        "FP64",
        "FP32",
        "FP16",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
    ],
)
def test_every_numeric_datatype_is_accepted(admin: httpx.Client, datatype: str) -> None:
    data = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    flat = admin.post(
        "/v2/models/demo-linear/versions/1/infer", json=infer_body(data, datatype, [1, 10])
    )
    assert flat.status_code == 200, flat.text
    nested = admin.post("/v2/models/demo-linear/infer", json=infer_body([data], datatype))
    assert nested.json()["outputs"] == flat.json()["outputs"]


def test_bool_input_is_decoded(admin: httpx.Client) -> None:
    data = [True, False] * 5
    response = admin.post("/v2/models/demo-linear/infer", json=infer_body([data], "BOOL"))
    assert response.status_code == 200, response.text


HOSTILE = [
    ("shape disagrees with data", infer_body(ROW, shape=[2, 10]), "needs 20 values"),
    ("wrong width", infer_body([[1.0, 2.0]]), "expects [-1,10]"),
    ("negative dimension", infer_body(ROW, shape=[-1, 10]), "negative"),
    ("overflowing shape", infer_body(ROW, shape=[2**62, 2**62]), "values"),
    ("unknown datatype", infer_body([ROW], datatype="FLOAT"), "unknown datatype"),
    ("BF16 in JSON", infer_body([ROW], datatype="BF16"), "binary"),
    ("strings for FP64", infer_body([["a"] * 10]), "numbers"),  # type: ignore[list-item]
    ("floats for INT32", infer_body([[1.5] * 10], datatype="INT32"), "integers"),
    ("out of range INT8", infer_body([[300] * 10], datatype="INT8"), "range"),
    ("numbers for BOOL", infer_body([[1] * 10], datatype="BOOL"), "true or false"),
    ("BYTES for a numeric model", infer_body([["x"] * 10], datatype="BYTES"), "numeric"),  # type: ignore[list-item]
    ("no inputs", {"inputs": []}, "non-empty"),
    ("inputs not a list", {"inputs": {"name": "x"}}, "non-empty"),
    ("missing data", {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64"}]}, "'data'"),
    (
        "duplicate input names",
        {"inputs": [infer_body([ROW])["inputs"][0]] * 2},  # type: ignore[index]
        "more than once",
    ),
    ("unknown output", {**infer_body([ROW]), "outputs": [{"name": "nope"}]}, "unknown output"),
    ("bad shape type", infer_body([ROW], shape=["1", "10"]), "list of integers"),  # type: ignore[list-item]
    ("id not a string", {**infer_body([ROW]), "id": 5}, "'id'"),
]


@pytest.mark.parametrize(
    ("body", "message"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE]
)
def test_bad_v2_requests_get_400_in_the_v2_error_shape(
    admin: httpx.Client, server: ServerProcess, body: dict[str, object], message: str
) -> None:
    response = admin.post("/v2/models/demo-linear/infer", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert isinstance(error, str)
    assert message in error
    assert server.is_healthy()


def test_v2_errors_for_unknown_model_and_missing_key(
    server: ServerProcess, admin: httpx.Client
) -> None:
    missing = admin.post("/v2/models/ghost/infer", json=infer_body([ROW]))
    assert missing.status_code == 404
    assert isinstance(missing.json()["error"], str)
    with server.http() as anonymous:
        unauthenticated = anonymous.post("/v2/models/demo-linear/infer", json=infer_body([ROW]))
    assert unauthenticated.status_code == 401
    assert isinstance(unauthenticated.json()["error"], str)
