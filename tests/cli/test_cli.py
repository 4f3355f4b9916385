"""The ``modelport`` command against a real server: push, list, show, alias, predict, keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ADMIN_KEY
from tests.models import regression, save_joblib, save_skops
from tests.servers import ServerProcess


def modelport(
    server: ServerProcess, *args: str, key: str | None = ADMIN_KEY, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    env.update({"MODELPORT_URL": server.url, "COLUMNS": "200"})
    if key:
        env["MODELPORT_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "modelport", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        input=stdin,
    )


def test_push_list_show_predict_alias(server: ServerProcess, tmp_path: Path) -> None:
    estimator, x = regression(n_features=3, seed=11)
    path = save_skops(estimator, tmp_path / "model.skops")
    pushed = modelport(
        server,
        "models",
        "push",
        str(path),
        "--name",
        "cli-house",
        "--alias",
        "production",
        "--description",
        "cli",
        "--metrics",
        '{"r2": 0.5}',
    )
    assert pushed.returncode == 0, pushed.stderr
    assert "cli-house@1" in pushed.stdout and "production" in pushed.stdout

    listed = modelport(server, "models", "list")
    assert listed.returncode == 0 and "cli-house" in listed.stdout

    shown = modelport(server, "models", "show", "cli-house")
    assert shown.returncode == 0
    details = json.loads(shown.stdout)
    assert details["aliases"] == {"production": 1}
    assert details["versions"][0]["metrics"] == {"r2": 0.5}

    predicted = modelport(server, "predict", "cli-house", "--data", json.dumps(x[:2].tolist()))
    assert predicted.returncode == 0, predicted.stderr
    assert np.allclose(json.loads(predicted.stdout)["prediction"], estimator.predict(x[:2]))

    second = save_skops(regression(n_features=3, seed=12)[0], tmp_path / "v2.skops")
    assert modelport(server, "models", "push", str(second), "--name", "cli-house").returncode == 0
    moved = modelport(server, "alias", "set", "cli-house", "staging", "2")
    assert moved.returncode == 0 and "version 2" in moved.stdout
    assert (
        modelport(server, "predict", "cli-house@staging", "--data", "[[1, 2, 3]]").returncode == 0
    )
    assert modelport(server, "alias", "rm", "cli-house", "staging").returncode == 0
    history = json.loads(modelport(server, "alias", "history", "cli-house").stdout)
    assert [(h["alias"], h["version"]) for h in history][-1] == ("staging", None)


def test_push_converts_joblib_to_skops_locally(server: ServerProcess, tmp_path: Path) -> None:
    estimator, x = regression(n_features=3, seed=13)
    path = save_joblib(estimator, tmp_path / "legacy.joblib")
    refused = modelport(server, "models", "push", str(path), "--name", "converted")
    assert refused.returncode == 1
    assert "--convert skops" in refused.stderr
    assert "Traceback" not in refused.stderr
    converted = modelport(
        server, "models", "push", str(path), "--name", "converted", "--convert", "skops"
    )
    assert converted.returncode == 0, converted.stderr
    assert "skops" in converted.stdout
    predicted = modelport(server, "predict", "converted", "--data", json.dumps(x[:1].tolist()))
    assert np.allclose(json.loads(predicted.stdout)["prediction"], estimator.predict(x[:1]))


def test_push_converts_to_onnx_after_checking_predictions(
    server: ServerProcess, tmp_path: Path
) -> None:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = make_classification(n_samples=400, n_features=8, n_informative=5, random_state=3)
    classifier = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    path = save_joblib(classifier, tmp_path / "hgb.joblib")
    pushed = modelport(
        server, "models", "push", str(path), "--name", "as-onnx", "--convert", "onnx"
    )
    assert pushed.returncode == 0, pushed.stderr
    assert "agrees with the original on 512 rows" in pushed.stdout
    assert "(onnx," in pushed.stdout
    answer = modelport(server, "predict", "as-onnx", "--data", json.dumps(x[:20].tolist()))
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["prediction"] == classifier.predict(x[:20]).tolist()

    from sklearn.kernel_ridge import KernelRidge  # skl2onnx has no converter for it

    unsupported = KernelRidge().fit(x, y)
    refused = modelport(
        server,
        "models",
        "push",
        str(save_joblib(unsupported, tmp_path / "kernel-ridge.joblib")),
        "--name",
        "not-convertible",
        "--convert",
        "onnx",
    )
    assert refused.returncode == 1
    assert "skl2onnx cannot convert this KernelRidge" in refused.stderr
    assert "push it as skops instead" in refused.stderr
    assert "Traceback" not in refused.stderr
    listed = modelport(server, "models", "list")
    assert "not-convertible" not in listed.stdout


def test_delete_asks_unless_yes(server: ServerProcess, tmp_path: Path) -> None:
    path = save_skops(regression(seed=14)[0], tmp_path / "m.skops")
    assert modelport(server, "models", "push", str(path), "--name", "doomed").returncode == 0
    declined = modelport(server, "models", "delete", "doomed", stdin="n\n")
    assert declined.returncode == 1
    assert modelport(server, "models", "delete", "doomed", "--yes").returncode == 0
    gone = modelport(server, "models", "show", "doomed")
    assert gone.returncode == 1 and "does not exist" in gone.stderr


def test_keys_create_list_revoke(server: ServerProcess) -> None:
    created = modelport(server, "keys", "create", "--role", "predict", "--name", "app")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("mp_")
    listed = modelport(server, "keys", "list")
    assert key[:11] in listed.stdout and key not in listed.stdout
    assert (
        modelport(
            server, "predict", "demo-linear", "--data", "[[0,0,0,0,0,0,0,0,0,0]]", key=key
        ).returncode
        == 0
    )
    key_id = next(line.split()[1] for line in listed.stdout.splitlines() if key[:11] in line)
    assert modelport(server, "keys", "revoke", key_id).returncode == 0
    revoked = modelport(server, "predict", "demo-linear", "--data", "[[0]]", key=key)
    assert revoked.returncode == 1 and "revoked" in revoked.stderr


def test_errors_are_one_clear_line(server: ServerProcess, tmp_path: Path) -> None:
    cases = [
        (("predict", "demo-linear", "--data", "[[1, 2]]"), "10 features"),
        (("predict", "demo-linear", "--data", "not json"), "valid JSON"),
        (("predict", "ghost", "--data", "[[1]]"), "does not exist"),
        (("keys", "create", "--role", "root"), "--role"),
        (("alias", "set", "demo-linear", "prod", "99"), "no version 99"),
    ]
    for args, message in cases:
        result = modelport(server, *args)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    no_key = modelport(server, "models", "list", key=None)
    assert no_key.returncode == 1 and "API key" in no_key.stderr
    unreachable = subprocess.run(
        [sys.executable, "-m", "modelport", "models", "list", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
    missing_file = modelport(server, "models", "push", str(tmp_path / "nope.skops"), "--name", "x")
    assert missing_file.returncode != 0 and "Traceback" not in missing_file.stderr


def test_error_messages_are_printed_as_text_not_markup(capsys: pytest.CaptureFixture[str]) -> None:
    from modelport.cli.output import fail

    fail("install it with: pip install 'modelport[torch]' [bold]x[/]")
    assert "pip install 'modelport[torch]' [bold]x[/]" in capsys.readouterr().err
