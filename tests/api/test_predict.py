"""The simple /predict endpoint: the Flask tutorial's JSON, references, hostile input."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from modelport.server.demo import train_demo_model
from tests.conftest import REQUEST_LIMIT
from tests.servers import ServerProcess

ROW = [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8, 0.9, 1.0]


@pytest.fixture(scope="module")
def demo_estimator() -> object:
    return train_demo_model().estimator


def test_tutorial_client_gets_exactly_the_tutorial_json(
    admin: httpx.Client, demo_estimator: object
) -> None:
    rows = [ROW, [0.0] * 10, [1.5] * 10]
    response = admin.post("/predict", json={"features": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["prediction"]
    expected = demo_estimator.predict(np.asarray(rows))  # type: ignore[attr-defined]
    assert np.allclose(body["prediction"], expected, rtol=1e-12)
    assert response.headers["x-model-name"] == "demo-linear"
    assert response.headers["x-model-version"] == "1"


def test_curl_default_form_content_type_is_accepted(admin: httpx.Client) -> None:
    # `curl -d '{...}'` sends application/x-www-form-urlencoded; tutorial users rely on it.
    response = admin.post(
        "/predict",
        content=b'{"features": [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]]}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["prediction"]) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/models/demo-linear/predict",
        "/models/demo-linear@production/predict",
        "/models/demo-linear@1/predict",
        "/models/demo-linear/versions/1/predict",
        "/models/demo-linear/versions/production/predict",
    ],
)
def test_every_reference_form_reaches_the_same_version(admin: httpx.Client, path: str) -> None:
    expected = admin.post("/predict", json={"features": [ROW]}).json()
    response = admin.post(path, json={"features": [ROW]})
    assert response.status_code == 200, response.text
    assert response.json() == expected
    assert response.headers["x-model-version"] == "1"


def test_concurrent_callers_each_get_their_own_rows(
    admin: httpx.Client, server: ServerProcess
) -> None:
    import concurrent.futures

    estimator = train_demo_model().estimator
    rng = np.random.default_rng(7)
    batches = [rng.normal(size=(int(rng.integers(1, 6)), 10)) for _ in range(64)]

    def call(rows: np.ndarray) -> list[float]:
        with httpx.Client(base_url=server.url, headers=admin.headers) as client:
            response = client.post("/predict", json={"features": rows.tolist()})
            assert response.status_code == 200, response.text
            prediction: list[float] = response.json()["prediction"]
            return prediction

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, batches))
    for rows, result in zip(batches, results, strict=True):
        assert np.allclose(result, estimator.predict(rows), rtol=1e-12)


TOO_DEEP = b'{"features": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

HOSTILE = [
    ("wrong feature count", b'{"features": [[1, 2, 3]]}', "application/json", 400, "10 features"),
    (
        "non-numeric",
        b'{"features": [["a","b","c","d","e","f","g","h","i","j"]]}',
        "application/json",
        400,
        "numeric",
    ),
    (
        "mixed types",
        b'{"features": [[1, "b", 3, 4, 5, 6, 7, 8, 9, 10]]}',
        "application/json",
        400,
        "numeric",
    ),
    (
        "null value",
        b'{"features": [[null, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}',
        "application/json",
        400,
        "numbers",
    ),
    (
        "ragged rows",
        b'{"features": [[1,2,3,4,5,6,7,8,9,10],[1,2]]}',
        "application/json",
        400,
        "equal length",
    ),
    ("NaN", b'{"features": [[NaN,2,3,4,5,6,7,8,9,10]]}', "application/json", 400, "NaN"),
    (
        "Infinity",
        b'{"features": [[Infinity,2,3,4,5,6,7,8,9,10]]}',
        "application/json",
        400,
        "Infinity",
    ),
    (
        "overflowing number",
        b'{"features": [[1e999,2,3,4,5,6,7,8,9,10]]}',
        "application/json",
        400,
        "infinity",
    ),
    ("bad JSON", b'{"features": [[1,2,', "application/json", 400, "not valid JSON"),
    ("empty body", b"", "application/json", 400, "empty"),
    ("not an object", b"[1, 2, 3]", "application/json", 400, "object"),
    ("missing features", b'{"rows": [[1]]}', "application/json", 400, '"features"'),
    ("features not a list", b'{"features": 5}', "application/json", 400, "list of rows"),
    ("no rows", b'{"features": []}', "application/json", 400, "at least one row"),
    ("flat row", b'{"features": [1,2,3,4,5,6,7,8,9,10]}', "application/json", 400, "list of rows"),
    (
        "three dimensions",
        b'{"features": [[[1,2,3,4,5,6,7,8,9,10]]]}',
        "application/json",
        400,
        "shape",
    ),
    ("nested too deep", TOO_DEEP, "application/json", 400, "nested too deeply"),
    ("wrong content type", b"1,2,3", "text/csv", 415, "Content-Type"),
    ("xml content type", b"<features/>", "application/xml", 415, "application/json"),
    ("invalid UTF-8", b'{"features": "\xff\xfe"}', "application/json", 400, "JSON"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_bad_input_gets_a_clear_4xx_and_the_server_stays_healthy(
    admin: httpx.Client,
    server: ServerProcess,
    body: bytes,
    content_type: str,
    status: int,
    message: str,
) -> None:
    response = admin.post("/predict", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] in {"invalid_input", "unsupported_media_type"}
    assert message.lower() in error["message"].lower()
    assert "Traceback" not in error["message"] and "/work" not in error["message"]
    assert server.is_healthy()
    assert admin.post("/predict", json={"features": [ROW]}).status_code == 200


def test_body_over_the_limit_is_refused_with_413(
    admin: httpx.Client, server: ServerProcess
) -> None:
    row = b"[1,2,3,4,5,6,7,8,9,10],"
    body = b'{"features": [' + row * (REQUEST_LIMIT // len(row) + 1) + b"[1,2,3,4,5,6,7,8,9,10]]}"
    assert len(body) > REQUEST_LIMIT
    response = admin.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]
    assert server.is_healthy()


def test_unknown_model_and_alias_are_404(admin: httpx.Client) -> None:
    missing = admin.post("/models/no-such-model/predict", json={"features": [ROW]})
    assert missing.status_code == 404
    assert "no-such-model" in missing.json()["error"]["message"]
    alias = admin.post("/models/demo-linear@nope/predict", json={"features": [ROW]})
    assert alias.status_code == 404
    assert "alias 'nope'" in alias.json()["error"]["message"]
    version = admin.post("/models/demo-linear@999/predict", json={"features": [ROW]})
    assert version.status_code == 404


def test_invalid_reference_is_400(admin: httpx.Client) -> None:
    response = admin.post("/models/..%2Fetc@x/predict", json={"features": [ROW]})
    assert response.status_code in (400, 404)
    assert "error" in response.json()


def test_predict_needs_a_valid_key(server: ServerProcess, predict_key: str) -> None:
    with server.http() as anonymous:
        response = anonymous.post("/predict", json={"features": [ROW]})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    with server.http("mp_wrong") as wrong:
        assert wrong.post("/predict", json={"features": [ROW]}).status_code == 401
    with server.http(predict_key) as predictor:
        assert predictor.post("/predict", json={"features": [ROW]}).status_code == 200


@pytest.mark.parametrize(
    "features",
    [
        [[0.5] * 10, [1.5] * 10],
        [[1] * 10],  # integers widen to the model's FP64
        [[True] * 10],
        [[0.5] * 9],
        [[0.5] * 11],
        [[0.5] * 10, [0.5] * 9],
        [[[0.5] * 10]],
        [0.5] * 10,
        [["a"] * 10],
        [],
        [[]],
        [[1e308] * 10],
        "rows",
    ],
)
def test_the_short_path_answers_like_the_general_one(admin: httpx.Client, features: Any) -> None:
    """``{"features": ...}`` alone takes the short path; with ``params`` the general one."""
    admin.post("/predict", json={"features": [[0.0] * 10]})  # resolution cached, model loaded
    short = admin.post("/predict", json={"features": features})
    general = admin.post("/predict", json={"features": features, "params": {}})
    assert short.status_code == general.status_code, (short.text, general.text)
    assert short.json() == general.json()
    assert short.status_code in (200, 400)
