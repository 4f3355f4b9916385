"""The ONNX step keeps forests whose inputs sit on split thresholds (no float32 scaling in
front of trees) and converts pipelines configured without scaling."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge

from modelport.pipeline_spec import NumericPreprocessing, PreprocessingSpec
from modelport.pipelines.optimization import try_onnx
from modelport.pipelines.preprocessing import FeatureLayout, build_preprocessor
from modelport.pipelines.search import make_pipeline


def _houses(rows: int = 600) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(0)
    rooms = generator.integers(1, 7, rows).astype(float)  # values exactly on thresholds
    area = generator.normal(120, 30, rows)
    age = generator.integers(0, 80, rows).astype(float)
    price = 50_000 * rooms + 900 * area - 300 * age + generator.normal(0, 5_000, rows)
    return np.column_stack([rooms, area, age]), price


LAYOUT = FeatureLayout(["rooms", "area", "age"], ["rooms", "area", "age"], [])


def _steps(model: object) -> list[str]:
    numeric = model.named_steps["prepare"].transformers[0][1]  # type: ignore[attr-defined]
    return [name for name, _ in numeric.steps]


def test_trees_get_no_scaling_and_keep_their_onnx_form() -> None:
    x, y = _houses()
    preprocessor = build_preprocessor(LAYOUT, PreprocessingSpec())
    forest = make_pipeline(preprocessor, RandomForestRegressor(n_estimators=20, random_state=0))
    linear = make_pipeline(preprocessor, Ridge())
    assert _steps(forest) == ["impute"] and _steps(linear) == ["impute", "scale"]
    forest.fit(x, y)
    logged: list[str] = []
    assert try_onnx(forest, x[:200], is_classifier=False, log=logged.append) is not None, logged


def test_a_pipeline_without_scaling_converts() -> None:
    x, y = _houses()
    spec = PreprocessingSpec(numeric=NumericPreprocessing(scale="none"))
    model = make_pipeline(build_preprocessor(LAYOUT, spec), Ridge()).fit(x, y)
    assert _steps(model) == ["impute"]
    logged: list[str] = []
    candidate = try_onnx(model, x[:200], is_classifier=False, log=logged.append)
    assert candidate is not None or any("not faster" in line for line in logged), logged
