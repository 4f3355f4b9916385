"""Processes serving one version map its large arrays from the same files instead of each
holding a copy (predict workers and ``--workers N``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
import skops.io as sio
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPRegressor

from modelport.runtimes.shared_arrays import share_arrays
from tests.api.test_management import upload
from tests.conftest import ADMIN_KEY
from tests.servers import start_server
from tests.serving.test_workers import loaded, until

RNG = np.random.default_rng(3)
X = RNG.random((20_000, 20))
KNN = KNeighborsRegressor(n_neighbors=3).fit(X, X.sum(axis=1))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_large_arrays_become_shared_read_only_maps(tmp_path: Path) -> None:
    mlp = MLPRegressor(hidden_layer_sizes=(256, 256), max_iter=5, random_state=0)
    mlp.fit(X[:500], X[:500].sum(axis=1))
    expected = mlp.predict(X[:50])
    data = sio.dumps(mlp)
    trusted = sio.get_untrusted_types(data=data)  # our own model: its optimizer type
    first = sio.loads(data, trusted=trusted)
    shared = share_arrays(first, tmp_path)
    assert shared >= 256 * 256 * 8  # the hidden-to-hidden weights
    assert any(isinstance(w, np.memmap) and not w.flags.writeable for w in first.coefs_)
    assert np.array_equal(first.predict(X[:50]), expected)
    files = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    second = sio.loads(data, trusted=trusted)  # another process loading the same version
    assert share_arrays(second, tmp_path) == shared
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == files  # reused
    assert np.array_equal(second.predict(X[:50]), expected)


def _mapped_files(pid: int) -> set[str]:
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {line.split()[-1] for line in lines if "shared-arrays" in line}


def test_predict_workers_map_the_same_files(tmp_path: Path) -> None:
    path = tmp_path / "knn.skops"
    sio.dump(KNN, path)
    with start_server(tmp_path / "data", "--no-demo", admin_key=ADMIN_KEY) as server:
        with server.http(ADMIN_KEY) as admin:
            serving = orjson.dumps({"workers": 2}).decode()
            assert upload(admin, "knn", path, serving=serving).status_code == 201
            for rows in (X[:3], X[100:140]):
                answer = admin.post("/models/knn/predict", json={"features": rows.tolist()})
                assert np.allclose(answer.json()["prediction"], KNN.predict(rows))
            pids = until(lambda: loaded(admin, "knn"))["worker_pids"]
        files = [_mapped_files(pid) for pid in pids]
        assert len(pids) == 2 and files[0] and files[0] == files[1], files
        assert all(name.endswith(".npy") for name in files[0])
