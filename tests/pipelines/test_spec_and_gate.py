"""The pipeline spec and the evaluation gate: the issue's example parses, hostile specs
and gates are refused with a reason, and the gate is read by a grammar, never evaluated."""

from __future__ import annotations

import pytest

from modelport.errors import InvalidInputError
from modelport.pipeline_spec import load_spec, parse_gate, spec_from_text
from modelport.pipelines.gate import decide

ISSUE_EXAMPLE = """
dataset: ./houses.csv          # a local CSV/Parquet path or a registered dataset name[@version]
target: price
task: regression               # optional: inferred
split: {test_size: 0.2, seed: 42}
candidates: [LinearRegression, Ridge, RandomForestRegressor]
search: {method: random, n_iter: 8, cv: 3, metric: r2}
optimize: {onnx: true}
register: {model: house-price, alias: production}
gate: "r2 >= 0.8"              # or "better_than: production"
"""


def test_the_issue_example_parses() -> None:
    spec = spec_from_text(ISSUE_EXAMPLE)
    assert spec.registration.model == "house-price" and spec.registration.alias == "production"
    assert spec.candidate_specs()[0].estimator == "LinearRegression"
    assert spec.search.n_iter == 8 and spec.split.seed == 42 and spec.optimize.onnx
    gate = spec.parsed_gate()
    assert gate is not None and gate.conditions[0].metric == "r2"
    assert spec.as_json()["register"]["model"] == "house-price"
    assert load_spec(spec.as_json()) == spec


def test_better_than_in_both_spellings() -> None:
    base = {"dataset": "d", "target": "y", "candidates": ["Ridge"], "register": {"model": "m"}}
    for gate in ("better_than: production", {"better_than": "production"}):
        spec = load_spec({**base, "gate": gate})
        parsed = spec.parsed_gate()
        assert parsed is not None and parsed.better_than == "production"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gate": "__import__('os').system('id')"}, "cannot read the gate"),
        ({"gate": "r2 >= 0.8 or True"}, "cannot read the gate"),
        ({"gate": "foo >= 1"}, "unknown metric"),
        ({"register": {"model": "../etc"}}, "register.model"),
        ({"register": {"model": "m", "alias": "7"}}, "alias"),
        ({"candidates": []}, "candidates"),
        ({"candidates": [{"estimator": "Ridge; rm"}]}, "candidates"),
        ({"candidates": ["os.system"]}, "not an estimator class name"),
        ({"candidates": ["Ridge", "x" * 65]}, "not an estimator class name"),
        ({"search": {"metric": "r3"}}, "unknown metric"),
        ({"search": {"cv": 1}}, "search.cv"),
        ({"split": {"test_size": 1.5}}, "split.test_size"),
        ({"task": "clustering"}, "task"),
        ({"task": "regression", "search": {"metric": "accuracy"}}, "does not apply"),
        ({"features": ["y"]}, "also listed among the features"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_bad_specs_say_what_to_fix(change: dict[str, object], message: str) -> None:
    base = {"dataset": "d", "target": "y", "candidates": ["Ridge"], "register": {"model": "m"}}
    with pytest.raises(InvalidInputError, match=message):
        load_spec({**base, **change})


def test_bad_yaml_and_non_mappings() -> None:
    with pytest.raises(InvalidInputError, match="not valid YAML"):
        spec_from_text("dataset: [unclosed")
    with pytest.raises(InvalidInputError, match="is a mapping"):
        spec_from_text("- a\n- b\n")
    with pytest.raises(InvalidInputError, match="larger than"):
        spec_from_text("x" * (1024 * 1024 + 1))


def test_gate_conditions() -> None:
    gate = parse_gate("r2 >= 0.8 and rmse < 30")
    assert decide(gate, {"r2": 0.9, "rmse": 20.0}, None).passed
    failed = decide(gate, {"r2": 0.7, "rmse": 20.0}, None)
    assert not failed.passed and "r2 is 0.7" in failed.reason
    missing = decide(parse_gate("accuracy > 0.5"), {"r2": 0.9}, None)
    assert not missing.passed and "not measured" in missing.reason
    assert decide(None, {}, None).passed


def test_gate_better_than() -> None:
    gate = parse_gate("better_than: production")
    assert decide(gate, {"r2": 0.5}, None).passed  # nothing to beat yet
    old = {"alias": "production", "version": 3, "metric": "r2", "value": 0.6}
    assert not decide(gate, {"r2": 0.5}, old).passed
    assert decide(gate, {"r2": 0.7}, old).passed
    assert not decide(gate, {"r2": 0.6}, old).passed  # a tie does not move the alias
    lower = {"alias": "production", "version": 3, "metric": "rmse", "value": 10.0}
    assert decide(gate, {"rmse": 9.0}, lower).passed
    broken = {"alias": "production", "version": 3, "metric": "r2", "error": "cannot score"}
    assert not decide(gate, {"r2": 0.99}, broken).passed
