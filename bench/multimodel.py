"""The multimodel scenario: 500 models, a memory budget for 50, Zipf-distributed traffic.

ModelPort alone. `peers/train_many.py` trains N small, distinct LinearRegressions (skops),
pushed through `POST /api/v1/models/NAME/versions` by a few threads. A first start (no
budget) takes the pushes and shows how much one loaded model counts for against the budget
(`GET /api/v1/serving`, else the artifact's size); the server is then restarted on the same
data dir with `--model-memory-limit` set to hold BUDGET of them.

wrk sends one-row `POST /models/NAME/predict` requests, each to the next path of a
precomputed list: NAME drawn from a Zipf(s) law over the N models (rank k with probability
proportional to 1/k^s, ranks shuffled over the names with seed 42). After the warm-up and
after each point, ModelPort's Prometheus endpoint (`GET /metrics`) gives the loads,
evictions, loaded models and load time (else `GET /api/v1/serving` gives loads and
evictions): the hit rate is 1 - loads / requests over the point, loads/s the loads over its
length. The same sequence replayed through an exact LRU of BUDGET models gives the hit rate
an ideal cache would reach.
"""

from __future__ import annotations

import argparse
import bisect
import json
import random
import subprocess
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from envs import BENCH_DIR, package_versions
from loadgen import Measurement, measure, write_script
from memory import MIB, RssSampler
from report import Run, finish, noise_note, preamble
from servers import (
    ServerError,
    get_text,
    request_json,
    running,
    upload_skops,
    verify,
)
from systems import HOST, Endpoint, Reference, Server, free_port, modelport_command

SEQUENCE_LENGTH = 100_000
RSS_GROWTH_LIMIT = 0.10  # "RSS bounded": the peak at most this much above the warmed-up RSS
METRICS = {
    "loads": "modelport_model_loads_total",
    "evictions": "modelport_model_evictions_total",
    "loaded": "modelport_models_loaded",
    "load_seconds_sum": "modelport_model_load_seconds_sum",
    "load_seconds_count": "modelport_model_load_seconds_count",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("multimodel scenario")
    group.add_argument("--models", type=int, default=500, help="models pushed (500)")
    group.add_argument(
        "--budget-models", type=int, default=50, help="models the memory budget holds (50)"
    )
    group.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent s (1.1)")
    group.add_argument("--push-threads", type=int, default=4, help="parallel pushes (4)")


def model_name(n: int) -> str:
    return f"m{n:03d}"  # as peers/train_many.py names them


def zipf_sequence(count: int, s: float, length: int, seed: int = 42) -> list[int]:
    """`length` model numbers, rank k drawn with probability proportional to 1/k^s; ranks
    are shuffled over the model numbers so the popular models are spread out."""
    rng = random.Random(seed)
    weights = [1.0 / (k**s) for k in range(1, count + 1)]
    cumulative, total = [], 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    models = list(range(count))
    rng.shuffle(models)
    return [models[bisect.bisect_left(cumulative, rng.random() * total)] for _ in range(length)]


def lru_hit_rate(sequence: list[int], capacity: int) -> float:
    """The hit rate of an exact LRU cache of `capacity` models on `sequence` (its first
    pass excluded: the cache starts full, as after the warm-up)."""
    cache: OrderedDict[int, None] = OrderedDict()
    hits = counted = 0
    for n, model in enumerate(sequence * 2):
        hit = model in cache
        if hit:
            cache.move_to_end(model)
        else:
            cache[model] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
        if n >= len(sequence):
            counted += 1
            hits += hit
    return hits / counted if counted else 0.0


def parse_metrics(text: str) -> dict[str, float]:
    """The values of METRICS in a Prometheus text exposition (summed over labels)."""
    wanted = {v: k for k, v in METRICS.items()}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in wanted:
            try:
                value = float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                continue
            out[wanted[name]] = out.get(wanted[name], 0.0) + value
    return out


def read_counters(port: int, headers: dict[str, str]) -> tuple[dict[str, float], str]:
    """Loads, evictions (and more) from /metrics, else /api/v1/serving; and the source."""
    text = get_text(port, "/metrics", headers)
    if text is not None:
        values = parse_metrics(text)
        if "loads" in values:
            return values, "GET /metrics"
    text = get_text(port, "/api/v1/serving", headers)
    if text is not None:
        try:
            state = json.loads(text)
            return {
                "loads": float(state["loads"]),
                "evictions": float(state["evictions"]),
                "loaded": float(len(state.get("loaded", []))),
            }, "GET /api/v1/serving"
        except (ValueError, KeyError, TypeError):
            pass
    return {}, "none (neither /metrics nor /api/v1/serving answered)"


def footprint(port: int, headers: dict[str, str], artifacts: list[Path]) -> tuple[int, str]:
    """Bytes one loaded model counts for against the budget, and how it was found."""
    text = get_text(port, "/api/v1/serving", headers)
    if text is not None:
        try:
            sizes = [int(v["memory_bytes"]) for v in json.loads(text)["loaded"]]
            if sizes and max(sizes) > 0:
                return max(sizes), "`memory_bytes` of the loaded models in GET /api/v1/serving"
        except (ValueError, KeyError, TypeError):
            pass
    return max(p.stat().st_size for p in artifacts), "the largest artifact's size"


def push_all(
    port: int, headers: dict[str, str], models_dir: Path, count: int, threads: int
) -> float:
    """Push every model with `threads` parallel uploads; return the seconds it took."""
    started = time.monotonic()

    def push(n: int) -> None:
        upload_skops(port, model_name(n), models_dir / f"{model_name(n)}.skops", headers)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(push, range(count)))
    return time.monotonic() - started


def run_scenario(
    args: argparse.Namespace,
    run: Run,
    wrk: str,
    admin_key: str,
    work_dir: Path,
    measure_point: Callable[..., tuple[Measurement, float]],
) -> bool:
    """Run the scenario and write its report; return True when it failed."""
    started = time.monotonic()
    python = args.modelport_venv.absolute() / "bin" / "python"
    models_dir = work_dir / "multimodel-models"
    train = [str(python), str(BENCH_DIR / "peers" / "train_many.py"), str(models_dir)]
    if subprocess.run([*train, str(args.models)]).returncode != 0:
        raise SystemExit("training the multimodel scenario's models failed")
    reference = json.loads((models_dir / "reference.json").read_text())
    notes: dict[str, Any] = {"models": args.models, "budget_models": args.budget_models}
    notes["versions"] = package_versions(python, ("modelport", "scikit-learn", "skops"))
    headers = {"Authorization": f"Bearer {admin_key}"}
    env = {"MODELPORT_ADMIN_KEY": admin_key}
    data_dir = work_dir / "multimodel-data"
    logs = work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    failure = None
    rows: list[dict[str, Any]] = []
    try:
        # 1. Take the pushes with no budget; see what one loaded model counts for.
        port = free_port()
        argv = modelport_command(python, data_dir, port, 0, "--no-demo")
        server = Server(argv, work_dir, port, (), "/v2/health/ready", env, headers)
        print(f"\n== pushing {args.models} models ({args.push_threads} threads)", flush=True)
        with running(server, args.server_core, logs / "multimodel-push.log", args.start_timeout):
            notes["push_s"] = push_all(port, headers, models_dir, args.models, args.push_threads)
            for n in range(3):
                check(server, n, reference)
            size, how = footprint(port, headers, sorted(models_dir.glob("*.skops")))
        notes["push_rate"] = args.models / notes["push_s"]
        budget = size * args.budget_models
        notes.update(footprint=size, footprint_from=how, budget=budget)
        print(
            f"   pushed in {notes['push_s']:.1f} s ({notes['push_rate']:.0f}/s); one model "
            f"counts for {size:,} bytes ({how}); budget {budget:,} bytes",
            flush=True,
        )
        # 2. The same registry under the budget, loaded with the Zipf mix.
        port = free_port()
        argv = modelport_command(
            python,
            data_dir,
            port,
            0,
            "--no-demo",
            "--model-memory-limit",
            str(budget),
            fresh=False,
        )
        server = Server(argv, work_dir, port, (), "/v2/health/ready", env, headers)
        rows = load_phase(args, server, reference, wrk, work_dir, measure_point, notes, logs)
    except (ServerError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        failure = str(exc).replace("\n", "\n  ")
        print(f"   FAILED: {exc}", flush=True)
    notes["elapsed_s"] = time.monotonic() - started
    lines = summary(rows, notes)
    print("\n" + "\n".join(lines))
    write(args.multimodel_output, run, args, rows, notes, failure)
    (work_dir / "results-multimodel.json").write_text(
        json.dumps({"rows": rows, "notes": notes}, indent=2, default=str)
    )
    print(f"\nwrote {args.multimodel_output} ({notes['elapsed_s'] / 60:.1f} min)")
    return failure is not None


def check(server: Server, n: int, reference: dict[str, Any]) -> None:
    name = model_name(n)
    body = json.dumps({"features": [reference["row"]]}).encode()
    endpoint = Endpoint(name, f"/models/{name}/predict", body, lambda a: a["prediction"][0])
    verify(server, endpoint, Reference(reference["row"], reference["predictions"][name]))


def load_phase(
    args: argparse.Namespace,
    server: Server,
    reference: dict[str, Any],
    wrk: str,
    work_dir: Path,
    measure_point: Callable[..., tuple[Measurement, float]],
    notes: dict[str, Any],
    logs: Path,
) -> list[dict[str, Any]]:
    sequence = zipf_sequence(args.models, args.zipf, SEQUENCE_LENGTH)
    notes["distinct_in_sequence"] = len(set(sequence))
    top = sorted((sequence.count(m) for m in set(sequence)), reverse=True)
    notes["top_budget_share"] = sum(top[: args.budget_models]) / len(sequence)
    notes["lru_hit_rate"] = lru_hit_rate(sequence, args.budget_models)
    paths_file = work_dir / "multimodel-paths.txt"
    paths_file.write_text("".join(f"/models/{model_name(n)}/predict\n" for n in sequence))
    body = json.dumps({"features": [reference["row"]]}).encode()
    script = write_script(work_dir / "multimodel.lua", body, server.headers, paths_file=paths_file)
    url = f"http://{HOST}:{server.port}/models/{model_name(0)}/predict"

    def load(connections: int, seconds: float) -> Measurement:
        return measure(wrk, url, script, connections, seconds, args.client_core)

    concurrency = args.concurrency or [32]
    rows = []
    print("\n== ModelPort under the budget: Zipf traffic", flush=True)
    with running(server, args.server_core, logs / "multimodel.log", args.start_timeout) as pid:
        for n in (0, 1, args.models - 1):
            check(server, n, reference)
        with RssSampler(pid, args.client_core) as rss:
            notes["rss_ready"] = rss.sample()
            if args.warmup > 0:
                load(max(concurrency), args.warmup)
            notes["rss_warm"] = rss.mark()
            notes["rss_peak_since_warm"] = notes["rss_warm"]
            for connections in concurrency:
                before, source = read_counters(server.port, server.headers)
                rss.mark()
                m, others = measure_point(load, connections, args, pid)
                after, _ = read_counters(server.port, server.headers)
                rss.sample()
                notes["counters_from"] = source
                notes["rss_peak_since_warm"] = max(notes["rss_peak_since_warm"], rss.point_peak)
                row = point_row(connections, m, others, rss.point_peak, before, after)
                rows.append(row)
                print_row(row)
            notes["rss_end"] = rss.sample()
            notes["rss_peak"] = rss.peak
        state = request_json(server.port, "/api/v1/serving", None, server.headers)
        if isinstance(state, dict):
            notes["memory_used_end"] = state.get("memory_used_bytes")
            notes["loaded_end"] = len(state.get("loaded", []))
    return rows


def point_row(
    connections: int,
    m: Measurement,
    others: float,
    rss_peak: int,
    before: dict[str, float],
    after: dict[str, float],
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "concurrency": connections,
        "rps": m.rps,
        "requests": m.requests,
        "seconds": m.seconds,
        "p50_ms": m.p50_ms,
        "p99_ms": m.p99_ms,
        "max_ms": m.max_ms,
        "errors": m.errors,
        "client_cpu": m.client_cpu,
        "others_cpu": others,
        "rss_peak": rss_peak,
    }
    if "loads" in before and "loads" in after:
        loads = after["loads"] - before["loads"]
        row["loads"] = loads
        row["loads_per_s"] = loads / m.seconds if m.seconds else 0.0
        row["hit_rate"] = 1.0 - loads / m.requests if m.requests else 0.0
        row["evictions"] = after.get("evictions", 0.0) - before.get("evictions", 0.0)
        row["loaded"] = after.get("loaded")
        count = after.get("load_seconds_count", 0.0) - before.get("load_seconds_count", 0.0)
        total = after.get("load_seconds_sum", 0.0) - before.get("load_seconds_sum", 0.0)
        if count > 0:
            row["load_ms_mean"] = 1000 * total / count
    return row


def print_row(row: dict[str, Any]) -> None:
    hits = f"hit rate {100 * row['hit_rate']:.1f}%  " if "hit_rate" in row else ""
    loads = f"loads/s {row['loads_per_s']:.0f}  " if "loads_per_s" in row else ""
    print(
        f"   c={row['concurrency']:<3} {row['rps']:9,.0f} req/s  p50 {row['p50_ms']:7.2f} ms  "
        f"p99 {row['p99_ms']:7.2f} ms  errors {row['errors']}  {hits}{loads}"
        f"RSS {row['rss_peak'] / MIB:,.0f} MiB  others' CPU {100 * row['others_cpu']:.1f}%",
        flush=True,
    )


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "-"


def table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| conc. | req/s | p50 ms | p99 ms | max ms | errors | hit rate | loads/s | evictions "
        "| mean load ms | models loaded | peak RSS MiB | wrk CPU | others' CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cache = ["-"] * 5
        if "loads_per_s" in r:
            cache = [
                _pct(r["hit_rate"]),
                f"{r['loads_per_s']:,.0f}",
                f"{r['evictions']:,.0f}",
                f"{r['load_ms_mean']:.2f}" if "load_ms_mean" in r else "-",
                f"{r['loaded']:.0f}" if r.get("loaded") is not None else "-",
            ]
        cells = [
            str(r["concurrency"]),
            f"{r['rps']:,.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['max_ms']:.1f}",
            str(r["errors"]),
            *cache,
            f"{r['rss_peak'] / MIB:,.0f}",
            f"{100 * r['client_cpu']:.0f}%",
            f"{100 * r['others_cpu']:.1f}%",
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out


def rss_verdict(notes: dict[str, Any]) -> list[str]:
    warm, peak = notes.get("rss_warm"), notes.get("rss_peak_since_warm")
    if not warm or not peak:
        return ["- RSS: not measured"]
    growth = peak / warm - 1
    met = growth < RSS_GROWTH_LIMIT
    return [
        f"- RSS bounded: **{'met' if met else 'NOT met'}** — {warm / MIB:,.0f} MiB after the "
        f"warm-up, at most {peak / MIB:,.0f} MiB while measured ({100 * growth:+.1f}%, target "
        f"< {100 * RSS_GROWTH_LIMIT:.0f}%); {notes.get('rss_ready', 0) / MIB:,.0f} MiB when "
        f"ready, {notes.get('rss_end', 0) / MIB:,.0f} MiB at the end"
    ]


def summary(rows: list[dict[str, Any]], notes: dict[str, Any]) -> list[str]:
    if not rows:
        return ["no point measured"]
    lines = table(rows)
    lines += ["", *rss_verdict(notes)]
    if "lru_hit_rate" in notes:
        lines.append(
            f"- an exact LRU of {notes['budget_models']} models would hit "
            f"{100 * notes['lru_hit_rate']:.1f}% of this sequence; the "
            f"{notes['budget_models']} most requested models take "
            f"{100 * notes['top_budget_share']:.1f}% of it"
        )
    return lines


def write(
    path: Path,
    run: Run,
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    notes: dict[str, Any],
    failure: str | None,
) -> None:
    versions = ", ".join(f"{k} {v}" for k, v in notes.get("versions", {}).items())
    noise = noise_note(
        [argparse.Namespace(**r) for r in rows],
        lambda r: f"concurrency {r.concurrency}",
    )
    out = [
        *preamble(
            "ModelPort benchmark: many models, a memory budget",
            f"Produced by `{run.command}` on {run.date} in {notes.get('elapsed_s', 0) / 60:.1f} "
            "minutes. The demo scenario is in [RESULTS.md](RESULTS.md).",
        ),
        f"{args.models} distinct LinearRegressions (`make_regression(n_samples=200, "
        "n_features=10, noise=10.0, random_state=N)`, `peers/train_many.py`) pushed as skops "
        f"through `POST /api/v1/models/mNNN/versions`, {args.push_threads} uploads at a time. "
        f"A first start without a budget takes the pushes; the server is then restarted on "
        f"the same data dir with `--model-memory-limit` set to {args.budget_models} times "
        "what one loaded model counts for "
        f"({notes.get('footprint', 0):,} bytes, from {notes.get('footprint_from', '-')}): "
        f"{notes.get('budget', 0):,} bytes.",
        "",
        f"Requests: one-row `POST /models/mNNN/predict`, the model drawn per request from a "
        f"Zipf law (s = {args.zipf:g}) over the {args.models} models: a precomputed sequence "
        f"of {SEQUENCE_LENGTH:,} paths (seed 42; {notes.get('distinct_in_sequence', '-')} "
        "distinct models in it) that wrk's Lua script walks through in turn. ModelPort is "
        f"pinned to core {run.server_core}, {run.wrk} (one thread) to core "
        f"{run.client_core}. The server is warmed up for {run.warmup_s:g} s with the same "
        f"mix, then measured for {run.duration_s:g} s per concurrency. The loads, evictions "
        f"and load times over each point come from {notes.get('counters_from', '-')} read "
        "before and after it: hit rate = 1 - loads / requests. RSS sums the server's process "
        "tree, sampled every 0.2 s.",
        "",
        "## Results",
        "",
        *summary(rows, notes),
        "",
        *noise,
        f"Pushing the {args.models} models took {notes.get('push_s', 0):.1f} s "
        f"({notes.get('push_rate', 0):.0f} models/s). At the end "
        f"{notes.get('loaded_end', '-')} versions were loaded, counting for "
        f"{notes.get('memory_used_end', '-')} bytes against the budget.",
    ]
    finish(path, out, versions, failure)
