"""Checks of a spec against the dataset's schema before a job is queued, so that a target
that is not there, a text target for a regression or an unknown estimator is a clear 400
at once, not a failed job a minute later."""

from __future__ import annotations

from modelport.errors import InvalidInputError
from modelport.pipeline_spec import PipelineSpec
from modelport.pipelines.estimators import estimator_class
from modelport.training_types import ColumnType, DatasetVersionInfo


def _task(spec: PipelineSpec, target_type: ColumnType) -> str | None:
    if spec.task is not None:
        return spec.task
    if target_type in (ColumnType.STRING, ColumnType.BOOLEAN):
        return "classification"
    return "regression" if target_type is ColumnType.FLOAT else None  # integers: by values


def check_spec(spec: PipelineSpec, dataset: DatasetVersionInfo) -> None:
    columns = {column.name: column for column in dataset.columns}
    reference = f"{dataset.dataset}@{dataset.version}"
    if spec.target not in columns:
        raise InvalidInputError(
            f"target column '{spec.target}' is not in dataset {reference}; its columns are "
            + ", ".join(list(columns)[:50])
        )
    missing = [name for name in spec.features or [] if name not in columns]
    if missing:
        raise InvalidInputError(
            f"feature column(s) {', '.join(missing[:10])} are not in dataset {reference}"
        )
    target_type = columns[spec.target].type
    if spec.task == "regression" and not (
        target_type.is_numeric and target_type is not ColumnType.BOOLEAN
    ):
        raise InvalidInputError(
            f"target '{spec.target}' holds {target_type.value} values, so it cannot be a "
            "regression target; use task: classification"
        )
    task = _task(spec, target_type)
    tasks = [task] if task is not None else ["regression", "classification"]
    for candidate in spec.candidate_specs():
        errors = []
        for kind in tasks:
            try:
                estimator_class(candidate.estimator, kind)
            except InvalidInputError as exc:
                errors.append(exc)
        if len(errors) == len(tasks):
            raise errors[0]
