"""Training wall time of the example pipelines, and ONNX against scikit-learn for their winners.

Usage: .venv/bin/python bench/training.py [--repeat N] [--output PATH]

Starts `modelport serve --no-demo` on the loopback interface (pinned to one core with
`taskset`; the training worker processes inherit it, and their estimators fit on one
thread), uploads each example's CSV as a dataset (`bench/training_examples.py`: houses,
churn, tumours) and submits its spec to `POST /api/v1/jobs`, one job at a time (each after
waiting up to 10 s for other processes to leave the CPU alone; what they took meanwhile is
the "others' CPU" column, in shares of one core). The runner, pinned to the other core,
polls `GET /api/v1/jobs/ID` every 50 ms: the job's wall time is
from the submit to the first answer that says `succeeded`, and each stage's time is from
the first poll that shows it (`progress.stage`) to the first that shows the next one (a
stage shorter than a poll is counted in the one before it). The worker's own clock gives
`training_seconds` (load to saved model) and the seconds of each candidate's search.

When the pipeline kept the ONNX form of its winner, only that is registered; a second job
(the *twin*: the winner with its winning setting only, the same split and seed, no ONNX)
registers the same model in scikit-learn's skops format, and its test metrics must equal
the first job's. Both registered artifacts are downloaded through the API and, after the
server has stopped, loaded in this process through ModelPort's own runtimes (`load_model`
with the registered signature, one thread, pinned to the server's core), then `predict` is
timed on 1 and 32 complete rows of the dataset in each model's input dtype (FP64 for
scikit-learn, FP32 for ONNX): the best of N calls and the median. When a job dropped the
ONNX form (its predictions disagreed, or it was not faster), the registered scikit-learn
winner is converted here as the pipeline converts it (skl2onnx, FP32 `features` input,
opset 17), loaded through the same ONNX runtime and timed too, to show what the drop
costs; that model is not registered and is marked as such.
Writes bench/RESULTS-training.md.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from cpuload import NOISY, Snapshot, others_share, snapshot, wait_quiet
from envs import BENCH_DIR, package_versions
from memory import tree
from report import finish, preamble
from servers import running
from systems import HOST, Endpoint, Server, free_port, modelport_command
from training_examples import EXAMPLES, Example, scikit_learn_twin

BATCHES = (1, 32)
SKLEARN = "scikit-learn (skops)"
ONNX = "ONNX Runtime"
DROPPED_ONNX = "ONNX Runtime, not registered"
RELATIVE_TOLERANCE = 1e-4  # the pipeline's: modelport.pipelines.optimization
POLL_S = 0.05
JOB_TIMEOUT_S = 300.0
QUIET_WAIT_S = 10.0  # before each job, wait at most this long for others to calm down
PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("queued", ("queued",)),
    ("worker start", ("starting",)),
    ("load + split", ("load", "split")),
    ("search", ("search",)),
    ("refit + test", ("refit", "test")),
    ("ONNX", ("optimize",)),
    ("save", ("save",)),
    ("register", ("register",)),
)
"""The report's stage columns, each the job's progress stages it covers."""


@dataclass
class JobRun:
    """A finished job as the runner saw it."""

    job: dict[str, Any]
    wall_s: float
    stage_seen: dict[str, float]  # progress stage: seconds after the submit it was first seen
    others_cpu: float

    @property
    def result(self) -> dict[str, Any]:
        found: dict[str, Any] = self.job["result"]
        return found

    def phases(self) -> list[float | None]:
        """Seconds per PHASES column; None for a phase no poll saw."""
        starts = []
        for _, stages in PHASES:
            seen = [self.stage_seen[s] for s in stages if s in self.stage_seen]
            starts.append(min(seen) if seen else None)
        starts[0] = 0.0  # the submit
        out: list[float | None] = []
        for index, start in enumerate(starts):
            if start is None:
                out.append(None)
                continue
            later = [s for s in starts[index + 1 :] if s is not None]
            out.append((later[0] if later else self.wall_s) - start)
        return out


@dataclass
class Latency:
    """One registered artifact's predict times: rows per call -> (best, median) seconds."""

    label: str
    times: dict[int, tuple[float, float]] = field(default_factory=dict)


@dataclass
class Outcome:
    """One example: its job, the twin job when there is one, and the latencies."""

    example: Example
    run: JobRun
    twin: JobRun | None = None
    artifacts: dict[str, tuple[Path, dict[str, Any]]] = field(default_factory=dict)
    latency: dict[str, Latency] = field(default_factory=dict)
    agreement: str = ""
    onnx_log: str = ""  # the job's log line about ONNX

    @property
    def onnx_dropped(self) -> bool:
        return self.onnx_log.startswith("ONNX model dropped")


class Api:
    """ModelPort's REST API on the loopback interface, with the admin key."""

    def __init__(self, port: int, key: str, server_pid: int) -> None:
        self.client = httpx.Client(
            base_url=f"http://{HOST}:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60.0,
            trust_env=False,  # never through a proxy from the environment
        )
        self.server_pid = server_pid

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {response.status_code}: {response.text}")
        return response.json()

    def push_dataset(self, name: str, csv: Path) -> None:
        files = {"file": (csv.name, csv.read_bytes(), "text/csv")}
        self.call("POST", f"/api/v1/datasets/{name}/versions", files=files)

    def run_job(self, spec: dict[str, Any]) -> JobRun:
        """Submit ``spec`` and poll the job to its end (an end but success fails the run)."""
        ours = {os.getpid(), *tree(self.server_pid)}
        wait_quiet(QUIET_WAIT_S, ours)
        before = snapshot()
        started = time.perf_counter()
        job = self.call("POST", "/api/v1/jobs", json=spec)
        seen: dict[str, float] = {}
        while job["state"] not in ("succeeded", "failed", "cancelled"):
            if time.perf_counter() - started > JOB_TIMEOUT_S:
                raise RuntimeError(f"job {job['id']} still {job['state']} after {JOB_TIMEOUT_S}s")
            time.sleep(POLL_S)
            ours.update(tree(self.server_pid))  # the worker processes count as ours
            job = self.call("GET", f"/api/v1/jobs/{job['id']}")
            seen.setdefault(job["progress"]["stage"], time.perf_counter() - started)
        wall = time.perf_counter() - started
        if job["state"] != "succeeded":
            raise RuntimeError(f"job {job['id']} ended {job['state']}: {job['error']}")
        return JobRun(job, wall, seen, _others(before, ours, wall))

    def onnx_log_line(self, job_id: int) -> str:
        text: str = self.call("GET", f"/api/v1/jobs/{job_id}/logs")["text"]
        found = [line.split(" ", 1)[1] for line in text.splitlines() if " ONNX " in line]
        return found[-1] if found else ""

    def download(self, registered: dict[str, Any], into: Path) -> tuple[Path, dict[str, Any]]:
        """The registered artifact as a file, and the version's description."""
        path = f"/api/v1/models/{registered['model']}/versions/{registered['version']}"
        info: dict[str, Any] = self.call("GET", path)
        target = into / f"{registered['model']}-v{registered['version']}.{info['format']}"
        response = self.client.get(f"{path}/artifact")
        response.raise_for_status()
        target.write_bytes(response.content)
        return target, info


def _others(before: Snapshot, ours: set[int], seconds: float) -> float:
    return others_share(before, snapshot(), ours, seconds)


def run_example(api: Api, example: Example, work: Path) -> Outcome:
    csv = work / f"{example.name}.csv"
    example.make_frame().to_csv(csv, index=False)
    api.push_dataset(example.name, csv)
    outcome = Outcome(example, api.run_job(example.spec))
    registered = outcome.run.result["registered"]
    label = ONNX if registered["format"] == "onnx" else SKLEARN
    outcome.artifacts[label] = api.download(registered, work)
    outcome.onnx_log = api.onnx_log_line(outcome.run.job["id"])
    if registered["format"] == "onnx":
        outcome.twin = api.run_job(scikit_learn_twin(example, outcome.run.result["best"]))
        twin = outcome.twin.result
        if twin["test_metrics"] != outcome.run.result["test_metrics"]:
            raise RuntimeError(
                f"{example.name}: the twin is another model: its test metrics "
                f"{twin['test_metrics']} differ from {outcome.run.result['test_metrics']}"
            )
        outcome.artifacts[SKLEARN] = api.download(twin["registered"], work)
    print(
        f"{example.name}: {outcome.run.result['best']['estimator']} in {outcome.run.wall_s:.1f} s"
        f" ({registered['format']})",
        flush=True,
    )
    return outcome


def input_rows(frame: pd.DataFrame, result: dict[str, Any], count: int) -> pd.DataFrame:
    """``count`` complete rows of the dataset (serving refuses missing values)."""
    columns = result["features"]["columns"]
    complete: pd.DataFrame = frame[columns].dropna().head(count)
    return complete


def model_inputs(model: Any, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """The rows as the DataPlane hands them to ``model``: one matrix in the input's dtype,
    or one array per column (text as UTF-8 bytes)."""
    from modelport.tensors.dtypes import NUMPY_DTYPES
    from modelport.types import Datatype

    specs = model.signature.inputs
    if len(specs) == 1 and len(specs[0].shape) == 2 and specs[0].shape[1] == rows.shape[1]:
        matrix = rows.to_numpy(dtype=np.float64)
        return {specs[0].name: matrix.astype(NUMPY_DTYPES[specs[0].datatype])}
    inputs: dict[str, np.ndarray] = {}
    for spec in specs:
        column = rows[spec.name]
        if spec.datatype is Datatype.BYTES:
            array = np.array([str(v).encode() for v in column], dtype=object)
        else:
            array = column.to_numpy().astype(NUMPY_DTYPES[spec.datatype])
        inputs[spec.name] = array.reshape([len(rows), *spec.shape[1:]])
    return inputs


def time_predict(model: Any, inputs: dict[str, np.ndarray], repeat: int) -> tuple[float, float]:
    output = frozenset({model.default_outputs[0]})
    for _ in range(10):
        model.predict(inputs, output)
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        model.predict(inputs, output)
        samples.append(time.perf_counter() - t0)
    return min(samples), statistics.median(samples)


def convert_like_the_pipeline(outcome: Outcome, work: Path) -> None:
    """The ONNX form the job dropped, made as the pipeline makes it, as one more artifact
    (described the way an upload is: ``inspect_upload``)."""
    import skops.io as sio
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    from modelport.runtimes.loader import inspect_upload

    path, _ = outcome.artifacts[SKLEARN]
    estimator = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    width = len(outcome.run.result["features"]["columns"])
    converted = to_onnx(
        estimator, initial_types=[("features", FloatTensorType([None, width]))], target_opset=17
    )
    target = work / f"{outcome.example.model}-dropped.onnx"
    target.write_bytes(converted.SerializeToString())
    inspected = inspect_upload(target, False, False, None)
    info = {"format": inspected.format, "signature": inspected.signature.model_dump(mode="json")}
    outcome.artifacts[DROPPED_ONNX] = (target, info)


def measure_latency(outcome: Outcome, repeat: int) -> None:
    """Load each artifact through ModelPort's runtimes and time predict."""
    from modelport.runtimes.loader import load_model
    from modelport.types import Signature

    rows = input_rows(outcome.example.make_frame(), outcome.run.result, max(BATCHES))
    predictions: dict[str, np.ndarray] = {}
    for label, (path, info) in outcome.artifacts.items():
        signature = Signature.model_validate(info["signature"])
        model = load_model(path, info["format"], signature, False, False, None, 1)
        inputs = model_inputs(model, rows)
        output = model.default_outputs[0]
        predictions[label] = np.asarray(model.predict(inputs, frozenset({output}))[output])
        latency = Latency(label)
        for size in BATCHES:
            batch = {name: array[:size] for name, array in inputs.items()}
            latency.times[size] = time_predict(model, batch, repeat)
        outcome.latency[label] = latency
        model.unload()
    onnx = next((predictions[k] for k in (ONNX, DROPPED_ONNX) if k in predictions), None)
    if onnx is not None:
        outcome.agreement = _agreement(predictions[SKLEARN], onnx)


def _agreement(sklearn: np.ndarray, onnx: np.ndarray) -> str:
    """How far ONNX is from scikit-learn, judged as the pipeline judges it (values within
    RELATIVE_TOLERANCE of the largest prediction, labels equal)."""
    sklearn, onnx = sklearn.ravel(), onnx.ravel()
    if sklearn.dtype.kind in "fc":
        scale = max(1.0, float(np.abs(sklearn).max()))
        difference = np.abs(sklearn - onnx.astype(np.float64))
        beyond = int((difference > RELATIVE_TOLERANCE * scale).sum())
        return (
            f"{len(sklearn) - beyond} of {len(sklearn)} values within {RELATIVE_TOLERANCE:g} of "
            f"the largest prediction (largest difference {difference.max() / scale:.1e} of it)"
        )
    same = int((sklearn.astype(str) == onnx.astype(str)).sum())
    return f"{same} of {len(sklearn)} labels equal"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def jobs_table(outcomes: list[Outcome]) -> list[str]:
    lines = [
        "| pipeline | data | fits | winner | CV | test | gate | registered | job wall s "
        "| worker training s | others' CPU |",
        "|---|---|---:|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for o in outcomes:
        result = o.run.result
        registered, metric = result["registered"], result["metric"]
        fits = sum(row["settings_tried"] for row in result["leaderboard"])
        folds = o.example.spec["search"]["cv"]
        best = result["best"]
        params = ", ".join(f"{k}={v}" for k, v in best["params"].items()) or "defaults"
        gate = "passed" if registered["gate"]["passed"] else "failed"
        moved = f", `{registered['alias']}` moved" if registered["alias_moved"] else ""
        lines.append(
            f"| {o.example.name} | {o.example.summary} | {fits} x {folds} + 1 "
            f"| {best['estimator']} ({params}) | {metric} {best['cv_mean']:.3f} "
            f"| {metric} {result['test_metrics'][metric]:.3f} | `{o.example.spec['gate']}` "
            f"{gate}{moved} | {registered['model']}@{registered['version']} "
            f"({registered['format']}) | {o.run.wall_s:.1f} | {result['training_seconds']:.1f} "
            f"| {100 * o.run.others_cpu:.0f}% |"
        )
    return lines


def stages_table(outcomes: list[Outcome]) -> list[str]:
    runs = [(o.example.name, o.run) for o in outcomes]
    runs += [(f"{o.example.name} twin", o.twin) for o in outcomes if o.twin is not None]
    header = " | ".join(name for name, _ in PHASES)
    lines = [
        f"| job | {header} | wall s |",
        "|---|" + "---:|" * (len(PHASES) + 1),
    ]
    for name, run in runs:
        cells = " | ".join(_seconds(v) for v in run.phases())
        lines.append(f"| {name} | {cells} | {run.wall_s:.1f} |")
    return lines


def leaderboard_table(outcomes: list[Outcome]) -> list[str]:
    lines = [
        "| pipeline | candidate | settings | best setting | CV mean | search s |",
        "|---|---|---:|---|---:|---:|",
    ]
    for o in outcomes:
        for row in o.run.result["leaderboard"]:
            params = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "defaults"
            mean = "failed" if row["cv_mean"] is None else f"{row['cv_mean']:.3f}"
            lines.append(
                f"| {o.example.name} | {row['estimator']} | {row['settings_tried']} "
                f"| {params} | {mean} | {row['seconds']:.1f} |"
            )
    return lines


def latency_table(outcomes: list[Outcome]) -> list[str]:
    lines = [
        "| winner | rows per call | scikit-learn best µs | median µs | ONNX Runtime best µs "
        "| median µs | speedup (best) | speedup (median) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        name = f"{o.example.name}: {o.run.result['best']['estimator']}"
        sk = o.latency[SKLEARN].times
        ort = next((o.latency[k].times for k in (ONNX, DROPPED_ONNX) if k in o.latency), None)
        if DROPPED_ONNX in o.latency:
            name += " (ONNX dropped by the job, converted here)"
        for size in BATCHES:
            cells = f"| {name} | {size} | {sk[size][0] * 1e6:,.0f} | {sk[size][1] * 1e6:,.0f} "
            if ort is None:
                cells += "| - | - | - | - |"
            else:
                cells += (
                    f"| {ort[size][0] * 1e6:,.0f} | {ort[size][1] * 1e6:,.0f} "
                    f"| {sk[size][0] / ort[size][0]:.1f}x | {sk[size][1] / ort[size][1]:.1f}x |"
                )
            lines.append(cells)
    return lines


def notes(outcomes: list[Outcome]) -> list[str]:
    out = []
    for o in outcomes:
        result = o.run.result
        if o.twin is not None:
            onnx = result["onnx"]
            out.append(
                f"- {o.example.name}: ONNX kept by the job (its own check: agrees on "
                f"{result['split']['test_rows']} test rows, one row {onnx['speedup']:.1f}x "
                f"faster: {onnx['sklearn_one_row_us']:,.0f} → {onnx['onnx_one_row_us']:,.0f} µs);"
                f" the twin ({o.twin.wall_s:.1f} s) has the same test metrics; here the two "
                f"runtimes agree on {max(BATCHES)} rows: {o.agreement}"
            )
        elif o.onnx_dropped:
            out.append(
                f'- {o.example.name}: the job says "{o.onnx_log}" and registered scikit-learn;'
                f" the same conversion made here, on {max(BATCHES)} rows: {o.agreement}. Its "
                "speedup above is what the drop costs, not something ModelPort serves"
            )
        else:
            out.append(
                f'- {o.example.name}: "{o.onnx_log or "no ONNX form"}"; served by '
                "scikit-learn, timed alone"
            )
    noisy = [o for o in outcomes if o.run.others_cpu > NOISY]
    if noisy:
        worst = max(noisy, key=lambda o: o.run.others_cpu)
        out.append(
            f"- **Noisy run**: other processes took more than {100 * NOISY:.0f}% of a core "
            f"during {len(noisy)} of {len(outcomes)} jobs (up to "
            f"{100 * worst.run.others_cpu:.0f}%, {worst.example.name}); the wall times are "
            "upper bounds"
        )
    return out


def write_report(args: argparse.Namespace, outcomes: list[Outcome], started: float) -> None:
    total_jobs = sum(o.run.wall_s + (o.twin.wall_s if o.twin else 0.0) for o in outcomes)
    out = preamble(
        "ModelPort benchmark: training pipelines, and ONNX vs scikit-learn for their winners",
        f"Produced by `.venv/bin/python bench/training.py --repeat {args.repeat}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{(time.monotonic() - started) / 60:.1f} minutes ({total_jobs:.0f} s of jobs).",
    )
    out += [
        "",
        __doc__.split("\n\n", 2)[2].strip(),
        "",
        "The examples (`bench/training_examples.py`): "
        + "; ".join(f"{e.name}: {e.summary}" for e in EXAMPLES)
        + ". Every spec searches at random, 8 settings per candidate, 3 folds, and asks "
        "for ONNX.",
        "",
        "## Training jobs",
        "",
        *jobs_table(outcomes),
        "",
        "Fits: settings tried x folds, plus the refit of the winner. Job wall: submit to "
        "`succeeded` as the client sees it; worker training: the worker's clock from "
        "reading the dataset to the saved model (registration is outside it).",
        "",
        "### Stages (seconds, from the job's progress)",
        "",
        *stages_table(outcomes),
        "",
        "queued: until the dispatcher claims the job; worker start: a fresh interpreter "
        "(`spawn`) importing the pipeline code; load + split: reading the CSV, choosing "
        "features, splitting, building the search (pandas and scikit-learn imports included);"
        " save: the worker writes the model (and for ONNX runs it on the test split); "
        "register: the server inspects the artifact as it inspects an upload, stores it and "
        "applies the gate. A `-`: no poll saw that stage (counted in the one before).",
        "",
        "### Leaderboards (the worker's seconds per candidate)",
        "",
        *leaderboard_table(outcomes),
        "",
        "## Inference: the winners through ModelPort's runtimes",
        "",
        *latency_table(outcomes),
        "",
        *notes(outcomes),
    ]
    names = ("modelport", "scikit-learn", "onnxruntime", "skl2onnx", "skops", "numpy")
    installed = package_versions(Path(sys.executable), names)
    finish(args.output, out, ", ".join(f"{k} {v}" for k, v in installed.items()), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="calls per batch size (200)")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "RESULTS-training.md")
    args = parser.parse_args()
    started = time.monotonic()
    work = BENCH_DIR / ".work" / "training"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    key = "mp_bench-" + secrets.token_hex(16)
    port = free_port()
    server = Server(
        modelport_command(Path(sys.executable), work / "data", port, 0, "--no-demo"),
        BENCH_DIR,
        port,
        (Endpoint("jobs", "/api/v1/jobs", b"", None),),
        "/v2/health/ready",
        {"MODELPORT_ADMIN_KEY": key, "MODELPORT_MAX_TRAINING_JOBS": "1"},
    )
    os.sched_setaffinity(0, {args.client_core})
    outcomes = []
    with running(server, args.server_core, work / "logs" / "modelport.log", 120.0) as pid:
        api = Api(port, key, pid)
        for example in EXAMPLES:
            outcomes.append(run_example(api, example, work))
    os.sched_setaffinity(0, {args.server_core})
    for outcome in outcomes:
        if outcome.onnx_dropped:
            convert_like_the_pipeline(outcome, work)
        measure_latency(outcome, args.repeat)
    write_report(args, outcomes, started)
    print("\n".join(latency_table(outcomes)))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
