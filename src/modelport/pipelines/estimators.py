"""Candidate estimators by name, with the search space ModelPort tries for each.

Any scikit-learn regressor or classifier can be named (found with
``sklearn.utils.discovery.all_estimators``); the common ones carry a default search space.
XGBoost's and LightGBM's scikit-learn wrappers (``XGBRegressor``, ``LGBMClassifier``...)
can be named too when their package is installed: the server trusts them in skops files
(their boosters are stored in the frameworks' own formats)."""

from __future__ import annotations

import functools
from typing import Any

from modelport.errors import InvalidInputError
from modelport.pipeline_spec import CandidateSpec
from modelport.runtimes.sklearn_walk import walking_without_torch

_ALPHAS = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]
_C = [0.01, 0.1, 1.0, 10.0, 100.0]
_FOREST: dict[str, list[Any]] = {
    "n_estimators": [50, 100, 200],
    "max_depth": [None, 4, 8, 16],
    "min_samples_leaf": [1, 2, 4],
}
_BOOSTING: dict[str, list[Any]] = {
    "n_estimators": [50, 100, 200],
    "learning_rate": [0.03, 0.1, 0.3],
    "max_depth": [2, 3, 4],
}
_HIST: dict[str, list[Any]] = {
    "learning_rate": [0.03, 0.1, 0.3],
    "max_leaf_nodes": [15, 31, 63],
    "l2_regularization": [0.0, 0.1, 1.0],
}
_TREE: dict[str, list[Any]] = {"max_depth": [None, 3, 5, 8, 12], "min_samples_leaf": [1, 2, 5, 10]}
_NEIGHBORS: dict[str, list[Any]] = {
    "n_neighbors": [3, 5, 11, 21],
    "weights": ["uniform", "distance"],
}

DEFAULT_SPACES: dict[str, dict[str, list[Any]]] = {
    "LinearRegression": {},
    "Ridge": {"alpha": _ALPHAS},
    "Lasso": {"alpha": _ALPHAS},
    "ElasticNet": {"alpha": _ALPHAS, "l1_ratio": [0.1, 0.5, 0.9]},
    "RandomForestRegressor": _FOREST,
    "RandomForestClassifier": _FOREST,
    "ExtraTreesRegressor": _FOREST,
    "ExtraTreesClassifier": _FOREST,
    "GradientBoostingRegressor": _BOOSTING,
    "GradientBoostingClassifier": _BOOSTING,
    "HistGradientBoostingRegressor": _HIST,
    "HistGradientBoostingClassifier": _HIST,
    "DecisionTreeRegressor": _TREE,
    "DecisionTreeClassifier": _TREE,
    "KNeighborsRegressor": _NEIGHBORS,
    "KNeighborsClassifier": _NEIGHBORS,
    "LogisticRegression": {"C": _C},
    "XGBRegressor": _BOOSTING,
    "XGBClassifier": _BOOSTING,
    "LGBMRegressor": {
        "n_estimators": [50, 100, 200],
        "learning_rate": [0.03, 0.1, 0.3],
        "num_leaves": [15, 31, 63],
    },
    "LGBMClassifier": {
        "n_estimators": [50, 100, 200],
        "learning_rate": [0.03, 0.1, 0.3],
        "num_leaves": [15, 31, 63],
    },
    "SVR": {"C": _C},
    "SVC": {"C": _C},
}
"""Values searched per parameter when the spec gives none."""
FIXED_PARAMS: dict[str, dict[str, Any]] = {"LogisticRegression": {"max_iter": 2000}}
BOOSTING_LIBRARIES: dict[str, tuple[str, str, dict[str, int]]] = {
    "XGBRegressor": ("xgboost", "regression", {"n_jobs": 1}),
    "XGBClassifier": ("xgboost", "classification", {"n_jobs": 1}),
    "LGBMRegressor": ("lightgbm", "regression", {"n_jobs": 1, "verbose": -1}),
    "LGBMClassifier": ("lightgbm", "classification", {"n_jobs": 1, "verbose": -1}),
}
"""Candidates from XGBoost and LightGBM: their package, task and fixed parameters (one
thread, like every fit in a job; LightGBM quiet)."""


def _boosting_class(name: str, task: str) -> type[Any]:
    import importlib

    package, fits, _ = BOOSTING_LIBRARIES[name]
    if fits != task:
        raise InvalidInputError(f"{name} is for {fits}, not {task}: set task accordingly")
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise InvalidInputError(
            f"{name} needs the '{package}' package on the server: "
            f"pip install 'modelport[{package}]'"
        ) from None
    cls: type[Any] = getattr(module, name)
    return cls


@functools.lru_cache(maxsize=2)
def _estimators(kind: str) -> dict[str, type[Any]]:
    """scikit-learn's estimators of ``kind`` by name (``all_estimators`` imports and walks
    every scikit-learn module on each call; a job asks once per fit)."""
    from sklearn.utils.discovery import all_estimators

    with walking_without_torch():
        return dict(all_estimators(type_filter=kind))


def estimator_class(name: str, task: str) -> type[Any]:
    """The scikit-learn (or XGBoost/LightGBM scikit-learn API) class called ``name`` that
    fits ``task``."""
    if name in BOOSTING_LIBRARIES:
        return _boosting_class(name, task)
    kind = "regressor" if task == "regression" else "classifier"
    found = _estimators(kind)
    if name not in found:
        other = "classifier" if kind == "regressor" else "regressor"
        hint = f"; {name} is a {other}: set task accordingly" if name in _estimators(other) else ""
        raise InvalidInputError(f"unknown {kind} '{name}' for a {task} task{hint}")
    cls: type[Any] = found[name]
    return cls


def make_estimator(name: str, task: str, seed: int, params: dict[str, Any]) -> Any:
    """A fresh estimator with ``params``, seeded when it takes a ``random_state``."""
    cls = estimator_class(name, task)
    fixed = dict(FIXED_PARAMS.get(name, {}))
    if name in BOOSTING_LIBRARIES:
        fixed.update(BOOSTING_LIBRARIES[name][2])
    try:
        estimator = cls(**fixed)
    except TypeError as exc:
        raise InvalidInputError(
            f"{name} needs constructor arguments ModelPort cannot guess ({exc}); pick another"
        ) from None
    settable = estimator.get_params(deep=False)
    unknown = sorted(set(params) - set(settable))
    if unknown:
        raise InvalidInputError(
            f"{name} has no parameter {', '.join(unknown)}; it takes {', '.join(sorted(settable))}"
        )
    if "random_state" in settable and "random_state" not in params:
        estimator.set_params(random_state=seed)
    return estimator.set_params(**params)


def search_space(candidate: CandidateSpec, task: str) -> dict[str, list[Any]]:
    """The values to search for one candidate (validated against the estimator)."""
    space = (
        candidate.params
        if candidate.params is not None
        else DEFAULT_SPACES.get(candidate.estimator, {})
    )
    settable = make_estimator(candidate.estimator, task, 0, {}).get_params(deep=False)
    unknown = sorted(set(space) - set(settable))
    if unknown:
        raise InvalidInputError(
            f"{candidate.estimator} has no parameter {', '.join(unknown)}; it takes "
            + ", ".join(sorted(settable))
        )
    return dict(space)
