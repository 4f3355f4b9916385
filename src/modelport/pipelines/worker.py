"""The job's worker process: runs one pipeline and reports through a pipe.

Messages to the server: ``("progress", {...})`` as the run moves, then exactly one of
``("result", outcome)`` or ``("error", message)``. Log lines go straight to the job's log
file. The process is started with the ``spawn`` method (a fresh interpreter: nothing of
the server's threads, sockets or loaded models is inherited) and at a lower priority, so
that serving stays responsive while a job trains; cancelling a job terminates it."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import traceback
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from modelport.errors import ModelPortError
from modelport.pipeline_spec import load_spec
from modelport.pipelines.baseline import Baseline
from modelport.pipelines.training import DatasetFile, Reporter, run_pipeline

WORKER_NICENESS = 10


@dataclass(frozen=True)
class WorkerTask:
    """Everything a worker needs, picklable."""

    job_id: int
    spec: dict[str, Any]
    dataset: DatasetFile
    work_dir: Path
    log_path: Path
    baseline: Baseline | None = None


def append_log(path: Path, line: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as stream:
        stream.write(f"{stamp} {line}\n")


def _exit_with_parent() -> None:
    """End this process when the server dies (killed, not stopped): nobody would read
    its result, and a restarted server has already marked the job failed."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def run_worker(task: WorkerTask, connection: Connection) -> None:
    """The process target."""
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    _exit_with_parent()
    warnings.simplefilter("ignore")  # convergence chatter; results are in the leaderboard

    def log(line: str) -> None:
        append_log(task.log_path, line)

    def progress(**fields: Any) -> None:
        connection.send(("progress", fields))

    reporter = Reporter(progress, log)
    try:
        outcome = run_pipeline(
            load_spec(task.spec), task.dataset, task.work_dir, reporter, task.baseline
        )
    except ModelPortError as exc:
        log(f"failed: {exc.message}")
        connection.send(("error", exc.message))
    except MemoryError:
        log("failed: out of memory")
        connection.send(("error", "the worker ran out of memory; use a smaller dataset or search"))
    except Exception as exc:
        log("failed:\n" + traceback.format_exc())
        connection.send(("error", f"training failed: {type(exc).__name__}: {exc}"[:2000]))
    else:
        connection.send(("result", outcome))
    finally:
        connection.close()
