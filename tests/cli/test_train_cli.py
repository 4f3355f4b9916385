"""``modelport datasets`` and ``modelport train/jobs`` against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import modelport
from tests.conftest import ADMIN_KEY
from tests.pipelines.training_data import diabetes_csv
from tests.servers import ServerProcess, start_server

SPEC = """
dataset: ./diabetes.csv
target: target
split: {test_size: 0.2, seed: 42}
candidates: [LinearRegression]
search: {method: none, cv: 3, metric: r2}
register: {model: cli-diabetes, alias: production}
gate: "r2 >= 0.3"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("train-cli") / "data"
    with start_server(data_dir, "--no-demo", admin_key=ADMIN_KEY) as process:
        yield process


def test_datasets_push_list_show(server: ServerProcess, tmp_path: Path) -> None:
    csv = diabetes_csv(tmp_path / "diabetes.csv")
    pushed = modelport(server, "datasets", "push", str(csv), "--name", "diab")
    assert pushed.returncode == 0, pushed.stderr
    assert "diab@1" in pushed.stdout and "442 rows" in pushed.stdout
    listed = modelport(server, "datasets", "list")
    assert "diab" in listed.stdout
    shown = json.loads(modelport(server, "datasets", "show", "diab").stdout)
    assert shown["versions"][0]["rows"] == 442
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    refused = modelport(server, "datasets", "push", str(empty), "--name", "e")
    assert refused.returncode == 1 and "empty" in refused.stderr


def test_train_wait_registers_and_reports(server: ServerProcess, tmp_path: Path) -> None:
    diabetes_csv(tmp_path / "diabetes.csv")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    trained = modelport(server, "train", str(spec), "--wait")
    assert trained.returncode == 0, trained.stderr + trained.stdout
    assert "uploaded" in trained.stdout and "dataset diabetes@1" in trained.stdout
    assert "registered cli-diabetes@1" in trained.stdout
    assert "alias 'production' now points to it" in trained.stdout
    jobs = modelport(server, "jobs", "list")
    assert "succeeded" in jobs.stdout and "cli-diabetes" in jobs.stdout
    shown = json.loads(modelport(server, "jobs", "show", "1").stdout)
    assert shown["result"]["registered"]["version"] == 1
    logs = modelport(server, "jobs", "logs", "1")
    assert "LinearRegression" in logs.stdout


def test_train_failures_exit_non_zero(server: ServerProcess, tmp_path: Path) -> None:
    diabetes_csv(tmp_path / "diabetes.csv")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("target: target", "target: nope"))
    missing = modelport(server, "train", str(spec), "--wait")
    assert missing.returncode == 1 and "target column 'nope'" in missing.stderr
    spec.write_text("dataset: [unclosed")
    broken = modelport(server, "train", str(spec))
    assert broken.returncode == 1 and "not valid YAML" in broken.stderr
    cancelled = modelport(server, "jobs", "cancel", "1")
    assert cancelled.returncode == 1 and "already succeeded" in cancelled.stderr


def test_train_builds_the_spec_from_options(server: ServerProcess, tmp_path: Path) -> None:
    csv = diabetes_csv(tmp_path / "flags.csv")
    options = ["--target", "target", "--candidates", "LinearRegression, Ridge"]
    options += ["--search", "none", "--cv", "2", "--test-size", "0.25", "--seed", "7"]
    options += ["--model", "flag-diabetes", "--alias", "production", "--gate", "r2 >= 0.1"]
    trained = modelport(server, "train", "--dataset", str(csv), *options, "--wait")
    assert trained.returncode == 0, trained.stderr + trained.stdout
    assert "registered flag-diabetes@1" in trained.stdout
    job_id = trained.stdout.split("job ", 1)[1].split()[0]
    spec = json.loads(modelport(server, "jobs", "show", job_id).stdout)["spec"]
    assert spec["candidates"] == ["LinearRegression", "Ridge"]
    assert spec["split"]["test_size"] == 0.25 and spec["split"]["seed"] == 7
    assert spec["search"]["method"] == "none" and spec["search"]["cv"] == 2
    # Options put over a spec file: the file's model name and gate are replaced.
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(SPEC.replace("./diabetes.csv", str(csv)))
    overridden = modelport(
        server, "train", str(spec_file), "--model", "flag-over", "--gate", "r2 >= 0.99", "--wait"
    )
    assert overridden.returncode == 0, overridden.stderr + overridden.stdout
    assert "gate failed" in overridden.stdout and "nothing registered" in overridden.stdout
    nothing = modelport(server, "train")
    assert nothing.returncode != 0 and "give a spec file" in nothing.stderr
    bad = modelport(
        server,
        "train",
        "--dataset",
        str(csv),
        "--target",
        "target",
        "--model",
        "x",
        "--candidates",
        "LinearRegression",
        "--cv",
        "1",
    )
    assert bad.returncode == 1 and "search.cv" in bad.stderr
