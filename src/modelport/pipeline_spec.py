"""The training pipeline spec (YAML or JSON): what to train on, how to choose and tune the
model, where to register it and when its alias may move.

A leaf module: the server validates specs with it, and so do the client and the CLI
before anything is uploaded. Example::

    dataset: ./houses.csv          # a local file (the CLI uploads it) or name[@version]
    target: price
    task: regression               # optional: inferred from the target
    split: {test_size: 0.2, seed: 42}
    candidates: [LinearRegression, Ridge, RandomForestRegressor]
    search: {method: random, n_iter: 8, cv: 3, metric: r2}
    optimize: {onnx: true}
    register: {model: house-price, alias: production}
    gate: "r2 >= 0.8"              # or "better_than: production"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelport.types import NAME_PATTERN

REGRESSION_METRICS = ("r2", "rmse", "mae", "mse")
CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "f1_macro",
    "f1_weighted",
    "precision_macro",
    "recall_macro",
    "roc_auc",
)
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse"})
DEFAULT_METRIC = {"regression": "r2", "classification": "accuracy"}
MAX_CANDIDATES = 20
MAX_GRID_VALUES = 50

Task = Literal["regression", "classification"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitSpec(_Strict):
    test_size: float = Field(default=0.2, gt=0, lt=1, allow_inf_nan=False)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    stratify: bool | None = Field(
        default=None, description="default: stratify classification targets"
    )


class NumericPreprocessing(_Strict):
    impute: Literal["mean", "median", "most_frequent", "zero"] = "median"
    scale: Literal["standard", "minmax", "robust", "none"] = "standard"


class CategoricalPreprocessing(_Strict):
    impute: Literal["most_frequent", "missing"] = "most_frequent"
    encode: Literal["onehot", "ordinal"] = "onehot"


class PreprocessingSpec(_Strict):
    numeric: NumericPreprocessing = Field(default_factory=NumericPreprocessing)
    categorical: CategoricalPreprocessing = Field(default_factory=CategoricalPreprocessing)


GridValue = bool | int | float | str | None
ESTIMATOR_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class CandidateSpec(_Strict):
    """An estimator by its class name, and optionally the values to search per parameter
    (replacing ModelPort's default search space for it)."""

    estimator: str = Field(min_length=1, max_length=64, pattern=ESTIMATOR_NAME.pattern)
    params: dict[str, list[GridValue]] | None = None

    @field_validator("params")
    @classmethod
    def _bounded(cls, params: dict[str, list[GridValue]] | None) -> Any:
        for name, values in (params or {}).items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
                raise ValueError(f"parameter name {name[:64]!r} is not valid")
            if not 1 <= len(values) <= MAX_GRID_VALUES:
                raise ValueError(f"parameter '{name}' needs 1 to {MAX_GRID_VALUES} values")
        return params


class SearchSpec(_Strict):
    method: Literal["random", "grid", "none"] = "random"
    n_iter: int = Field(default=10, ge=1, le=1000)
    cv: int = Field(default=5, ge=2, le=20)
    metric: str | None = Field(default=None, description="default: r2 or accuracy")

    @field_validator("metric")
    @classmethod
    def _known(cls, metric: str | None) -> str | None:
        if metric is not None and metric not in (*REGRESSION_METRICS, *CLASSIFICATION_METRICS):
            raise ValueError(
                f"unknown metric {metric[:64]!r}: use one of "
                + ", ".join((*REGRESSION_METRICS, *CLASSIFICATION_METRICS))
            )
        return metric


class OptimizeSpec(_Strict):
    onnx: bool = False


class RegisterSpec(_Strict):
    model: str
    alias: str | None = None
    description: str = Field(default="", max_length=10_000)

    @field_validator("model")
    @classmethod
    def _name(cls, name: str) -> str:
        if not NAME_PATTERN.fullmatch(name) or ".." in name:
            raise ValueError("use 1-128 letters, digits, '.', '_' or '-'")
        return name

    @field_validator("alias")
    @classmethod
    def _alias(cls, alias: str | None) -> str | None:
        if alias is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]{0,127}", alias):
            raise ValueError("an alias starts with a letter: letters, digits, '.', '_' or '-'")
        return alias


@dataclass(frozen=True)
class Condition:
    """``metric op value``, e.g. ``r2 >= 0.8``."""

    metric: str
    op: str
    value: float


@dataclass(frozen=True)
class Gate:
    """Either every condition holds, or the new model beats the version behind an alias."""

    conditions: tuple[Condition, ...] = ()
    better_than: str | None = None


_CONDITION = re.compile(
    r"^\s*([a-z_][a-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*$"
)
_BETTER_THAN = re.compile(r"^\s*better_than\s*:\s*([A-Za-z][A-Za-z0-9._-]{0,127})\s*$")


def parse_gate(text: str) -> Gate:
    """Parse ``"r2 >= 0.8"``, ``"r2 >= 0.8 and rmse < 30"`` or ``"better_than: production"``
    with a small grammar (never ``eval``)."""
    if len(text) > 1000:
        raise ValueError("the gate is longer than 1000 characters")
    better = _BETTER_THAN.match(text)
    if better:
        return Gate(better_than=better.group(1))
    conditions = []
    for part in re.split(r"\s+and\s+", text.strip()):
        match = _CONDITION.match(part)
        if match is None:
            raise ValueError(
                f"cannot read the gate condition {part[:80]!r}: write 'metric >= number' "
                "(joined with 'and'), or 'better_than: ALIAS'"
            )
        metric, op, value = match.groups()
        if metric not in (*REGRESSION_METRICS, *CLASSIFICATION_METRICS):
            raise ValueError(f"the gate names unknown metric '{metric}'")
        conditions.append(Condition(metric, op, float(value)))
    return Gate(conditions=tuple(conditions))


class PipelineSpec(_Strict):
    """A train-to-deploy pipeline; see the module docstring for an example. (The
    ``register`` section is the ``registration`` attribute: pydantic models already have
    a ``register`` method.)"""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    dataset: str = Field(min_length=1, max_length=4096)
    target: str = Field(min_length=1, max_length=256)
    task: Task | None = None
    features: list[str] | None = Field(default=None, min_length=1, max_length=4096)
    split: SplitSpec = Field(default_factory=SplitSpec)
    preprocessing: PreprocessingSpec = Field(default_factory=PreprocessingSpec)
    candidates: list[str | CandidateSpec] = Field(min_length=1, max_length=MAX_CANDIDATES)
    search: SearchSpec = Field(default_factory=SearchSpec)
    optimize: OptimizeSpec = Field(default_factory=OptimizeSpec)
    registration: RegisterSpec = Field(alias="register")
    gate: str | None = Field(default=None, max_length=1000)

    @field_validator("candidates")
    @classmethod
    def _candidate_names(cls, candidates: list[str | CandidateSpec]) -> list[str | CandidateSpec]:
        # Names given as plain strings get the check CandidateSpec gives its own field.
        for name in candidates:
            if isinstance(name, str) and not ESTIMATOR_NAME.fullmatch(name):
                raise ValueError(
                    f"{name[:64]!r} is not an estimator class name (e.g. Ridge): letters, "
                    "digits and '_', at most 64"
                )
        return candidates

    @field_validator("gate", mode="before")
    @classmethod
    def _gate_mapping(cls, gate: Any) -> Any:
        if isinstance(gate, dict) and set(gate) == {"better_than"}:
            return f"better_than: {gate['better_than']}"
        return gate

    @field_validator("gate")
    @classmethod
    def _gate_parses(cls, gate: str | None) -> str | None:
        if gate is not None:
            parse_gate(gate)
        return gate

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        if self.target in (self.features or []):
            raise ValueError(f"the target '{self.target}' is also listed among the features")
        metric = self.search.metric
        if metric is not None and self.task is not None and metric not in metrics_for(self.task):
            raise ValueError(f"metric '{metric}' does not apply to {self.task}")
        return self

    def candidate_specs(self) -> list[CandidateSpec]:
        return [CandidateSpec(estimator=c) if isinstance(c, str) else c for c in self.candidates]

    def parsed_gate(self) -> Gate | None:
        return parse_gate(self.gate) if self.gate is not None else None

    def as_json(self) -> dict[str, Any]:
        """The spec as it is written (``register``, not ``registration``)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def metrics_for(task: str) -> tuple[str, ...]:
    return REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS


MAX_SPEC_BYTES = 1024 * 1024


def load_spec(data: Any) -> PipelineSpec:
    """Validate a spec, turning pydantic's report into one line that says what to fix."""
    from pydantic import ValidationError

    from modelport.errors import InvalidInputError

    if not isinstance(data, dict):
        raise InvalidInputError("a pipeline spec is a mapping (dataset, target, candidates, ...)")
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'spec'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()[:10]
        )
        raise InvalidInputError(f"the pipeline spec is not valid: {problems}") from None


def spec_from_text(text: str) -> PipelineSpec:
    """A spec from YAML or JSON text (JSON is YAML)."""
    import yaml

    from modelport.errors import InvalidInputError

    if len(text.encode()) > MAX_SPEC_BYTES:
        raise InvalidInputError(f"the spec is larger than {MAX_SPEC_BYTES} bytes")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"the spec is not valid YAML or JSON: {exc}") from None
    return load_spec(data)
