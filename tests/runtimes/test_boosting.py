"""XGBoost (JSON and UBJSON) and LightGBM (text) models pushed as their frameworks save
them, served through /predict and V2 with the framework's own predictions; broken files
get clear errors; a server without the framework says which extra to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import lightgbm
import numpy as np
import pytest
import xgboost
from sklearn.datasets import make_classification, make_regression

from tests.api.test_management import upload
from tests.servers import ServerProcess

RNG = np.random.default_rng(7)


def _regression() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_regression(n_samples=300, n_features=6, noise=5.0, random_state=3)
    return x, y


def _classification(classes: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(
        n_samples=300, n_features=6, n_informative=4, n_classes=classes, random_state=3
    )
    return x, y


def _push(admin: httpx.Client, name: str, path: Path) -> dict[str, object]:
    response = upload(admin, name, path)
    assert response.status_code == 201, response.text
    described: dict[str, object] = response.json()
    return described


def _predict(admin: httpx.Client, name: str, rows: np.ndarray) -> np.ndarray:
    response = admin.post(f"/models/{name}/predict", json={"features": rows.tolist()})
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["prediction"])


def _v2(admin: httpx.Client, name: str, rows: np.ndarray, output: str) -> np.ndarray:
    body = {
        "inputs": [
            {
                "name": "features",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ],
        "outputs": [{"name": output}],
    }
    response = admin.post(f"/v2/models/{name}/infer", json=body)
    assert response.status_code == 200, response.text
    out = response.json()["outputs"][0]
    return np.asarray(out["data"]).reshape(out["shape"])


@pytest.mark.parametrize("suffix", ["json", "ubj"])
def test_xgboost_regressor_and_classifier(admin: httpx.Client, tmp_path: Path, suffix: str) -> None:
    x, y = _regression()
    regressor = xgboost.XGBRegressor(n_estimators=30, max_depth=3).fit(x, y)
    path = tmp_path / f"reg.{suffix}"
    regressor.save_model(path)
    described = _push(admin, f"xgb-reg-{suffix}", path)
    assert described["framework"] == "xgboost" and described["format"] == f"xgboost-{suffix}"
    rows = x[:25]
    expected = regressor.predict(rows)
    np.testing.assert_allclose(_predict(admin, f"xgb-reg-{suffix}", rows), expected, rtol=1e-6)

    xc, yc = _classification(3)
    classifier = xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(xc, yc)
    path = tmp_path / f"clf.{suffix}"
    classifier.save_model(path)
    _push(admin, f"xgb-clf-{suffix}", path)
    probabilities = _v2(admin, f"xgb-clf-{suffix}", xc[:10], "predict")
    np.testing.assert_allclose(probabilities, classifier.predict_proba(xc[:10]), rtol=1e-5)
    labels = _v2(admin, f"xgb-clf-{suffix}", xc[:10], "label")
    np.testing.assert_array_equal(labels, classifier.predict(xc[:10]))


def test_xgboost_binary_classifier_treats_nan_as_missing(
    admin: httpx.Client, tmp_path: Path
) -> None:
    x, y = _classification(2)
    x[RNG.random(x.shape) < 0.1] = np.nan
    classifier = xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(x, y)
    path = tmp_path / "binary.json"
    classifier.save_model(path)
    described = _push(admin, "xgb-binary", path)
    assert described["signature"]["outputs"][0]["shape"] == [-1]  # type: ignore[index]
    rows = x[:12]  # rows with NaN: sent as V2 binary FP64, where NaN can travel
    header = (
        b'{"inputs":[{"name":"features","shape":[12,6],"datatype":"FP64",'
        b'"parameters":{"binary_data_size":576}}],"outputs":[{"name":"predict"}]}'
    )
    response = admin.post(
        "/v2/models/xgb-binary/infer",
        content=header + rows.astype("<f8").tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.text
    predicted = np.asarray(response.json()["outputs"][0]["data"])
    np.testing.assert_allclose(predicted, classifier.predict_proba(rows)[:, 1], rtol=1e-5)


def test_lightgbm_regressor_and_multiclass(admin: httpx.Client, tmp_path: Path) -> None:
    x, y = _regression()
    regressor = lightgbm.LGBMRegressor(n_estimators=30, verbose=-1).fit(x, y)
    path = tmp_path / "reg.txt"
    regressor.booster_.save_model(path)
    described = _push(admin, "lgb-reg", path)
    assert described["framework"] == "lightgbm" and described["format"] == "lightgbm-text"
    np.testing.assert_allclose(
        _predict(admin, "lgb-reg", x[:25]), regressor.predict(x[:25]), rtol=1e-9
    )

    xc, yc = _classification(3)
    classifier = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(xc, yc)
    path = tmp_path / "clf.txt"
    classifier.booster_.save_model(path)
    _push(admin, "lgb-clf", path)
    np.testing.assert_allclose(
        _v2(admin, "lgb-clf", xc[:10], "predict"), classifier.predict_proba(xc[:10]), rtol=1e-9
    )
    np.testing.assert_array_equal(
        _v2(admin, "lgb-clf", xc[:10], "label"), classifier.predict(xc[:10])
    )
    wrong_width = admin.post("/models/lgb-clf/predict", json={"features": [[1.0, 2.0]]})
    assert wrong_width.status_code == 400
    assert "expects" in wrong_width.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"learner": {"broken": ', "XGBoost model could not be loaded"),
        (b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner\xff\xff", "XGBoost model could not be loaded"),
        (b"tree\nversion=v4\nnum_class=oops\n", "LightGBM model could not be loaded"),
        (b"tree\nversion=v4\n\xff\xfe\x00", "not a text model"),
    ],
)
def test_broken_framework_files_are_refused_clearly(
    admin: httpx.Client, server: ServerProcess, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "broken.bin"
    path.write_bytes(content)
    response = upload(admin, "broken-boosting", path)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]
    assert server.is_healthy()


def test_a_missing_framework_names_its_extra(tmp_path: Path) -> None:
    x, y = _regression()
    path = tmp_path / "reg.json"
    xgboost.XGBRegressor(n_estimators=3).fit(x, y).save_model(path)
    script = (
        "import sys; sys.modules['xgboost'] = None\n"
        "from modelport.errors import InvalidInputError\n"
        "from modelport.runtimes.loader import inspect_upload\n"
        "try:\n"
        f"    inspect_upload(__import__('pathlib').Path({str(path)!r}), False, True, None)\n"
        "except InvalidInputError as exc:\n"
        "    print(exc.message)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert "pip install 'modelport[xgboost]'" in output
