"""The datasets API through a real server: upload, versions, schema, preview, and hostile
uploads refused with a 4xx that says why, leaving nothing registered or stored."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.pipelines.training_data import customers_csv, customers_frame
from tests.servers import ServerProcess, start_server

UPLOAD_LIMIT = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("datasets") / "data"
    env = {"MODELPORT_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)}
    with start_server(data_dir, "--no-demo", admin_key=ADMIN_KEY, env=env) as process:
        yield process


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.http(ADMIN_KEY) as client:
        yield client


def _upload(
    admin: httpx.Client, name: str, filename: str, content: bytes, **fields: str
) -> httpx.Response:
    return admin.post(
        f"/api/v1/datasets/{name}/versions",
        files={"file": (filename, content, "application/octet-stream")},
        data=fields,
    )


def _stored_blobs(server: ServerProcess) -> set[str]:
    blobs = server.data_dir / "artifacts" / "blobs"
    return {path.name for path in blobs.rglob("*") if path.is_file()}


def test_upload_versions_schema_and_preview(admin: httpx.Client, tmp_path: Path) -> None:
    content = customers_csv(tmp_path / "customers.csv").read_bytes()
    first = _upload(admin, "customers", "customers.csv", content, description="first")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["version"] == 1 and body["rows"] == 240 and body["format"] == "csv"
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert {c["name"]: c["missing"] for c in body["columns"]}["city"] == 12
    parquet = tmp_path / "customers.parquet"
    customers_frame().to_parquet(parquet)
    second = _upload(admin, "customers", "customers.parquet", parquet.read_bytes())
    assert second.status_code == 201, second.text
    assert second.json()["version"] == 2 and second.json()["format"] == "parquet"

    listed = admin.get("/api/v1/datasets").json()
    assert [(d["name"], d["latest_version"]) for d in listed] == [("customers", 2)]
    assert admin.get("/api/v1/datasets/customers").json()["latest_version"] == 2
    versions = admin.get("/api/v1/datasets/customers/versions").json()
    assert [v["version"] for v in versions] == [1, 2]
    one = admin.get("/api/v1/datasets/customers/versions/1").json()
    assert one["description"] == "first" and one["filename"] == "customers.csv"

    preview = admin.get("/api/v1/datasets/customers/versions/1/preview", params={"limit": 3})
    assert preview.status_code == 200
    assert preview.json()["columns"] == ["age", "monthly", "city", "plan", "churn"]
    assert len(preview.json()["rows"]) == 3
    parquet_rows = admin.get("/api/v1/datasets/customers/versions/2/preview").json()["rows"]
    assert len(parquet_rows) == 20


@pytest.mark.parametrize(
    ("filename", "content", "fields", "status", "message"),
    [
        ("empty.csv", b"", {}, 400, "empty"),
        ("wide.csv", b",".join(b"c%d" % i for i in range(30_000)) + b"\n1\n", {}, 400, "columns"),
        ("fake.parquet", b"a,b\n1,2\n", {}, 400, "not a Parquet file"),
        ("fake.bin", b"a,b\n1,2\n", {"format": "parquet"}, 400, "not a Parquet file"),
        ("latin1.csv", b"name,x\ncaf\xe9,1\n", {}, 400, "not UTF-8"),
        ("header.csv", b"a,b\n", {}, 400, "no data rows"),
        ("big.csv", b"a\n" + b"1\n" * (UPLOAD_LIMIT // 2), {}, 413, "upload limit"),
    ],
)
def test_hostile_uploads_leave_nothing_behind(
    server: ServerProcess,
    admin: httpx.Client,
    filename: str,
    content: bytes,
    fields: dict[str, str],
    status: int,
    message: str,
) -> None:
    before = _stored_blobs(server)
    response = _upload(admin, "hostile", filename, content, **fields)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert admin.get("/api/v1/datasets/hostile").status_code == 404
    assert _stored_blobs(server) == before
    assert list((server.data_dir / "artifacts" / "tmp").glob("upload-*")) == []


def test_a_million_column_header_through_the_server(admin: httpx.Client) -> None:
    header = b",".join(b"c%d" % i for i in range(1_000_000)) + b"\n"
    assert len(header) < UPLOAD_LIMIT
    response = _upload(admin, "wide", "wide.csv", header)
    assert response.status_code == 400
    assert "header row is longer" in response.json()["error"]["message"]


@pytest.mark.parametrize("name", ["..", "a b", "-x", "x" * 129, "caf%C3%A9"])
def test_bad_dataset_names(admin: httpx.Client, name: str) -> None:
    response = _upload(admin, name, "d.csv", b"a\n1\n")
    assert response.status_code in (400, 404), response.text
    assert admin.get("/api/v1/datasets").json() == [] or all(
        d["name"] == "customers" for d in admin.get("/api/v1/datasets").json()
    )


def test_scopes_and_missing_things(server: ServerProcess, admin: httpx.Client) -> None:
    with server.http() as anonymous:
        assert anonymous.get("/api/v1/datasets").status_code == 401
    key = admin.post("/api/v1/keys", json={"name": "p", "role": "predict"}).json()["key"]
    with server.http(key) as predictor:
        assert predictor.get("/api/v1/datasets").status_code == 403
        assert _upload(predictor, "x", "x.csv", b"a\n1\n").status_code == 403
    assert admin.get("/api/v1/datasets/nope").status_code == 404
    assert admin.get("/api/v1/datasets/customers/versions/99").status_code == 404
    assert admin.get("/api/v1/datasets/customers/versions/0").status_code == 400
    limit = admin.get("/api/v1/datasets/customers/versions/1/preview", params={"limit": 10**6})
    assert limit.status_code == 400
    not_form = admin.post("/api/v1/datasets/x/versions", content=b"a\n1\n")
    assert not_form.status_code == 415
