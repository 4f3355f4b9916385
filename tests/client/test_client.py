"""The Python SDK against a real server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modelport
from modelport import Client, ModelPortError
from modelport.errors import ConflictError, InvalidInputError, NotFoundError, UnauthenticatedError
from tests.conftest import ADMIN_KEY
from tests.models import regression, save_skops
from tests.servers import ServerProcess


def test_public_api_is_stable() -> None:
    assert set(modelport.__all__) == {"Client", "ModelPortError", "__version__"}
    assert set(modelport.client.__all__) == {"Client", "InferResult"}


def test_sdk_covers_the_registry_and_inference(server: ServerProcess, tmp_path: Path) -> None:
    estimator, x = regression(n_features=5, seed=21)
    with Client(server.url, api_key=ADMIN_KEY) as client:
        assert client.ready()
        assert client.whoami().role.value == "admin"
        created = client.create_model("sdk-model", description="via sdk", tags={"k": "v"})
        assert created.name == "sdk-model"
        with pytest.raises(ConflictError):
            client.create_model("sdk-model")
        progress: list[int] = []
        path = save_skops(estimator, tmp_path / "m.skops")
        version = client.push(
            path, "sdk-model", alias="production", metrics={"r2": 0.9}, on_progress=progress.append
        )
        assert version.version == 1 and version.aliases == ["production"]
        assert sum(progress) == path.stat().st_size
        assert client.get_version("sdk-model", 1).metrics == {"r2": 0.9}
        assert [v.version for v in client.list_versions("sdk-model")] == [1]
        assert np.allclose(client.predict("sdk-model", x[:3]), estimator.predict(x[:3]))
        small = client.infer("sdk-model", x[:2])  # JSON
        assert small.model_version == "1"
        assert np.allclose(small["predict"], estimator.predict(x[:2]))
        wide = np.repeat(x, 4, axis=0).astype(np.float32)  # 16 KB: binary, cast to FP64
        large = client.infer("sdk-model@production", wide)
        assert np.allclose(large["predict"], estimator.predict(wide.astype(np.float64)))
        forced = client.infer("sdk-model@1", x[:1], binary=True, outputs=["predict"])
        assert np.allclose(forced["predict"], estimator.predict(x[:1]))
        downloaded = client.download_artifact("sdk-model", 1, tmp_path / "copy.skops")
        assert downloaded.read_bytes() == path.read_bytes()
        client.set_alias("sdk-model", "staging", 1)
        assert client.get_model("sdk-model").aliases == {"production": 1, "staging": 1}
        client.remove_alias("sdk-model", "staging")
        assert len(client.alias_history("sdk-model")) == 3
        assert client.update_model("sdk-model", description="new").description == "new"
        key = client.create_key("sdk", "predict")
        assert key.id in [k.id for k in client.list_keys()]
        assert client.revoke_key(key.id).revoked_at is not None
        with pytest.raises(InvalidInputError, match="features"):
            client.predict("sdk-model", [[1.0, 2.0]])
        client.delete_model("sdk-model")
        with pytest.raises(NotFoundError):
            client.get_model("sdk-model")


def test_sdk_errors(server: ServerProcess) -> None:
    with Client(server.url, api_key="mp_bad") as client, pytest.raises(UnauthenticatedError):
        client.list_models()
    with Client("http://127.0.0.1:9", api_key=ADMIN_KEY) as client:
        with pytest.raises(ModelPortError, match="cannot reach"):
            client.list_models()
        assert not client.ready()
