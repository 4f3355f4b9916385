"""The evaluation gate: does the new version earn the alias? Conditions on its test
metrics (``r2 >= 0.8 and rmse < 40``), or beating the version behind an alias on the
same test split (``better_than: production``)."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

from modelport.pipeline_spec import Gate
from modelport.pipelines.metrics import greater_is_better

_OPERATORS = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason}


def _conditions(gate: Gate, metrics: dict[str, float]) -> GateDecision:
    failed, held = [], []
    for condition in gate.conditions:
        text = f"{condition.metric} {condition.op} {condition.value:g}"
        value = metrics.get(condition.metric)
        if value is None:
            failed.append(f"{text}: {condition.metric} was not measured for this task")
        elif _OPERATORS[condition.op](value, condition.value):
            held.append(f"{condition.metric} {value:.6g} {condition.op} {condition.value:g}")
        else:
            failed.append(f"{condition.metric} is {value:.6g}, the gate wants {text}")
    if failed:
        return GateDecision(False, "; ".join(failed))
    return GateDecision(True, "; ".join(held))


def _better_than(
    gate: Gate, metrics: dict[str, float], baseline: dict[str, Any] | None
) -> GateDecision:
    alias = gate.better_than
    if baseline is None:
        return GateDecision(
            True, f"no version is behind '{alias}' yet, so there is nothing to beat"
        )
    if "error" in baseline:
        return GateDecision(False, str(baseline["error"]))
    metric, old = str(baseline["metric"]), baseline.get("value")
    new = metrics.get(metric)
    if new is None or old is None:
        return GateDecision(
            False, f"{metric} could not be compared with version {baseline['version']}"
        )
    better = new > old if greater_is_better(metric) else new < old
    comparison = f"{metric} {new:.6g} vs {old:.6g} for '{alias}' (version {baseline['version']})"
    return GateDecision(better, ("better: " if better else "not better: ") + comparison)


def decide(
    gate: Gate | None, metrics: dict[str, float], baseline: dict[str, Any] | None
) -> GateDecision:
    if gate is None:
        return GateDecision(True, "no gate")
    if gate.better_than is not None:
        return _better_than(gate, metrics, baseline)
    return _conditions(gate, metrics)
