"""Benchmark ModelPort side by side with its peers, print a table and write bench/RESULTS.md.

    python bench/run.py                    # every system, 10 s per point (about 5 minutes)
    python bench/run.py --only mlserver    # systems whose name starts with "mlserver"
    python bench/run.py --skip-peers       # ModelPort alone
    python bench/run.py --duration 3       # a quick look

Any Python 3.11 or 3.12 runs it: it needs only the standard library, creates the peers'
virtual environments under bench/.envs/ on first use, and serves ModelPort from the
repository's .venv (`make`), or from `--modelport-venv`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import tensors
import tensors_report
from cpuload import NOISY, others_share, snapshot, wait_quiet
from envs import BENCH_DIR, ensure_env, package_versions
from loadgen import Measurement, ensure_wrk, measure, write_script, wrk_version
from report import Row, Run, noise_note, table, verdict, write
from servers import ServerError, pinned_processes, running, verify
from systems import HOST, SYSTEMS, Context, System

WORK_DIR = BENCH_DIR / ".work"
MODEL_ENVS = ("flask", "mlserver")  # environments whose servers load model.joblib


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
        choices=("demo", "tensors", "all"),
        default="demo",
        help="demo: one-row predictions on the demo model (RESULTS.md); tensors: V2 REST "
        "JSON, REST binary and gRPC on FP32 tensors (RESULTS-tensors.md); all: both (demo)",
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
        default=[1, 32],
        help="open connections per point (1 32)",
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
        "--output",
        type=Path,
        default=BENCH_DIR / "RESULTS.md",
        help="where to write the report (bench/RESULTS.md)",
    )
    parser.add_argument(
        "--tensors-output",
        type=Path,
        default=BENCH_DIR / "RESULTS-tensors.md",
        help="where to write the tensor scenario's report (bench/RESULTS-tensors.md)",
    )
    parser.add_argument(
        "--grpc-clients",
        type=int,
        default=1,
        help="gRPC load generator processes, all on the client core (1)",
    )
    return parser.parse_args(argv)


def select(args: argparse.Namespace) -> list[System]:
    chosen = [s for s in SYSTEMS if not args.only or any(s.name.startswith(p) for p in args.only)]
    if args.skip_peers:
        chosen = [s for s in chosen if s.name == "modelport"]
    if args.skip_modelport:
        chosen = [s for s in chosen if s.name != "modelport"]
    if not chosen:
        raise SystemExit("no system selected")
    return chosen


def prepare_models(chosen: list[System], pythons: dict[str, Path]) -> tuple[list[float], float]:
    """Train the demo model in each environment that loads it; return the reference row."""
    envs = [e for e in MODEL_ENVS if any(s.env_name == e for s in chosen)]
    if not envs:  # only ModelPort and/or the ceiling: train once just for the reference
        envs = ["modelport"] if _imports(pythons["modelport"], "sklearn, joblib") else ["flask"]
        if envs == ["flask"] and "flask" not in pythons:
            pythons["flask"] = ensure_env("flask")
    for env in envs:
        python = pythons[env]
        train = [
            str(python),
            str(BENCH_DIR / "peers" / "train_demo.py"),
            str(WORK_DIR / "models" / env),
        ]
        if subprocess.run(train).returncode != 0:
            raise SystemExit(f"training the demo model with {python} failed")
    reference = json.loads((WORK_DIR / "models" / envs[0] / "reference.json").read_text())
    return reference["row"], reference["prediction"]


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


def bench_system(
    system: System, ctx: Context, expected: float, args: argparse.Namespace, wrk: str, run: Run
) -> list[Row]:
    """Start one system, check its answers, load each endpoint, stop it."""
    server = system.build(ctx)
    (WORK_DIR / "logs").mkdir(parents=True, exist_ok=True)
    log = WORK_DIR / "logs" / f"{system.name}.log"
    print(f"\n== {system.name}: starting (log: {log.relative_to(BENCH_DIR.parent)})", flush=True)
    rows = []
    with running(server, args.server_core, log, args.start_timeout) as pid:
        for endpoint in server.endpoints:
            verify(server, endpoint, expected)
        for number, endpoint in enumerate(server.endpoints):
            script = write_script(
                WORK_DIR / f"{system.name}-{number}.lua", endpoint.body, server.headers
            )
            url = f"http://{HOST}:{server.port}{endpoint.path}"

            def load(
                connections: int, seconds: float, url: str = url, script: Path = script
            ) -> Measurement:
                return measure(wrk, url, script, connections, seconds, args.client_core)

            if args.warmup > 0:
                load(max(args.concurrency), args.warmup)
            for connections in args.concurrency:
                m, others = measure_point(load, connections, args, pid)
                print(
                    f"   {endpoint.label:10} c={connections:<3} {m.rps:9,.0f} req/s  "
                    f"p50 {m.p50_ms:7.2f} ms  p99 {m.p99_ms:7.2f} ms  errors {m.errors}  "
                    f"others' CPU {100 * others:.1f}%",
                    flush=True,
                )
                rows.append(Row(system.name, endpoint.label, connections, m, others))
        tree = pinned_processes(pid)
    cores = set().union(*tree.values())
    if cores != {args.server_core}:
        raise ServerError(f"processes ran on cores {sorted(cores)}, not {args.server_core}")
    noun = "process" if len(tree) == 1 else "processes"
    run.pinning[system.name] = f"{len(tree)} {noun}, all pinned to core {args.server_core}"
    return rows


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    usable = os.sched_getaffinity(0)
    if not {args.server_core, args.client_core} <= usable or args.server_core == args.client_core:
        raise SystemExit(f"need two distinct usable cores; this process may use {sorted(usable)}")
    chosen = select(args) if args.scenario in ("demo", "all") else []
    started = time.monotonic()
    idle_others = wait_quiet(args.quiet_wait, {os.getpid()})
    if idle_others > NOISY:
        print(
            f"warning: other processes use {100 * idle_others:.0f}% of a core; the numbers "
            "will be noisy",
            file=sys.stderr,
            flush=True,
        )
    wrk = ensure_wrk()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    run = Run(
        command=shlex.join(["python", "bench/run.py", *argv]),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        duration_s=args.duration,
        warmup_s=args.warmup,
        server_core=args.server_core,
        client_core=args.client_core,
        wrk=wrk_version(wrk),
        peers={s.name for s in chosen if s.is_peer},
    )
    admin_key = secrets.token_urlsafe(32)
    failed = False
    if chosen:
        failed |= run_demo(args, chosen, wrk, run, admin_key, started)
    if args.scenario in ("tensors", "all"):
        failed |= run_tensors(args, wrk, run, admin_key)
    return 1 if failed else 0


def run_demo(
    args: argparse.Namespace,
    chosen: list[System],
    wrk: str,
    run: Run,
    admin_key: str,
    started: float,
) -> bool:
    """The demo scenario: one-row predictions on the demo model; writes RESULTS.md."""
    pythons = {"modelport": args.modelport_venv.absolute() / "bin" / "python"}
    for env in sorted({s.env_name for s in chosen if s.env_name}):
        pythons[env] = ensure_env(env)
    row, expected = prepare_models(chosen, pythons)
    points = sum(2 if s.name == "modelport" else 1 for s in chosen) * len(args.concurrency)
    print(
        f"reference prediction {expected!r}; about {points * args.duration / 60:.1f} min "
        "of load to go",
        flush=True,
    )
    rows: list[Row] = []
    for system in chosen:
        env = system.env_name or "modelport"
        run.summaries[system.name] = system.summary
        run.versions[system.name] = package_versions(pythons[env], system.packages)
        ctx = Context(
            python=pythons[env],
            work_dir=WORK_DIR,
            row=row,
            admin_key=admin_key,
            model_dir=WORK_DIR / "models" / env,
        )
        try:
            rows += bench_system(system, ctx, expected, args, wrk, run)
        except (ServerError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
            run.failures[system.name] = str(exc).replace("\n", "\n  ")
            print(f"   FAILED: {exc}", file=sys.stderr, flush=True)
    run.elapsed_s = time.monotonic() - started
    summary = [*table(rows), "", *noise_note(rows), *verdict(rows, run.peers)]
    print("\n" + "\n".join(summary))
    write(args.output, run, rows)
    (WORK_DIR / "results.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    print(f"\nwrote {args.output} ({run.elapsed_s / 60:.1f} min)")
    return bool(run.failures)


def run_tensors(args: argparse.Namespace, wrk: str, run: Run, admin_key: str) -> bool:
    """The tensor scenario: REST JSON, REST binary and gRPC; writes RESULTS-tensors.md."""
    started = time.monotonic()
    print("\n=== tensor scenario: V2 REST JSON, REST binary and gRPC", flush=True)
    rows, notes = tensors.run_scenario(args, measure_point, wrk, admin_key, WORK_DIR)
    if not notes:
        print("no system of the tensor scenario selected", flush=True)
        return False
    notes["elapsed_s"] = time.monotonic() - started
    print("\n" + "\n".join(tensors_report.summary(rows)))
    tensors_report.write(args.tensors_output, run, rows, notes)
    (WORK_DIR / "results-tensors.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    print(f"\nwrote {args.tensors_output} ({notes['elapsed_s'] / 60:.1f} min)")
    return bool(notes["failures"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
