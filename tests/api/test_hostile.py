"""Hostile input found by review: each gets a clear 4xx and the server stays healthy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.api.test_management import upload
from tests.conftest import ADMIN_KEY, REQUEST_LIMIT
from tests.models import classifier, save_skops
from tests.servers import ServerProcess

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_skops(classifier()[0], tmp_path_factory.mktemp("hostile") / "clf.skops")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/models/demo-linear/versions/%C2%B2/ready"),
        ("GET", "/v2/models/demo-linear/versions/%D9%A1"),
        ("POST", "/models/demo-linear@%C2%B2/predict"),
    ],
)
def test_non_ascii_digits_are_not_versions(admin: httpx.Client, method: str, path: str) -> None:
    response = admin.request(method, path, json={"features": [[0.0] * 10]})
    assert response.status_code in (400, 404), response.text


@pytest.mark.parametrize("name", ["rnl\n", "a\nb", "x\r"])
def test_names_with_line_breaks_are_refused(admin: httpx.Client, name: str) -> None:
    assert admin.post("/api/v1/models", json={"name": name}).status_code == 400
    alias = admin.put(f"/api/v1/models/demo-linear/aliases/{quote(name)}", json={"version": 1})
    assert alias.status_code in (400, 404)


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ({"inputs": [], "outputs": []}, "at least one input"),
        (
            {
                "inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 7]}],
                "outputs": [{"name": "predict", "datatype": "BYTES", "shape": [-1]}],
            },
            "shape",
        ),
        (
            {
                "inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 5]}],
                "outputs": [{"name": "foo", "datatype": "FP64", "shape": [-1]}],
            },
            "does not produce",
        ),
    ],
)
def test_signature_must_fit_the_model(
    admin: httpx.Client, model_file: Path, signature: dict[str, object], message: str
) -> None:
    response = upload(admin, "bad-signature", model_file, signature=json.dumps(signature))
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]


def test_renamed_input_in_a_given_signature_is_served(
    admin: httpx.Client, model_file: Path
) -> None:
    signature = {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 5]}],
        "outputs": [{"name": "predict", "datatype": "BYTES", "shape": [-1]}],
    }
    assert upload(admin, "renamed", model_file, signature=json.dumps(signature)).status_code == 201
    response = admin.post("/models/renamed/predict", json={"features": [[0.0] * 5]})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"params": DEEP}, "params"),
        ({"metrics": DEEP}, "metrics"),
        ({"metrics": '{"a": NaN}'}, "metrics"),
        ({"metrics": '{"a": 1e400}'}, "metrics"),
        ({"description": "a\x00b"}, "NUL"),
        ({"tags": '{"k": "a\\u0000b"}'}, "NUL"),
    ],
)
def test_bad_form_fields(
    admin: httpx.Client,
    server: ServerProcess,
    model_file: Path,
    fields: dict[str, str],
    message: str,
) -> None:
    response = upload(admin, "bad-fields", model_file, **fields)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]
    assert server.is_healthy()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/models", {"name": "n", "description": "a\x00b"}),
        ("/api/v1/models", {"name": "n", "tags": {"k": "v" * 5000}}),
        ("/api/v1/keys", {"name": "a\x00b", "role": "predict"}),
    ],
)
def test_bad_text_in_json_bodies(admin: httpx.Client, path: str, body: dict[str, object]) -> None:
    response = admin.post(path, json=body)
    assert response.status_code == 400, response.text


def test_alias_version_must_be_an_integer(admin: httpx.Client) -> None:
    for version in (True, "1", 1.0):
        response = admin.put("/api/v1/models/demo-linear/aliases/x", json={"version": version})
        assert response.status_code == 400, (version, response.text)


def test_overlong_multipart_boundary(admin: httpx.Client, server: ServerProcess) -> None:
    response = admin.post(
        "/api/v1/models/x/versions",
        content=b"--" + b"B" * 5000 + b"\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=" + "B" * 5000},
    )
    assert response.status_code == 400, response.text
    assert server.is_healthy()


def test_management_bodies_are_bounded(admin: httpx.Client, server: ServerProcess) -> None:
    body = {"name": "huge", "description": "x" * (REQUEST_LIMIT + 10)}
    response = admin.post("/api/v1/models", json=body)
    assert response.status_code == 413
    chunked = admin.post(
        "/api/v1/models",
        content=iter([b'{"name": "huge", "description": "', b"x" * REQUEST_LIMIT, b'"}']),
        headers={"Content-Type": "application/json"},
    )
    assert chunked.status_code == 413
    assert admin.get("/api/v1/models/huge").status_code == 404
    assert server.is_healthy()


def test_non_finite_output_is_a_4xx_not_null(admin: httpx.Client) -> None:
    row = [1e308, 1e308, 1, 1, 1, 1, 1, 1, 1, 1]
    response = admin.post("/predict", json={"features": [row]})
    assert response.status_code == 400
    assert "NaN or infinite" in response.json()["error"]["message"]


def test_cli_errors_stay_one_line(server: ServerProcess, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    env.update({"MODELPORT_URL": server.url, "MODELPORT_API_KEY": ADMIN_KEY})
    not_a_pickle = tmp_path / "notamodel.joblib"
    not_a_pickle.write_bytes(b"\x80garbage")
    cases = [
        ["predict", "demo-linear", "--data", "[[NaN,1,1,1,1,1,1,1,1,1]]"],
        ["models", "push", str(not_a_pickle), "--name", "x", "--convert", "skops"],
        ["models", "list", "--url", "http://[::1"],
        ["models", "list", "--api-key", "k\u00e9y"],
    ]
    for args in cases:
        result = subprocess.run(
            [sys.executable, "-m", "modelport", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert result.returncode != 0, args
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
