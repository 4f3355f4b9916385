"""Registration of a finished run: the saved model becomes the next version of the spec's
model, with its lineage (dataset, spec, winner, leaderboard, test metrics, libraries, data
profile); the gate decides whether the alias moves.

A failing gate changes nothing in serving: its version is registered (for comparison and
lineage) only when the model's ``production`` alias pins what its bare name serves;
otherwise (a new model, or one never promoted, whose bare name serves its latest version)
nothing is registered and the job says why.

The artifact is inspected by the same code as any upload before its blob is committed,
so a model the server could not serve is never registered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelport.errors import NotFoundError
from modelport.pipeline_spec import PipelineSpec
from modelport.pipelines.gate import decide
from modelport.registry import Registry
from modelport.registry.references import Reference
from modelport.runtimes.loader import inspect_upload
from modelport.training_types import DatasetVersionInfo
from modelport.types import DEFAULT_ALIAS

LINEAGE_KEYS = (
    "task",
    "metric",
    "features",
    "split",
    "leaderboard",
    "best",
    "test_metrics",
    "onnx",
    "test_predictions_sha256",
    "baseline",
    "profile",
    "libraries",
    "training_seconds",
)


def _lineage(
    job_id: int, spec: PipelineSpec, dataset: DatasetVersionInfo, outcome: dict[str, Any]
) -> dict[str, Any]:
    return {
        "job": job_id,
        "dataset": {
            "name": dataset.dataset,
            "version": dataset.version,
            "sha256": dataset.sha256,
            "rows": dataset.rows,
        },
        "spec": spec.as_json(),
        **{key: outcome.get(key) for key in LINEAGE_KEYS},
    }


def _baseline_still_current(
    registry: Registry, model: str, baseline: dict[str, Any] | None
) -> bool:
    """False when the alias moved while the job ran (the comparison would be stale)."""
    if baseline is None or "version" not in baseline:
        return True
    try:
        current = registry.resolve(Reference(model, alias=str(baseline["alias"])))
    except Exception:
        return False
    return bool(current.version == baseline["version"])


def _bare_name_is_pinned(registry: Registry, model: str) -> bool:
    """Whether ``model``'s bare name serves its ``production`` alias (not its latest)."""
    try:
        registry.resolve(Reference(model, alias=DEFAULT_ALIAS))
    except NotFoundError:
        return False
    return True


def register_outcome(
    registry: Registry,
    max_bytes: int,
    job_id: int,
    spec: PipelineSpec,
    dataset: DatasetVersionInfo,
    outcome: dict[str, Any],
    created_by: str | None,
) -> dict[str, Any]:
    """Apply the gate and register the run's model; returns what the job reports."""
    target = spec.registration
    gate = spec.parsed_gate()
    decision = decide(gate, outcome["test_metrics"], outcome.get("baseline"))
    if decision.passed and not _baseline_still_current(
        registry, target.model, outcome.get("baseline")
    ):
        decision = type(decision)(False, "the alias moved while the job ran; compare again")
    if not decision.passed and not _bare_name_is_pinned(registry, target.model):
        return {
            "model": target.model,
            "version": None,
            "format": None,
            "alias": target.alias,
            "alias_moved": False,
            "gate": decision.as_json(),
            "not_registered": (
                f"'{target.model}' has no '{DEFAULT_ALIAS}' alias, so a new version would "
                "become what its name serves"
            ),
        }
    artifact = Path(outcome["artifact"])
    inspected = inspect_upload(
        artifact, allow_pickle=False, uploader_is_admin=False, signature=None
    )
    blob = registry.artifacts.put_file(artifact, max_bytes)
    best = outcome["best"]
    version = registry.create_version(
        target.model,
        blob,
        inspected,
        metrics=dict(outcome["test_metrics"]),
        params={"lineage": _lineage(job_id, spec, dataset, outcome)},
        tags={"job": str(job_id), "dataset": f"{dataset.dataset}@{dataset.version}"},
        description=target.description
        or f"trained by job {job_id}: {best['estimator']} on {dataset.dataset}@{dataset.version}",
        created_by=created_by,
    )
    moved = False
    if target.alias is not None and decision.passed:
        registry.set_alias(target.model, target.alias, version.version, created_by)
        moved = True
    return {
        "model": target.model,
        "version": version.version,
        "format": version.format,
        "alias": target.alias,
        "alias_moved": moved,
        "gate": decision.as_json(),
    }
