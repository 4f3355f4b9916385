"""Nothing lost, nothing half-written: cut-off uploads, concurrent uploads, corrupted blobs,
and pickles that would run code."""

from __future__ import annotations

import concurrent.futures
import os
import pickle
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.api.test_management import upload
from tests.conftest import ADMIN_KEY, UPLOAD_LIMIT
from tests.models import regression, save_joblib, save_skops
from tests.servers import ServerProcess, start_server


class RunsACommand:
    """A pickle payload: unpickling it would create ``marker`` through a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _blob_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "artifacts" / "blobs").rglob("*") if p.is_file()]


def _temp_files(data_dir: Path) -> list[Path]:
    return list((data_dir / "artifacts" / "tmp").iterdir())


def test_pickle_that_runs_a_command_is_refused_and_never_executed(
    admin: httpx.Client, server: ServerProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    payload = tmp_path / "model.pkl"
    payload.write_bytes(pickle.dumps(RunsACommand(marker)))
    response = upload(admin, "evil", payload)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "pickle" in message and "skops" in message and "--convert skops" in message
    assert not marker.exists()
    assert admin.get("/api/v1/models/evil").status_code == 404
    assert server.is_healthy()


@pytest.fixture(scope="module")
def pickle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("pickle") / "data"
    with start_server(data_dir, "--allow-pickle", admin_key=ADMIN_KEY) as process:
        yield process


def test_allow_pickle_accepts_only_admin_uploads(
    pickle_server: ServerProcess, tmp_path: Path
) -> None:
    with pickle_server.http(ADMIN_KEY) as admin:
        editor_key = admin.post("/api/v1/keys", json={"name": "e", "role": "editor"}).json()["key"]
        marker = tmp_path / "pwned"
        payload = tmp_path / "evil.pkl"
        payload.write_bytes(pickle.dumps(RunsACommand(marker)))
        with pickle_server.http(editor_key) as editor:
            refused = upload(editor, "evil", payload)
        assert refused.status_code == 403
        assert "admin" in refused.json()["error"]["message"]
        assert not marker.exists()

        estimator, x = regression()
        accepted = upload(admin, "legacy", save_joblib(estimator, tmp_path / "model.joblib"))
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["format"] == "pickle" and accepted.json()["trusted"] is True
        prediction = admin.post("/models/legacy/predict", json={"features": x[:2].tolist()})
        assert np.allclose(prediction.json()["prediction"], estimator.predict(x[:2]))


def test_pickle_versions_are_not_served_once_pickles_are_disallowed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    estimator, x = regression()
    with start_server(data_dir, "--allow-pickle", "--no-demo", admin_key=ADMIN_KEY) as first:
        with first.http(ADMIN_KEY) as admin:
            assert (
                upload(admin, "legacy", save_joblib(estimator, tmp_path / "m.joblib")).status_code
                == 201
            )
    with start_server(data_dir, "--no-demo", admin_key=ADMIN_KEY) as second:
        with second.http(ADMIN_KEY) as admin:
            response = admin.post("/models/legacy/predict", json={"features": x[:1].tolist()})
    assert response.status_code == 403
    assert "--allow-pickle" in response.json()["error"]["message"]


def test_upload_cut_off_halfway_leaves_no_version_and_no_blob(
    admin: httpx.Client, server: ServerProcess, tmp_path: Path
) -> None:
    content = save_skops(regression()[0], tmp_path / "m.skops").read_bytes()
    blobs_before = _blob_files(server.data_dir)
    boundary = "cutoffboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.skops"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    declared = len(head) + len(content) + len(tail)
    request = (
        "POST /api/v1/models/cutoff/versions HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(request + head + content[: len(content) // 2])
    # The server notices the disconnect; the model never appears and no blob is kept.
    assert admin.get("/api/v1/models/cutoff").status_code == 404
    for _ in range(100):
        if not _temp_files(server.data_dir):
            break
        admin.get("/v2/health/live")
    assert _blob_files(server.data_dir) == blobs_before
    assert _temp_files(server.data_dir) == []
    assert upload(admin, "cutoff", tmp_path / "m.skops").json()["version"] == 1


def test_upload_over_the_size_limit_is_refused_and_leaves_nothing(
    admin: httpx.Client, server: ServerProcess, tmp_path: Path
) -> None:
    big = tmp_path / "big.skops"
    big.write_bytes(os.urandom(UPLOAD_LIMIT + 1024))
    blobs_before = _blob_files(server.data_dir)
    response = upload(admin, "too-big", big)
    assert response.status_code == 413
    assert "MODELPORT_MAX_UPLOAD_BYTES" in response.json()["error"]["message"]
    assert admin.get("/api/v1/models/too-big").status_code == 404
    assert _blob_files(server.data_dir) == blobs_before
    assert _temp_files(server.data_dir) == []


def test_twenty_concurrent_uploads_get_twenty_distinct_versions(
    admin: httpx.Client, server: ServerProcess, tmp_path: Path
) -> None:
    _concurrent_uploads(server, tmp_path)


def test_twenty_concurrent_uploads_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    env = {"MODELPORT_DATABASE_URL": postgres_url}
    with start_server(tmp_path / "data", admin_key=ADMIN_KEY, env=env) as pg_server:
        assert "postgresql" in pg_server.output() or pg_server.is_healthy()
        _concurrent_uploads(pg_server, tmp_path)
        with pg_server.http(ADMIN_KEY) as admin:
            demo = admin.post("/predict", json={"features": [[0.0] * 10]})
            assert demo.status_code == 200


def _concurrent_uploads(server: ServerProcess, tmp_path: Path) -> None:
    paths = [save_skops(regression(seed=i)[0], tmp_path / f"m{i}.skops") for i in range(20)]

    def push(path: Path) -> int:
        with server.http(ADMIN_KEY) as client:
            response = upload(client, "concurrent", path)
            assert response.status_code == 201, response.text
            version: int = response.json()["version"]
            return version

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        numbers = list(pool.map(push, paths))
    assert sorted(numbers) == list(range(1, 21))
    with server.http(ADMIN_KEY) as client:
        versions = client.get("/api/v1/models/concurrent/versions").json()
    by_number = {v["version"]: v["artifact_sha256"] for v in versions}
    assert len(set(by_number.values())) == 20


def test_corrupted_blob_is_detected_on_load(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    estimator, x = regression()
    with start_server(data_dir, "--no-demo", admin_key=ADMIN_KEY) as first:
        with first.http(ADMIN_KEY) as admin:
            version = upload(admin, "fragile", save_skops(estimator, tmp_path / "m.skops")).json()
    sha = version["artifact_sha256"]
    blob = data_dir / "artifacts" / "blobs" / sha[:2] / sha
    damaged = bytearray(blob.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    blob.write_bytes(bytes(damaged))
    with start_server(data_dir, "--no-demo", admin_key=ADMIN_KEY) as second:
        with second.http(ADMIN_KEY) as admin:
            response = admin.post("/models/fragile/predict", json={"features": x[:1].tolist()})
            assert response.status_code == 503
            error = response.json()["error"]
            assert error["code"] == "artifact_corrupt"
            assert "sha256" in error["message"] and str(data_dir) not in error["message"]
            v2 = admin.post(
                "/v2/models/fragile/infer",
                json={
                    "inputs": [
                        {
                            "name": "features",
                            "shape": [1, 4],
                            "datatype": "FP64",
                            "data": [0, 0, 0, 0],
                        }
                    ]
                },
            )
            assert v2.status_code == 503 and "sha256" in v2.json()["error"]
            download = admin.get("/api/v1/models/fragile/versions/1/artifact")
            assert download.status_code == 503
            assert second.is_healthy()
