"""Model selection: every candidate's parameter settings (grid or random sample) scored
by k-fold cross-validation on the training split, one fit at a time so that progress
(candidate, fold) is reported as it happens and a cancellation stops between fits.

The loop is deterministic for a seed: the folds, the sampled settings and every
estimator's ``random_state`` derive from it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelport.errors import InvalidInputError
from modelport.pipeline_spec import CandidateSpec, SearchSpec
from modelport.pipelines.estimators import make_estimator, search_space
from modelport.pipelines.metrics import greater_is_better, metric_value
from modelport.pipelines.preprocessing import without_scaling

MAX_SETTINGS = 1000
"""Grid searches larger than this are refused (use random search)."""

Report = Callable[..., None]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class CandidateResult:
    """One candidate on the leaderboard: its best setting and that setting's CV scores."""

    estimator: str
    params: dict[str, Any] = field(default_factory=dict)
    cv_scores: list[float] = field(default_factory=list)
    cv_mean: float = math.nan
    cv_std: float = math.nan
    settings_tried: int = 0
    seconds: float = 0.0
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator,
            "params": self.params,
            "cv_scores": [_finite(s) for s in self.cv_scores],
            "cv_mean": _finite(self.cv_mean),
            "cv_std": _finite(self.cv_std),
            "settings_tried": self.settings_tried,
            "seconds": round(self.seconds, 3),
            **({"error": self.error} if self.error else {}),
        }


def settings_for(
    space: dict[str, list[Any]], search: SearchSpec, seed: int
) -> list[dict[str, Any]]:
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    grid = ParameterGrid(space)
    if search.method == "none" or not space:
        return [{}]
    if search.method == "grid":
        if len(grid) > MAX_SETTINGS:
            raise InvalidInputError(
                f"the grid has {len(grid)} settings (at most {MAX_SETTINGS}); use method: random"
            )
        return list(grid)
    count = min(search.n_iter, len(grid))
    return list(ParameterSampler(space, n_iter=count, random_state=seed))


def folds_for(task: str, stratify: bool, cv: int, seed: int, target: Any, log: Report) -> Any:
    from sklearn.model_selection import KFold, StratifiedKFold

    if len(target) < cv:
        raise InvalidInputError(
            f"the training split has {len(target)} rows, fewer than the {cv} CV folds"
        )
    if task == "classification" and stratify:
        smallest = int(np.unique(target, return_counts=True)[1].min())
        if smallest >= cv:
            return StratifiedKFold(cv, shuffle=True, random_state=seed)
        log(f"a class has only {smallest} training rows: folds are not stratified")
    return KFold(cv, shuffle=True, random_state=seed)


_THRESHOLD_MODELS = ("Tree", "Forest", "Boosting", "XGB", "LGBM")
"""Class-name parts of models that split on feature thresholds (trees and their ensembles)."""


def make_pipeline(preprocessor: Any, estimator: Any) -> Any:
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    prepare = clone(preprocessor)
    if any(part in type(estimator).__name__ for part in _THRESHOLD_MODELS):
        prepare = without_scaling(prepare)
    return Pipeline([("prepare", prepare), ("model", estimator)])


def rows_of(data: Any, index: np.ndarray) -> Any:
    """Rows of a matrix or a DataFrame by position."""
    return data.iloc[index] if hasattr(data, "iloc") else data[index]


@dataclass
class SearchProblem:
    task: str
    metric: str
    seed: int
    preprocessor: Any
    features: Any
    target: Any
    folds: Any


def _score_setting(
    problem: SearchProblem, name: str, params: dict[str, Any], splits: list[Any], tick: Report
) -> list[float]:
    scores = []
    for fold, (train, valid) in enumerate(splits, start=1):
        tick(fold=fold)
        model = make_pipeline(
            problem.preprocessor, make_estimator(name, problem.task, problem.seed, params)
        )
        model.fit(rows_of(problem.features, train), rows_of(problem.target, train))
        scores.append(
            metric_value(
                problem.metric,
                model,
                rows_of(problem.features, valid),
                rows_of(problem.target, valid),
            )
        )
    return scores


def run_search(
    problem: SearchProblem,
    candidates: list[CandidateSpec],
    search: SearchSpec,
    report: Report,
    log: Report,
) -> list[CandidateResult]:
    """Score every candidate; the leaderboard comes back best first."""
    plans = [
        (c.estimator, settings_for(search_space(c, problem.task), search, problem.seed))
        for c in candidates
    ]
    splits = list(problem.folds.split(problem.features, problem.target))
    total = sum(len(settings) for _, settings in plans) * len(splits)
    done = 0
    results = []
    for index, (name, settings) in enumerate(plans, start=1):
        started = time.perf_counter()
        result = CandidateResult(estimator=name, settings_tried=len(settings))
        log(f"candidate {index}/{len(plans)}: {name}, {len(settings)} setting(s)")
        for params in settings:

            def tick(fold: int, name: str = name, index: int = index) -> None:
                nonlocal done
                report(
                    stage="search",
                    candidate=name,
                    candidate_index=index,
                    candidates=len(plans),
                    fold=fold,
                    folds=len(splits),
                    fits_done=done,
                    fits_total=total,
                )
                done += 1

            try:
                scores = _score_setting(problem, name, params, splits, tick)
            except InvalidInputError:
                raise
            except Exception as exc:  # a setting the estimator rejects, a failed fit
                result.error = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
                log(f"  {name} {params}: failed ({result.error})")
                continue
            mean = float(np.mean(scores))
            log(f"  {name} {params}: {problem.metric} {mean:.6g}")
            if math.isfinite(mean) and _better(problem.metric, mean, result.cv_mean):
                result.params, result.cv_scores = params, scores
                result.cv_mean, result.cv_std = mean, float(np.std(scores))
        result.seconds = time.perf_counter() - started
        if math.isfinite(result.cv_mean):
            result.error = ""
        results.append(result)
    return sorted(results, key=lambda r: _sort_key(problem.metric, r))


def _better(metric: str, score: float, best: float) -> bool:
    if not math.isfinite(best):
        return True
    return score > best if greater_is_better(metric) else score < best


def _sort_key(metric: str, result: CandidateResult) -> float:
    if not math.isfinite(result.cv_mean):
        return math.inf
    return -result.cv_mean if greater_is_better(metric) else result.cv_mean
