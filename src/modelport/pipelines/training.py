"""One pipeline run, from a dataset file to a saved model and everything its registration
needs: load, check the target, split, search, refit the winner, test, optionally convert
to ONNX, and measure the baseline the gate compares with. Runs in a job's worker process
(see ``pipelines.worker``); it never touches the database."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelport.datasets.files import json_value, read_frame
from modelport.errors import InvalidInputError
from modelport.pipeline_spec import DEFAULT_METRIC, PipelineSpec, metrics_for
from modelport.pipelines.baseline import Baseline, evaluate_baseline
from modelport.pipelines.data_profile import reference_profile
from modelport.pipelines.estimators import make_estimator
from modelport.pipelines.metrics import test_metrics
from modelport.pipelines.optimization import try_onnx
from modelport.pipelines.preprocessing import (
    FeatureLayout,
    build_preprocessor,
    choose_features,
    model_input,
)
from modelport.pipelines.search import (
    SearchProblem,
    folds_for,
    make_pipeline,
    rows_of,
    run_search,
)
from modelport.runtimes.sklearn_walk import import_skops_io

TEST_SAMPLE_ROWS = 20
MAX_CLASSES = 1000


@dataclass(frozen=True)
class DatasetFile:
    """A registered dataset version as the worker receives it."""

    name: str
    version: int
    sha256: str
    path: Path
    format: str


class Reporter:
    """How a run tells the world where it is (progress) and what it did (log lines)."""

    def __init__(self, progress: Callable[..., None], log: Callable[[str], None]) -> None:
        self.progress = progress
        self.log = log


def _target(frame: Any, spec: PipelineSpec, log: Callable[[str], None]) -> tuple[Any, str]:
    """The frame without rows whose target is missing, and the task."""
    from pandas.api import types

    if spec.target not in frame.columns:
        raise InvalidInputError(
            f"target column '{spec.target}' is not in the dataset; its columns are "
            + ", ".join(map(str, list(frame.columns)[:50]))
        )
    missing = int(frame[spec.target].isna().sum())
    if missing:
        log(f"dropping {missing} row(s) whose target is missing")
        frame = frame[frame[spec.target].notna()].reset_index(drop=True)
    column = frame[spec.target]
    numeric = types.is_numeric_dtype(column.dtype) and not types.is_bool_dtype(column.dtype)
    task = spec.task or _inferred_task(column, numeric)
    if task == "regression" and not numeric:
        example = next((str(v) for v in column if not _is_number(v)), "")
        raise InvalidInputError(
            f"target '{spec.target}' is not numeric (it holds values such as {example[:40]!r}), "
            "so it cannot be a regression target; use task: classification"
        )
    if len(frame) < 4:
        raise InvalidInputError(f"the dataset has {len(frame)} usable rows; at least 4 are needed")
    return frame, task


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _inferred_task(column: Any, numeric: bool) -> str:
    """Text, booleans and whole numbers with few distinct values are classes."""
    if not numeric:
        return "classification"
    values = column.to_numpy()
    whole = np.all(np.mod(values, 1) == 0)
    return "classification" if whole and column.nunique() <= 20 else "regression"


def _target_values(column: Any, task: str) -> np.ndarray:
    if task == "regression":
        return np.asarray(column.to_numpy(dtype=np.float64))
    values = column.to_numpy()
    if values.dtype.kind in "iub":
        return np.asarray(values)
    return np.asarray([str(v) for v in values], dtype=object)


def _split(spec: PipelineSpec, task: str, target: np.ndarray, log: Callable[[str], None]) -> Any:
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(target))
    stratify = None
    wanted = spec.split.stratify if spec.split.stratify is not None else task == "classification"
    if wanted and task == "classification":
        counts = np.unique(target, return_counts=True)[1]
        if len(counts) > MAX_CLASSES:
            raise InvalidInputError(f"the target has {len(counts)} classes; at most {MAX_CLASSES}")
        if counts.min() >= 2:
            stratify = target
        else:
            log("a class has a single row: the test split is not stratified")
    try:
        return train_test_split(
            indices, test_size=spec.split.test_size, random_state=spec.split.seed, stratify=stratify
        )
    except ValueError as exc:
        raise InvalidInputError(f"the dataset cannot be split: {exc}") from None


def _sample_rows(features: Any, layout: FeatureLayout, count: int) -> list[Any]:
    if layout.is_matrix:
        return [[json_value(v) for v in row] for row in features[:count]]
    head = features.iloc[:count]
    return [
        {k: json_value(v) for k, v in zip(layout.columns, row, strict=True)}
        for row in head.itertuples(index=False)
    ]


def _predictions_digest(predicted: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(predicted).astype(str).tobytes()).hexdigest()


def _libraries() -> dict[str, str]:
    import platform

    versions = {"python": platform.python_version()}
    for module in ("sklearn", "numpy", "pandas", "skops", "onnxruntime", "skl2onnx"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            continue
    return versions


def run_pipeline(
    spec: PipelineSpec,
    dataset: DatasetFile,
    work_dir: Path,
    reporter: Reporter,
    baseline: Baseline | None = None,
) -> dict[str, Any]:
    """Train, test and save the model; returns what registration records."""
    started = time.perf_counter()
    log = reporter.log
    reporter.progress(stage="load", message=f"reading {dataset.name}@{dataset.version}")
    frame, task = _target(read_frame(dataset.path, dataset.format), spec, log)
    metric = spec.search.metric or DEFAULT_METRIC[task]
    if metric not in metrics_for(task):
        raise InvalidInputError(f"metric '{metric}' does not apply to {task}")
    layout = choose_features(frame, spec.target, spec.features, log)
    log(f"task {task}, metric {metric}, {len(frame)} rows, features: {', '.join(layout.columns)}")
    features, target = model_input(frame, layout), _target_values(frame[spec.target], task)
    reporter.progress(stage="split")
    train, test = _split(spec, task, target, log)
    x_train, x_test, y_train, y_test = (
        rows_of(features, train),
        rows_of(features, test),
        target[train],
        target[test],
    )
    preprocessor = build_preprocessor(layout, spec.preprocessing)
    seed = spec.split.seed
    stratify = spec.split.stratify is not False
    problem = SearchProblem(
        task,
        metric,
        seed,
        preprocessor,
        x_train,
        y_train,
        folds_for(task, stratify, spec.search.cv, seed, y_train, log),
    )
    leaderboard = run_search(problem, spec.candidate_specs(), spec.search, reporter.progress, log)
    best = leaderboard[0]
    if not math.isfinite(best.cv_mean):
        raise InvalidInputError(f"every candidate failed; {best.estimator}: {best.error}")
    log(f"winner: {best.estimator} {best.params} ({metric} {best.cv_mean:.6g} in CV)")
    reporter.progress(stage="refit", candidate=best.estimator)
    model = make_pipeline(preprocessor, make_estimator(best.estimator, task, seed, best.params))
    model.fit(x_train, y_train)
    reporter.progress(stage="test")
    metrics = test_metrics(task, model, x_test, y_test)
    log("test metrics: " + ", ".join(f"{k} {v:.6g}" for k, v in metrics.items()))
    artifact, onnx, predicted = _save(spec, model, layout, x_test, task, work_dir, reporter)
    baseline_result = (
        evaluate_baseline(baseline, frame.iloc[test], x_test, y_test, layout, metric, log)
        if baseline is not None
        else None
    )
    return {
        "task": task,
        "metric": metric,
        "features": {
            "columns": layout.columns,
            "numeric": layout.numeric,
            "categorical": layout.categorical,
            "input": "features" if layout.is_matrix else "columns",
        },
        "split": {
            "test_size": spec.split.test_size,
            "seed": seed,
            "train_rows": len(train),
            "test_rows": len(test),
        },
        "leaderboard": [r.as_json() for r in leaderboard],
        "best": {"estimator": best.estimator, "params": best.params, "cv_mean": best.cv_mean},
        "test_metrics": metrics,
        "onnx": onnx,
        "artifact": str(artifact),
        "test_sample": {
            "rows": _sample_rows(x_test, layout, TEST_SAMPLE_ROWS),
            "predictions": [json_value(v) for v in predicted[:TEST_SAMPLE_ROWS]],
        },
        "test_predictions_sha256": _predictions_digest(predicted),
        "baseline": baseline_result,
        "profile": reference_profile(frame.iloc[train], layout),
        "libraries": _libraries(),
        "training_seconds": round(time.perf_counter() - started, 3),
    }


def _save(
    spec: PipelineSpec,
    model: Any,
    layout: FeatureLayout,
    x_test: Any,
    task: str,
    work_dir: Path,
    reporter: Reporter,
) -> tuple[Path, dict[str, Any] | None, np.ndarray]:
    """Write the model (ONNX when kept, else skops) and its predictions on the test split."""
    onnx = None
    if spec.optimize.onnx:
        reporter.progress(stage="optimize")
        if layout.is_matrix:
            onnx = try_onnx(model, x_test, task == "classification", reporter.log)
        else:
            reporter.log("ONNX optimization skipped: the model takes text columns")
    reporter.progress(stage="save")
    if onnx is not None:
        import onnxruntime as ort

        path = work_dir / "model.onnx"
        path.write_bytes(onnx.data)
        session = ort.InferenceSession(onnx.data, providers=["CPUExecutionProvider"])
        predicted = np.asarray(session.run(None, {"features": x_test.astype(np.float32)})[0])
        return path, onnx.as_json(), predicted.reshape(len(x_test))
    sio = import_skops_io()

    path = work_dir / "model.skops"
    sio.dump(model, path)
    return path, None, np.asarray(model.predict(x_test))
