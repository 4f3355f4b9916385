"""``modelport train SPEC [--wait]`` and ``modelport jobs list/show/cancel/logs``."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from modelport.cli.connection import KeyOption, UrlOption, connect
from modelport.cli.output import clean_errors, console, fail, print_json
from modelport.client import Client
from modelport.errors import InvalidInputError
from modelport.pipeline_spec import MAX_SPEC_BYTES, PipelineSpec, load_spec, spec_from_text
from modelport.training_types import JobInfo, JobState

jobs_app = typer.Typer(
    help="Follow, cancel and read the logs of training jobs.", no_args_is_help=True
)


def _local_dataset(reference: str, spec_file: Path) -> Path | None:
    """The local file a spec's ``dataset`` names, if it names one."""
    for candidate in (spec_file.parent / reference, Path(reference)):
        if candidate.is_file():
            return candidate
    return None


def _dataset_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.") or "dataset"
    return name[:128]


def _read_spec(spec_file: Path) -> PipelineSpec:
    if spec_file.stat().st_size > MAX_SPEC_BYTES:
        raise InvalidInputError(f"{spec_file} is larger than {MAX_SPEC_BYTES} bytes")
    try:
        return spec_from_text(spec_file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InvalidInputError(f"{spec_file} is not UTF-8 text") from None


def _describe(job: JobInfo) -> str:
    progress = job.progress
    text = f"job {job.id} {job.state.value}: {progress.stage}"
    if progress.stage == "search" and progress.candidate:
        text += (
            f" {progress.candidate} ({progress.candidate_index}/{progress.candidates}), "
            f"fold {progress.fold}/{progress.folds}"
        )
    return text


def _follow(client: Client, job: JobInfo) -> JobInfo:
    """Show the job's progress bar and log until it finishes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    offset = 0

    def print_new_log() -> None:
        nonlocal offset
        text, offset = client.job_logs(job.id, offset)
        for line in text.splitlines():
            bar.console.print(line, highlight=False, markup=False)

    def show(update: JobInfo) -> None:
        print_new_log()
        total = update.progress.fits_total or None
        bar.update(
            task, description=_describe(update), total=total, completed=update.progress.fits_done
        )

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(_describe(job), total=None)
        job = client.wait_for_job(job.id, poll_s=0.5, on_update=show)
        print_new_log()
    return job


def _report(job: JobInfo) -> None:
    if job.state is JobState.SUCCEEDED:
        registered = job.result.get("registered", {})
        gate = registered.get("gate", {})
        alias = registered.get("alias")
        moved = (
            f"alias '{alias}' now points to it"
            if registered.get("alias_moved")
            else f"alias '{alias}' did not move"
            if alias
            else "no alias requested"
        )
        verdict = f"gate {'passed' if gate.get('passed') else 'failed'} ({gate.get('reason', '')})"
        if registered.get("version") is None:
            console.print(
                f"job {job.id} succeeded; {verdict}; nothing registered: "
                f"{registered.get('not_registered', '')}",
                markup=False,
            )
            return
        console.print(
            f"job {job.id} succeeded: registered [bold]{registered.get('model')}@"
            f"{registered.get('version')}[/] ({registered.get('format')}); {verdict}; {moved}"
        )
        return
    raise fail(f"job {job.id} {job.state.value}: {job.error or 'no reason given'}")


def _spec_from(spec_file: Path | None, flags: dict[str, Any]) -> PipelineSpec:
    """The spec file's pipeline with the flags given on the command line put over it (or
    the flags alone)."""
    document = _read_spec(spec_file).as_json() if spec_file is not None else {}
    for path, value in flags.items():
        if value is None:
            continue
        *parents, leaf = path.split(".")
        section = document
        for parent in parents:
            section = section.setdefault(parent, {})
        section[leaf] = value
    return load_spec(document)


def _names(value: str | None) -> list[str] | None:
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


@clean_errors
def train(
    spec_file: Annotated[
        Path | None,
        typer.Argument(
            help="Pipeline spec (YAML or JSON); the options below build one or override its "
            "fields.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Registered dataset name[@version], or a local file.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Target column.")] = None,
    task: Annotated[
        str | None, typer.Option(help="regression or classification (default: inferred).")
    ] = None,
    candidates: Annotated[
        str | None, typer.Option(help="Estimators, comma-separated: LinearRegression,Ridge")
    ] = None,
    search: Annotated[str | None, typer.Option(help="random, grid or none.")] = None,
    n_iter: Annotated[int | None, typer.Option(help="Settings per candidate (random).")] = None,
    cv: Annotated[int | None, typer.Option(help="Cross-validation folds.")] = None,
    metric: Annotated[str | None, typer.Option(help="Metric to optimize, e.g. r2.")] = None,
    test_size: Annotated[float | None, typer.Option(help="Test fraction, e.g. 0.2.")] = None,
    seed: Annotated[int | None, typer.Option(help="Split and search seed.")] = None,
    onnx: Annotated[
        bool | None, typer.Option("--onnx/--no-onnx", help="Try the winner as ONNX.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name to register as.")] = None,
    alias: Annotated[str | None, typer.Option(help="Alias the gate may move.")] = None,
    gate: Annotated[
        str | None, typer.Option(help="'r2 >= 0.8' or 'better_than: production'.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")] = False,
    dataset_name: Annotated[
        str | None,
        typer.Option(help="Name for a local dataset file the spec names (default: its stem)."),
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Run a training pipeline on the server, from a spec file, from options, or both
    (options win). A local CSV/Parquet file named as the dataset is uploaded first. With
    --wait: a progress bar, then exit 0 when the job succeeded (printing the registered
    version and whether the alias moved)."""
    flags: dict[str, Any] = {
        "dataset": dataset,
        "target": target,
        "task": task,
        "candidates": _names(candidates),
        "search.method": search,
        "search.n_iter": n_iter,
        "search.cv": cv,
        "search.metric": metric,
        "split.test_size": test_size,
        "split.seed": seed,
        "optimize.onnx": onnx,
        "register.model": model,
        "register.alias": alias,
        "gate": gate,
    }
    if spec_file is None and dataset is None:
        raise fail("give a spec file, or build the spec with options (--dataset, --target, ...)")
    spec = _spec_from(spec_file, flags)
    client = connect(url, api_key)
    local = _local_dataset(spec.dataset, spec_file or Path("spec"))
    if local is not None:
        uploaded = client.push_dataset(local, dataset_name or _dataset_name(local))
        console.print(
            f"uploaded {local} as dataset {uploaded.dataset}@{uploaded.version} "
            f"({uploaded.rows} rows)"
        )
        spec = spec.model_copy(update={"dataset": f"{uploaded.dataset}@{uploaded.version}"})
    job = client.submit_job(spec)
    console.print(f"job {job.id} queued (follow it: modelport jobs show {job.id})")
    if not wait:
        return
    try:
        job = _follow(client, job)
    except KeyboardInterrupt:
        console.print(f"job {job.id} keeps running on the server: modelport jobs show {job.id}")
        raise typer.Exit(130) from None
    _report(job)


@jobs_app.command("list")
@clean_errors
def list_jobs(
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """List training jobs, newest first."""
    from rich.table import Table

    if state is not None and state not in {s.value for s in JobState}:
        raise fail("--state is one of " + ", ".join(s.value for s in JobState))
    table = Table("id", "state", "stage", "model", "created", "error")
    for job in connect(url, api_key).list_jobs(state):
        model = str(job.spec.get("register", {}).get("model", ""))
        table.add_row(
            str(job.id),
            job.state.value,
            job.progress.stage,
            model,
            job.created_at.isoformat(timespec="seconds"),
            job.error[:60],
        )
    console.print(table)


@jobs_app.command("show")
@clean_errors
def show(job_id: int, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """A job's state, progress and result (leaderboard, registered version, gate) as JSON."""
    print_json(connect(url, api_key).get_job(job_id))


@jobs_app.command("cancel")
@clean_errors
def cancel(job_id: int, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Cancel a queued or running job."""
    job = connect(url, api_key).cancel_job(job_id)
    state = "cancelled" if job.state is JobState.CANCELLED else "cancellation requested"
    console.print(f"job {job.id}: {state}")


@jobs_app.command("logs")
@clean_errors
def logs(
    job_id: int,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing.")] = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Print a job's log."""
    client = connect(url, api_key)
    offset = 0
    while True:
        text, offset = client.job_logs(job_id, offset)
        if text:
            print(text, end="")
        if not follow or client.get_job(job_id).state.finished:
            if follow:
                print(client.job_logs(job_id, offset)[0], end="")
            return
        time.sleep(0.5)
