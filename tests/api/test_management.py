"""The management API under /api/v1: models, uploads, versions, artifacts, aliases."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import skops.io as sio

from tests.models import CustomScaler, classifier, regression, save_skops, text_classifier
from tests.servers import ServerProcess


def upload(client: httpx.Client, name: str, path: Path, **fields: str) -> httpx.Response:
    with path.open("rb") as stream:
        return client.post(
            f"/api/v1/models/{name}/versions",
            files={"file": (path.name, stream, "application/octet-stream")},
            data=fields,
        )


def test_model_crud(admin: httpx.Client) -> None:
    created = admin.post(
        "/api/v1/models", json={"name": "crud", "description": "d", "tags": {"team": "a"}}
    )
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] == "bootstrap-admin"
    assert admin.post("/api/v1/models", json={"name": "crud"}).status_code == 409
    assert "crud" in [m["name"] for m in admin.get("/api/v1/models").json()]
    patched = admin.patch("/api/v1/models/crud", json={"description": "new"})
    assert patched.json()["description"] == "new"
    assert patched.json()["tags"] == {"team": "a"}
    assert admin.delete("/api/v1/models/crud").status_code == 204
    assert admin.get("/api/v1/models/crud").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a/b"},
        {"name": ""},
        {"name": "../x"},
        {"name": "x" * 300},
        {"nam": "x"},
        {"name": "ok", "tags": {"a": 1}},
        {"name": "ok", "extra": True},
    ],
)
def test_bad_model_bodies_are_rejected(admin: httpx.Client, body: dict[str, object]) -> None:
    response = admin.post("/api/v1/models", json=body)
    assert response.status_code in (400, 422) and response.status_code != 500
    assert response.json()["error"]["message"]


def test_upload_infers_signature_and_records_metadata(admin: httpx.Client, tmp_path: Path) -> None:
    estimator, x = regression(n_features=4)
    path = save_skops(estimator, tmp_path / "model.skops")
    response = upload(
        admin,
        "house-price",
        path,
        alias="staging",
        description="first",
        metrics=json.dumps({"r2": 0.97}),
        params=json.dumps({"alpha": 1}),
        tags=json.dumps({"owner": "ds"}),
    )
    assert response.status_code == 201, response.text
    version = response.json()
    assert version["version"] == 1
    assert version["artifact_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert version["artifact_size"] == path.stat().st_size
    assert version["format"] == "skops" and version["framework"] == "sklearn"
    assert version["signature"]["inputs"] == [
        {"name": "features", "datatype": "FP64", "shape": [-1, 4], "parameters": {}}
    ]
    assert version["metrics"] == {"r2": 0.97}
    assert version["params"]["alpha"] == 1 and version["params"]["estimator"] == "LinearRegression"
    assert version["aliases"] == ["staging"]
    prediction = admin.post(
        "/models/house-price@staging/predict", json={"features": x[:3].tolist()}
    )
    assert np.allclose(prediction.json()["prediction"], estimator.predict(x[:3]))


def test_versions_are_immutable_and_downloadable(admin: httpx.Client, tmp_path: Path) -> None:
    first = save_skops(regression(seed=1)[0], tmp_path / "a.skops")
    second = save_skops(regression(seed=2)[0], tmp_path / "b.skops")
    assert upload(admin, "immutable", first).json()["version"] == 1
    assert upload(admin, "immutable", second).json()["version"] == 2
    listed = admin.get("/api/v1/models/immutable/versions").json()
    assert [v["version"] for v in listed] == [1, 2]
    download = admin.get("/api/v1/models/immutable/versions/1/artifact")
    assert download.status_code == 200
    assert download.content == first.read_bytes()
    assert download.headers["x-artifact-sha256"] == listed[0]["artifact_sha256"]
    # There is no route that replaces a version's artifact.
    assert admin.put("/api/v1/models/immutable/versions/1", content=b"x").status_code == 405
    assert admin.get("/api/v1/models/immutable/versions/3").status_code == 404
    assert admin.get("/api/v1/models/immutable/versions/99999999999").status_code in (400, 422)


def test_classifier_with_string_classes(admin: httpx.Client, tmp_path: Path) -> None:
    estimator, x = classifier()
    version = upload(admin, "spam", save_skops(estimator, tmp_path / "c.skops")).json()
    outputs = {o["name"]: o for o in version["signature"]["outputs"]}
    assert outputs["predict"]["datatype"] == "BYTES"
    assert outputs["predict"]["parameters"]["classes"] == ["ham", "spam"]
    assert outputs["predict_proba"]["shape"] == [-1, 2]
    body = admin.post("/models/spam/predict", json={"features": x[:4].tolist()}).json()
    assert body["prediction"] == estimator.predict(x[:4]).tolist()
    v2 = admin.post(
        "/v2/models/spam/infer",
        json={
            "inputs": [
                {
                    "name": "features",
                    "shape": [2, 5],
                    "datatype": "FP64",
                    "data": x[:2].ravel().tolist(),
                }
            ],
            "outputs": [{"name": "predict_proba"}, {"name": "predict"}],
        },
    ).json()
    proba, labels = v2["outputs"]
    assert proba["name"] == "predict_proba" and proba["shape"] == [2, 2]
    assert np.allclose(proba["data"], estimator.predict_proba(x[:2]).ravel())
    assert labels["datatype"] == "BYTES" and labels["data"] == estimator.predict(x[:2]).tolist()


def test_text_model_takes_strings(admin: httpx.Client, tmp_path: Path) -> None:
    estimator = text_classifier()
    version = upload(admin, "texts", save_skops(estimator, tmp_path / "t.skops")).json()
    assert version["signature"]["inputs"][0]["datatype"] == "BYTES"
    texts = ["win free money", "lunch at noon"]
    simple = admin.post("/models/texts/predict", json={"features": texts})
    assert simple.json()["prediction"] == estimator.predict(texts).tolist()
    v2 = admin.post(
        "/v2/models/texts/infer",
        json={"inputs": [{"name": "input", "shape": [2], "datatype": "BYTES", "data": texts}]},
    )
    assert v2.json()["outputs"][0]["data"] == estimator.predict(texts).tolist()


def test_aliases_move_and_are_removed(admin: httpx.Client, tmp_path: Path) -> None:
    for seed in (3, 4):
        upload(admin, "aliased", save_skops(regression(seed=seed)[0], tmp_path / f"{seed}.skops"))
    assert (
        admin.put("/api/v1/models/aliased/aliases/production", json={"version": 1}).status_code
        == 200
    )
    row = {"features": [[0.5, 0.5, 0.5, 0.5]]}
    first = admin.post("/models/aliased/predict", json=row)
    assert first.headers["x-model-version"] == "1"
    admin.put("/api/v1/models/aliased/aliases/production", json={"version": 2})
    assert admin.post("/models/aliased/predict", json=row).headers["x-model-version"] == "2"
    assert admin.get("/api/v1/models/aliased/aliases").json() == {"production": 2}
    assert admin.delete("/api/v1/models/aliased/aliases/production").status_code == 204
    assert admin.delete("/api/v1/models/aliased/aliases/production").status_code == 404
    history = admin.get("/api/v1/models/aliased/alias-history").json()
    assert [(h["from_version"], h["version"]) for h in history] == [(None, 1), (1, 2), (2, None)]
    bad = admin.put("/api/v1/models/aliased/aliases/123", json={"version": 1})
    assert bad.status_code == 400 and "letter" in bad.json()["error"]["message"]
    assert admin.put("/api/v1/models/aliased/aliases/x", json={"version": "one"}).status_code == 400
    assert admin.put("/api/v1/models/aliased/aliases/x", json={"version": 7}).status_code == 404


@pytest.mark.parametrize(
    ("content", "fields", "status", "message"),
    [
        (b"not a model at all", {}, 400, "unrecognised"),
        (b"PK\x03\x04garbage-zip", {}, 400, "unrecognised"),
        (None, {"metrics": "{bad json"}, 400, "metrics"),
        (None, {"metrics": '{"r2": "high"}'}, 400, "numbers"),
        (None, {"alias": "../x"}, 400, "alias"),
        (None, {"signature": '{"inputs": [{"name": "x"}]}'}, 400, "signature"),
    ],
)
def test_bad_uploads_leave_nothing_behind(
    admin: httpx.Client,
    tmp_path: Path,
    content: bytes | None,
    fields: dict[str, str],
    status: int,
    message: str,
) -> None:
    path = tmp_path / "upload.bin"
    if content is None:
        save_skops(regression()[0], path)
    else:
        path.write_bytes(content)
    response = upload(admin, "rejected", path, **fields)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    versions = admin.get("/api/v1/models/rejected/versions")
    assert versions.status_code == 404 or versions.json() == []


def test_upload_needs_multipart_and_a_file(admin: httpx.Client) -> None:
    raw = admin.post(
        "/api/v1/models/x/versions",
        content=b"abc",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert raw.status_code == 415
    no_file = admin.post(
        "/api/v1/models/x/versions", data={"alias": "a"}, files={"other": ("a", b"b")}
    )
    assert no_file.status_code == 400 and "'file'" in no_file.json()["error"]["message"]


def test_skops_with_untrusted_type_is_refused(admin: httpx.Client, tmp_path: Path) -> None:
    from sklearn.pipeline import make_pipeline

    estimator, x = regression()
    pipeline = make_pipeline(CustomScaler(), estimator).fit(x, x[:, 0])
    path = tmp_path / "custom.skops"
    sio.dump(pipeline, path)
    response = upload(admin, "untrusted", path)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "does not trust" in message and "CustomScaler" in message


def test_skops_naming_os_system_is_refused_and_never_runs(
    admin: httpx.Client, server: ServerProcess, tmp_path: Path
) -> None:
    """A hand-edited skops file whose function node is ``os.system`` (FunctionTransformer
    would call it on predict): refused at upload, nothing runs, the server stays up."""
    import zipfile

    from sklearn.preprocessing import FunctionTransformer

    honest = tmp_path / "honest.skops"
    sio.dump(FunctionTransformer(func=np.log1p).fit(np.ones((3, 2))), honest)
    hostile = tmp_path / "hostile.skops"
    with zipfile.ZipFile(honest) as source, zipfile.ZipFile(hostile, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "schema.json":
                schema = json.loads(data)
                schema["content"]["content"]["func"].update(__class__="system", __module__="os")
                data = json.dumps(schema).encode()
            target.writestr(item, data)
    response = upload(admin, "os-system", hostile)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "does not trust" in message and "os.system" in message
    assert admin.get("/api/v1/models/os-system").status_code == 404
    assert server.is_healthy()
