"""The job manager: queues training jobs, runs each in a worker process (never in the
server's event loop), watches its progress and cancellation, and registers the result.

One dispatcher thread claims queued jobs while fewer than ``max_jobs`` run; each running
job has a watcher thread that relays the worker's progress to the database, polls the
job's cancel flag (set by whichever server process got the cancel request) and, when the
worker is done, registers the model. A job survives its client disconnecting; a server
restart marks the jobs that were running failed (their workers died with it)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from modelport.datasets import DatasetCatalog
from modelport.errors import ModelPortError, NotFoundError
from modelport.pipeline_spec import PipelineSpec, load_spec
from modelport.pipelines.baseline import Baseline
from modelport.pipelines.job_store import JobStore
from modelport.pipelines.preflight import check_spec
from modelport.pipelines.registration import register_outcome
from modelport.pipelines.training import DatasetFile
from modelport.pipelines.worker import WorkerTask, append_log, run_worker
from modelport.registry import Registry
from modelport.registry.references import Reference
from modelport.runtimes.loader import model_path
from modelport.training_types import JobInfo, JobProgress, JobState

log = logging.getLogger(__name__)

RESTART_REASON = "the server restarted while the job was running; submit it again"
SHUTDOWN_REASON = "the server stopped while the job was running; submit it again"
POLL_S = 0.2
CANCEL_POLL_S = 0.5
PROGRESS_INTERVAL_S = 0.25
TERMINATE_GRACE_S = 5.0
MAX_LOG_READ = 1024 * 1024


@dataclass(frozen=True)
class JobSettings:
    data_dir: Path
    max_jobs: int
    max_artifact_bytes: int


class JobManager:
    """Training jobs of this server process."""

    def __init__(
        self,
        store: JobStore,
        datasets: DatasetCatalog,
        registry: Registry,
        settings: JobSettings,
    ) -> None:
        self.store = store
        self.datasets = datasets
        self.registry = registry
        self.settings = settings
        self.jobs_dir = settings.data_dir / "jobs"
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._watchers: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._dispatcher: threading.Thread | None = None
        self._context = multiprocessing.get_context("spawn")

    # lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Fail the jobs whose worker died with a previous server on this host, then start
        dispatching."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        for job_id, owner in self.store.running_owners().items():
            if self._is_orphan(owner):
                self.store.finish(job_id, JobState.FAILED, error=RESTART_REASON)
                append_log(self.log_path(job_id), f"failed: {RESTART_REASON}")
                shutil.rmtree(self.jobs_dir / str(job_id) / "work", ignore_errors=True)
                log.warning("training job %d was interrupted by a restart; marked failed", job_id)
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="modelport-jobs", daemon=True
        )
        self._dispatcher.start()
        self._wake.set()

    def _is_orphan(self, owner: str) -> bool:
        """A job run by a server process of this host that no longer exists (or whose pid
        this new process now has: it cannot be running the job, it just started)."""
        host, _, pid_text = owner.rpartition(":")
        if host != socket.gethostname() or not pid_text.isdigit():
            return False
        pid = int(pid_text)
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        with self._lock:
            watchers = list(self._watchers.values())
        for watcher in watchers:
            watcher.join(TERMINATE_GRACE_S + 2)
        if self._dispatcher is not None:
            self._dispatcher.join(2)

    # requests -------------------------------------------------------------------------------

    def submit(self, spec: PipelineSpec, created_by: str | None) -> JobInfo:
        """Queue a job; the dataset reference is pinned to the version it names now."""
        dataset = self.datasets.resolve(spec.dataset)
        check_spec(spec, dataset)
        pinned = spec.model_copy(update={"dataset": f"{dataset.dataset}@{dataset.version}"})
        job = self.store.create(pinned.as_json(), created_by)
        self.log_path(job.id).parent.mkdir(parents=True, exist_ok=True)
        append_log(
            self.log_path(job.id),
            f"job {job.id} queued: {pinned.dataset} → {spec.registration.model}",
        )
        self._wake.set()
        return job

    def cancel(self, job_id: int) -> JobInfo:
        job = self.store.request_cancel(job_id)
        if job.state is JobState.CANCELLED:
            append_log(self.log_path(job_id), "cancelled before it started")
        return job

    def log_path(self, job_id: int) -> Path:
        return self.jobs_dir / str(job_id) / "log.txt"

    def read_log(self, job_id: int, offset: int) -> tuple[str, int]:
        """Log text from byte ``offset`` (at most 1 MiB) and the offset to continue from."""
        self.store.get(job_id)
        path = self.log_path(job_id)
        if not path.is_file():
            return "", offset
        with path.open("rb") as stream:
            stream.seek(offset)
            data = stream.read(MAX_LOG_READ)
        cut = data.rfind(b"\n") + 1 if len(data) == MAX_LOG_READ else len(data)
        return data[:cut].decode("utf-8", errors="replace"), offset + cut

    # dispatching ----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self._start_queued()
            except Exception:  # a database hiccup must not stop dispatching for good
                log.exception("dispatching training jobs failed; retrying")

    def _start_queued(self) -> None:
        for job_id in self.store.queued_ids():
            if self._stopping.is_set() or self.store.running_count() >= self.settings.max_jobs:
                return
            if self.store.claim(job_id, self.owner):
                watcher = threading.Thread(
                    target=self._watch_job,
                    args=(job_id,),
                    name=f"modelport-job-{job_id}",
                    daemon=True,
                )
                with self._lock:
                    self._watchers[job_id] = watcher
                watcher.start()

    # one job --------------------------------------------------------------------------------

    def _watch_job(self, job_id: int) -> None:
        logfile = self.log_path(job_id)
        logfile.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._run_job(job_id, logfile)
        except Exception as exc:
            log.exception("training job %d failed unexpectedly", job_id)
            message = (
                exc.message if isinstance(exc, ModelPortError) else f"{type(exc).__name__}: {exc}"
            )
            append_log(logfile, f"failed: {message}")
            self.store.finish(job_id, JobState.FAILED, error=message)
        finally:
            shutil.rmtree(self.jobs_dir / str(job_id) / "work", ignore_errors=True)
            with self._lock:
                self._watchers.pop(job_id, None)
            self._wake.set()

    def _run_job(self, job_id: int, logfile: Path) -> None:
        job = self.store.get(job_id)
        spec = load_spec(job.spec)
        dataset = self.datasets.resolve(spec.dataset)
        work_dir = self.jobs_dir / str(job_id) / "work"
        work_dir.mkdir(parents=True, exist_ok=True)
        task = WorkerTask(
            job_id=job_id,
            spec=job.spec,
            dataset=DatasetFile(
                dataset.dataset,
                dataset.version,
                dataset.sha256,
                self.datasets.file_of(dataset),
                dataset.format,
            ),
            work_dir=work_dir,
            log_path=logfile,
            baseline=self._baseline(spec),
        )
        append_log(logfile, f"job {job_id} started on {self.owner}")
        state, payload = self._run_worker(job_id, task)
        if state is JobState.SUCCEEDED:
            self._register(job, spec, dataset, payload, logfile)
        else:
            append_log(logfile, f"{state.value}: {payload}")
            self.store.finish(
                job_id, state, error=str(payload), progress=JobProgress(stage=state.value)
            )

    def _baseline(self, spec: PipelineSpec) -> Baseline | None:
        gate = spec.parsed_gate()
        if gate is None or gate.better_than is None:
            return None
        try:
            version = self.registry.resolve(
                Reference(spec.registration.model, alias=gate.better_than)
            )
        except NotFoundError:
            return None  # nothing to beat yet
        blob = self.registry.artifacts.verified_path(version.artifact_sha256)
        path = model_path(blob, version.format, self.registry.artifacts.unpacked_dir)
        return Baseline(
            gate.better_than,
            version.version,
            path,
            version.format,
            version.signature.model_dump(mode="json"),
        )

    def _register(
        self, job: JobInfo, spec: PipelineSpec, dataset: Any, outcome: dict[str, Any], logfile: Path
    ) -> None:
        self.store.set_progress(job.id, JobProgress(stage="register"))
        registered = register_outcome(
            self.registry,
            self.settings.max_artifact_bytes,
            job.id,
            spec,
            dataset,
            outcome,
            job.created_by,
        )
        gate = registered["gate"]
        verdict = f"gate {'passed' if gate['passed'] else 'failed'}: {gate['reason']}"
        if registered["version"] is None:
            append_log(logfile, f"{verdict}; not registered: {registered['not_registered']}")
        else:
            moved = registered["alias_moved"]
            append_log(
                logfile,
                f"registered {registered['model']}@{registered['version']}; {verdict}; "
                + (f"alias '{registered['alias']}' moved" if moved else "no alias moved"),
            )
        result = {
            "registered": registered,
            **{k: v for k, v in outcome.items() if k not in ("artifact", "profile")},
        }
        self.store.finish(
            job.id, JobState.SUCCEEDED, result=result, progress=JobProgress(stage="done")
        )

    def _run_worker(self, job_id: int, task: WorkerTask) -> tuple[JobState, Any]:
        """Run the worker to its end, its cancellation or the server's shutdown."""
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(target=run_worker, args=(task, sender), daemon=True)
        process.start()
        sender.close()
        try:
            return self._relay(job_id, process, receiver)
        finally:
            process.join(1.0)  # a worker that reported its end exits on its own
            if process.is_alive():
                process.terminate()
                process.join(TERMINATE_GRACE_S)
                if process.is_alive():
                    process.kill()
            process.join()
            receiver.close()

    def _relay(self, job_id: int, process: Any, receiver: Connection) -> tuple[JobState, Any]:
        progress = JobProgress(stage="starting")
        written = checked = 0.0
        while True:
            if self._stopping.is_set():
                return JobState.FAILED, SHUTDOWN_REASON
            now = time.monotonic()
            if now - checked >= CANCEL_POLL_S:
                checked = now
                if self.store.cancel_requested(job_id):
                    return JobState.CANCELLED, "cancelled while running"
            try:
                message = receiver.recv() if receiver.poll(POLL_S) else None
            except (EOFError, OSError):
                process.join(TERMINATE_GRACE_S)
                return JobState.FAILED, f"the worker process died (exit code {process.exitcode})"
            if message is None:
                continue
            kind, payload = message
            if kind == "result":
                return JobState.SUCCEEDED, payload
            if kind == "error":
                return JobState.FAILED, payload
            stage_changed = payload.get("stage") != progress.stage
            progress = progress.model_copy(update=payload)
            if stage_changed or time.monotonic() - written >= PROGRESS_INTERVAL_S:
                self.store.set_progress(job_id, progress)
                written = time.monotonic()
