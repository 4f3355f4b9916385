"""Benchmark ModelPort side by side with its peers, print tables and write bench/RESULTS*.md.

    python bench/run.py                        # demo scenario, every system (RESULTS.md)
    python bench/run.py --scenario moderate    # the HGB classifier (RESULTS-moderate.md)
    python bench/run.py --scenario multimodel  # 500 models, 50 in memory (RESULTS-multimodel.md)
    python bench/run.py --scenario overload    # ModelPort past its capacity (RESULTS-overload.md)
    python bench/run.py --scenario tensors     # V2 wire formats (RESULTS-tensors.md)
    python bench/run.py --scenario all         # all of them
    python bench/run.py --only mlserver        # systems whose name starts with "mlserver"
    python bench/run.py --duration 3           # a quick look

Any Python 3.11 or 3.12 runs it: it needs only the standard library, creates the peers'
virtual environments under bench/.envs/ on first use, and serves ModelPort from the
repository's .venv (`make`), or from `--modelport-venv`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import moderate
import multimodel
import overload
import tensors
import tensors_report
from cpuload import NOISY, others_share, snapshot, wait_quiet
from envs import BENCH_DIR, ensure_env, package_versions
from loadgen import (
    Measurement,
    ensure_wrk,
    grpc_load,
    grpc_verify,
    grpcload_argv,
    measure,
    write_script,
    wrk_version,
)
from memory import RssSampler
from report import Row, Run, ceiling_verdict, noise_note, table, verdict, write
from servers import ServerError, pinned_processes, running, verify
from systems import HOST, SYSTEMS, Context, Endpoint, Reference, Server, System

WORK_DIR = BENCH_DIR / ".work"
SCENARIOS = ("demo", "moderate", "multimodel", "overload", "tensors")
DEFAULT_CONCURRENCY = {"demo": [1, 32], "moderate": [32, 128]}
TRAINING = {"demo": "train_demo.py", "moderate": "train_moderate.py"}
NO_MODEL_ENVS = ("asgi",)  # environments whose server loads no model


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = ", ".join(s.name for s in SYSTEMS)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run the systems whose name starts with NAME (repeatable): {names}",
    )
    parser.add_argument(
        "--scenario",
        choices=(*SCENARIOS, "all"),
        default="demo",
        help="demo: one-row predictions on the demo model (RESULTS.md); moderate: the HGB "
        "classifier, floor and combined limit (RESULTS-moderate.md); multimodel: 500 models "
        "under a 50-model budget (RESULTS-multimodel.md); overload: ModelPort at 10x what it "
        "serves within its timeout (RESULTS-overload.md); tensors: V2 REST JSON, REST binary "
        "and gRPC on FP32 tensors (RESULTS-tensors.md); all: every one",
    )
    parser.add_argument("--skip-peers", action="store_true", help="run ModelPort alone")
    parser.add_argument("--skip-modelport", action="store_true", help="run the peers alone")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per point (10)")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of warm-up per endpoint, 0 for none (2)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=None,
        help="open connections per point (demo and tensors: 1 32; moderate: 32 128; "
        "multimodel: 32)",
    )
    parser.add_argument(
        "--modelport-venv",
        type=Path,
        default=BENCH_DIR.parent / ".venv",
        help="virtual environment with modelport installed (.venv)",
    )
    parser.add_argument("--server-core", type=int, default=0, help="core for servers (0)")
    parser.add_argument("--client-core", type=int, default=1, help="core for wrk (1)")
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=120.0,
        help="seconds a server may take to become ready (120)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help="times to redo a point that other processes disturbed (1)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="seconds to wait at most for a quiet machine before redoing a point (10)",
    )
    parser.add_argument(
        "--grpc-clients",
        type=int,
        default=1,
        help="gRPC load generator processes, all on the client core (1)",
    )
    outputs = parser.add_argument_group("reports")
    for scenario, default in (
        ("demo", "RESULTS.md"),
        ("moderate", "RESULTS-moderate.md"),
        ("multimodel", "RESULTS-multimodel.md"),
        ("overload", "RESULTS-overload.md"),
        ("tensors", "RESULTS-tensors.md"),
    ):
        option = "--output" if scenario == "demo" else f"--{scenario}-output"
        outputs.add_argument(
            option,
            type=Path,
            default=BENCH_DIR / default,
            help=f"where the {scenario} scenario writes its report (bench/{default})",
        )
    multimodel.add_arguments(parser)
    overload.add_arguments(parser)
    return parser.parse_args(argv)


def select(args: argparse.Namespace, scenario: str) -> list[System]:
    """The systems of `scenario`: those named by --only, else the scenario's defaults."""
    if args.only:
        chosen = [s for s in SYSTEMS if any(s.name.startswith(p) for p in args.only)]
    else:
        chosen = [s for s in SYSTEMS if scenario in s.scenarios]
    if args.skip_peers:
        chosen = [s for s in chosen if s.name == "modelport"]
    if args.skip_modelport:
        chosen = [s for s in chosen if s.name != "modelport"]
    return chosen


def prepare_models(
    chosen: list[System], pythons: dict[str, Path], scenario: str
) -> tuple[Reference, dict[str, Path], dict[str, str]]:
    """Train the scenario's model in each environment whose server loads it; return the
    reference, each environment's model directory and the environments where it failed."""
    envs = sorted({s.env_name or "modelport" for s in chosen} - set(NO_MODEL_ENVS))
    if scenario == "moderate" or not envs:  # the floor, or the ceiling's reference only
        envs.append("modelport")
    first = "modelport" if "modelport" in envs else envs[0]  # where the reference comes from
    envs = [first, *sorted(set(envs) - {first})]
    if first == "modelport" and not _imports(pythons["modelport"], "sklearn, joblib, skops"):
        raise SystemExit(f"{pythons['modelport']} cannot import scikit-learn: run `make`")
    dirs, failed = {}, {}
    for env in envs:
        model_dir = WORK_DIR / f"{scenario}-models" / env
        flags = {"modelport": ["--skops"], "mlflow": ["--mlflow"]}.get(env, [])
        train = [str(pythons[env]), str(BENCH_DIR / "peers" / TRAINING[scenario]), str(model_dir)]
        done = subprocess.run([*train, *flags], capture_output=True, text=True)
        if done.returncode != 0:
            if env == first:
                raise SystemExit(f"training the {scenario} model failed:\n{done.stderr}")
            failed[env] = "training the model failed: " + "\n".join(
                done.stderr.strip().splitlines()[-3:]
            )
            print(f"   {env}: {failed[env]}", file=sys.stderr, flush=True)
            continue
        dirs[env] = model_dir
    return Reference.read(dirs[first] / "reference.json"), dirs, failed


def _imports(python: Path, modules: str) -> bool:
    if not python.exists():
        return False
    return (
        subprocess.run([str(python), "-c", f"import {modules}"], capture_output=True).returncode
        == 0
    )


def measure_point(
    load: Callable[[int, float], Measurement], connections: int, args: argparse.Namespace, pid: int
) -> tuple[Measurement, float]:
    """Measure one point with `load(connections, seconds)`; redo it (after waiting for quiet)
    when other processes interfered."""
    attempts: list[tuple[Measurement, float]] = []
    for attempt in range(args.retries + 1):
        if attempt:
            print(
                f"   others used {100 * attempts[-1][1]:.0f}% of a core; measuring again",
                flush=True,
            )
            wait_quiet(args.quiet_wait, {os.getpid(), *pinned_processes(pid)})
        before = snapshot()
        m = load(connections, args.duration)
        others = others_share(before, snapshot(), {os.getpid(), *pinned_processes(pid)}, m.seconds)
        attempts.append((m, others))
        if others <= NOISY:
            break
    return min(attempts, key=lambda attempt: attempt[1])


class Tools:
    """The load generators: wrk, and grpcload.py's environment, created when first needed."""

    def __init__(self, wrk: str, args: argparse.Namespace) -> None:
        self.wrk = wrk
        self.args = args
        self._grpc_python: Path | None = None

    @property
    def grpc_python(self) -> Path:
        if self._grpc_python is None:
            self._grpc_python = ensure_env("grpcclient")
        return self._grpc_python

    def prepare(
        self, server: Server, endpoint: Endpoint, reference: Reference, stem: Path
    ) -> Callable[[int, float], Measurement]:
        """Check the endpoint's answer against the reference; return its load."""
        args = self.args
        if endpoint.protocol == "grpc":
            if server.grpc_port is None:
                raise ServerError(f"{endpoint.label}: the server has no gRPC port")
            raw_file = stem.with_suffix(".bin")
            raw_file.write_bytes(endpoint.body)
            token = server.headers.get("Authorization", "").removeprefix("Bearer ")
            dims = f"1x{len(endpoint.body) // 4}"
            argv = grpcload_argv(
                self.grpc_python, server.grpc_port, endpoint.path, dims, raw_file, token
            )
            try:
                answer = grpc_verify(argv)
            except RuntimeError as exc:
                raise ServerError(f"{endpoint.label}: {exc}") from exc
            verify(server, endpoint, reference, answer)
            processes = args.grpc_clients

            def grpc(connections: int, seconds: float) -> Measurement:
                n = min(processes, connections)
                return grpc_load(argv, args.client_core, n, connections, seconds)

            return grpc
        verify(server, endpoint, reference)
        headers = {**server.headers, **endpoint.headers}
        body_file = stem.with_suffix(".body") if endpoint.protocol == "binary" else None
        script = write_script(stem.with_suffix(".lua"), endpoint.body, headers, body_file)
        url = f"http://{HOST}:{server.port}{endpoint.path}"

        def http(connections: int, seconds: float) -> Measurement:
            return measure(self.wrk, url, script, connections, seconds, args.client_core)

        return http


def bench_system(
    system: System,
    ctx: Context,
    args: argparse.Namespace,
    concurrency: list[int],
    tools: Tools,
    run: Run,
) -> list[Row]:
    """Start one system, check its answers, load each endpoint, stop it."""
    server = system.build(ctx)
    (WORK_DIR / "logs").mkdir(parents=True, exist_ok=True)
    label = f"{ctx.scenario}-{system.name}"
    log = WORK_DIR / "logs" / f"{label}.log"
    print(f"\n== {system.name}: starting (log: {log.relative_to(BENCH_DIR.parent)})", flush=True)
    rows = []
    with running(server, args.server_core, log, args.start_timeout) as pid:
        if server.setup is not None:
            server.setup()
        loads = [
            (endpoint, tools.prepare(server, endpoint, ctx.reference, WORK_DIR / f"{label}-{n}"))
            for n, endpoint in enumerate(server.endpoints)
        ]
        checked = sum(e.read_prediction is not None for e in server.endpoints)
        print(f"   answers match the reference ({checked} of {len(loads)} endpoints checked)")
        with RssSampler(pid, args.client_core) as rss:
            ready_rss = rss.last
            for endpoint, load in loads:
                if args.warmup > 0:
                    load(max(concurrency), args.warmup)
                for connections in concurrency:
                    rss.mark()
                    m, others = measure_point(load, connections, args, pid)
                    rss.sample()
                    print(
                        f"   {endpoint.label:13} c={connections:<3} {m.rps:9,.0f} req/s  "
                        f"p50 {m.p50_ms:7.2f} ms  p99 {m.p99_ms:7.2f} ms  errors {m.errors}  "
                        f"RSS {rss.point_peak / 2**20:,.0f} MiB  "
                        f"client CPU {100 * m.client_cpu:.0f}%  others' CPU {100 * others:.1f}%",
                        flush=True,
                    )
                    rows.append(
                        Row(system.name, endpoint.label, connections, m, others, rss.point_peak)
                    )
        run.rss[system.name] = (ready_rss, rss.peak)
        tree = pinned_processes(pid)
    cores = set().union(*tree.values())
    if cores != {args.server_core}:
        raise ServerError(f"processes ran on cores {sorted(cores)}, not {args.server_core}")
    noun = "process" if len(tree) == 1 else "processes"
    run.pinning[system.name] = f"{len(tree)} {noun}, all pinned to core {args.server_core}"
    return rows


def run_systems(
    args: argparse.Namespace,
    scenario: str,
    chosen: list[System],
    tools: Tools,
    run: Run,
    admin_key: str,
) -> tuple[list[Row], dict[str, Path], Reference]:
    """Benchmark every chosen system on the scenario's model (demo or moderate)."""
    concurrency = args.concurrency or DEFAULT_CONCURRENCY[scenario]
    pythons = {"modelport": args.modelport_venv.absolute() / "bin" / "python"}
    for env in sorted({s.env_name for s in chosen if s.env_name}):
        pythons[env] = ensure_env(env)
    reference, model_dirs, failed_envs = prepare_models(chosen, pythons, scenario)
    endpoints = {"demo": 4, "moderate": 2}[scenario]  # ModelPort's; one for every other system
    points = sum(endpoints if s.name == "modelport" else 1 for s in chosen)
    print(
        f"reference prediction {reference.prediction!r}; about "
        f"{points * len(concurrency) * args.duration / 60:.1f} min of load to go",
        flush=True,
    )
    rows: list[Row] = []
    for system in chosen:
        env = system.env_name or "modelport"
        run.summaries[system.name] = system.summary
        run.versions[system.name] = package_versions(pythons[env], system.packages)
        if env in failed_envs:
            run.failures[system.name] = failed_envs[env]
            continue
        ctx = Context(
            python=pythons[env],
            work_dir=WORK_DIR,
            model_dir=model_dirs.get(env, WORK_DIR),
            reference=reference,
            admin_key=admin_key,
            scenario=scenario,
        )
        try:
            rows += bench_system(system, ctx, args, concurrency, tools, run)
        except (ServerError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
            run.failures[system.name] = str(exc).replace("\n", "\n  ")
            print(f"   FAILED: {exc}", file=sys.stderr, flush=True)
    return rows, pythons, reference


def new_run(args: argparse.Namespace, argv: list[str], wrk: str, chosen: list[System]) -> Run:
    return Run(
        command=shlex.join(["python", "bench/run.py", *argv]),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        duration_s=args.duration,
        warmup_s=args.warmup,
        server_core=args.server_core,
        client_core=args.client_core,
        wrk=wrk_version(wrk),
        peers={s.name for s in chosen if s.is_peer},
    )


def run_demo(args: argparse.Namespace, argv: list[str], tools: Tools, admin_key: str) -> bool:
    """The demo scenario: one-row predictions on the demo model; writes RESULTS.md."""
    started = time.monotonic()
    chosen = select(args, "demo")
    if not chosen:
        print("no system of the demo scenario selected", flush=True)
        return False
    print("\n=== demo scenario: the demo LinearRegression, one row per request", flush=True)
    run = new_run(args, argv, tools.wrk, chosen)
    rows, _, _ = run_systems(args, "demo", chosen, tools, run, admin_key)
    run.elapsed_s = time.monotonic() - started
    summary = [*table(rows), "", *noise_note(rows), *ceiling_verdict(rows)]
    print("\n" + "\n".join([*summary, *verdict(rows, run.peers)]))
    write(args.output, run, rows)
    (WORK_DIR / "results.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    print(f"\nwrote {args.output} ({run.elapsed_s / 60:.1f} min)")
    return bool(run.failures)


def run_moderate(args: argparse.Namespace, argv: list[str], tools: Tools, admin_key: str) -> bool:
    """The moderate scenario: the HGB classifier, the floor and the combined limit."""
    started = time.monotonic()
    chosen = select(args, "moderate")
    if not chosen:
        print("no system of the moderate scenario selected", flush=True)
        return False
    print("\n=== moderate scenario: HistGradientBoostingClassifier, one row per request")
    run = new_run(args, argv, tools.wrk, chosen)
    rows, pythons, _ = run_systems(args, "moderate", chosen, tools, run, admin_key)
    model_dir = WORK_DIR / "moderate-models" / "modelport"
    floor = moderate.measure_floor(pythons["modelport"], model_dir, args.server_core)
    run.elapsed_s = time.monotonic() - started
    print("\n" + "\n".join([*table(rows), "", *moderate.summary(rows, floor)]))
    moderate.write(args.moderate_output, run, rows, floor)
    (WORK_DIR / "results-moderate.json").write_text(
        json.dumps({"rows": [asdict(r) for r in rows], "floor": floor}, indent=2)
    )
    print(f"\nwrote {args.moderate_output} ({run.elapsed_s / 60:.1f} min)")
    return bool(run.failures)


def run_tensors(args: argparse.Namespace, argv: list[str], tools: Tools, admin_key: str) -> bool:
    """The tensor scenario: REST JSON, REST binary and gRPC; writes RESULTS-tensors.md."""
    started = time.monotonic()
    print("\n=== tensor scenario: V2 REST JSON, REST binary and gRPC", flush=True)
    if args.concurrency is None:
        args = argparse.Namespace(**{**vars(args), "concurrency": [1, 32]})
    rows, notes = tensors.run_scenario(args, measure_point, tools.wrk, admin_key, WORK_DIR)
    if not notes:
        print("no system of the tensor scenario selected", flush=True)
        return False
    notes["elapsed_s"] = time.monotonic() - started
    print("\n" + "\n".join(tensors_report.summary(rows)))
    run = new_run(args, argv, tools.wrk, [])
    tensors_report.write(args.tensors_output, run, rows, notes)
    (WORK_DIR / "results-tensors.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    print(f"\nwrote {args.tensors_output} ({notes['elapsed_s'] / 60:.1f} min)")
    return bool(notes["failures"])


def run_multimodel(args: argparse.Namespace, argv: list[str], tools: Tools, admin_key: str) -> bool:
    if args.skip_modelport or (args.only and not any("modelport".startswith(p) for p in args.only)):
        print("the multimodel scenario measures ModelPort alone: not selected", flush=True)
        return False
    print("\n=== multimodel scenario: 500 models, a 50-model budget, Zipf traffic", flush=True)
    run = new_run(args, argv, tools.wrk, [])
    return multimodel.run_scenario(args, run, tools.wrk, admin_key, WORK_DIR, measure_point)


def run_overload(args: argparse.Namespace, argv: list[str], tools: Tools, admin_key: str) -> bool:
    if args.skip_modelport or (args.only and not any("modelport".startswith(p) for p in args.only)):
        print("the overload scenario measures ModelPort alone: not selected", flush=True)
        return False
    print("\n=== overload scenario: ModelPort at 10x what it serves within its timeout")
    run = new_run(args, argv, tools.wrk, [])
    return overload.run_scenario(args, run, tools.wrk, admin_key, WORK_DIR)


RUNNERS = {
    "demo": run_demo,
    "moderate": run_moderate,
    "multimodel": run_multimodel,
    "overload": run_overload,
    "tensors": run_tensors,
}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    usable = os.sched_getaffinity(0)
    if not {args.server_core, args.client_core} <= usable or args.server_core == args.client_core:
        raise SystemExit(f"need two distinct usable cores; this process may use {sorted(usable)}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # the overload scenario opens thousands of connections (wrk inherits it)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    idle_others = wait_quiet(args.quiet_wait, {os.getpid()})
    if idle_others > NOISY:
        print(
            f"warning: other processes use {100 * idle_others:.0f}% of a core; the numbers "
            "will be noisy",
            file=sys.stderr,
            flush=True,
        )
    tools = Tools(ensure_wrk(), args)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    admin_key = secrets.token_urlsafe(32)
    scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)
    failed = False
    for scenario in scenarios:
        failed |= RUNNERS[scenario](args, argv, tools, admin_key)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
