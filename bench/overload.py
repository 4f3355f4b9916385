"""The overload scenario: ModelPort past its capacity, with a short request timeout.

ModelPort alone, serving the moderate scenario's HistGradientBoostingClassifier (a predict
slow enough to queue behind), started with `MODELPORT_REQUEST_TIMEOUT_S` set short. First its
capacity: req/s at concurrency 32. A crowd point then opens FACTOR times those connections.
The concurrency it can serve within the timeout is what it completes in one timeout
(capacity x timeout, Little's law); the overload (flood) point opens FACTOR times that many
connections (capped by --overload-max-connections) for the point's duration.

Reported: the longest latency any answered request saw against the timeout, the share of 503
answers, the req/s still answered 200, RSS when the overload starts and when it ends (and its
peak), and the latency of `GET /v2/health/live`, probed every 0.1 s on a new connection
during the overload.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from envs import BENCH_DIR, package_versions
from loadgen import Measurement, measure, write_script
from memory import MIB, RssSampler
from report import Run, finish, preamble
from servers import ServerError, get_text, running, upload_skops, verify, wait_model_ready
from systems import (
    HOST,
    MODERATE_MODEL,
    Context,
    Reference,
    Server,
    build_asgi_ceiling,
    free_port,
    modelport_command,
    predict_endpoint,
)

CAPACITY_CONCURRENCY = 32
RSS_GROWTH_LIMIT = 0.10
PROBE_INTERVAL_S = 0.1
PROBE_LIMIT_S = 1.0  # the liveness probe must answer within this during the overload


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("overload scenario")
    group.add_argument(
        "--overload-timeout",
        type=float,
        default=0.1,
        help="MODELPORT_REQUEST_TIMEOUT_S for the overload scenario, seconds (0.1)",
    )
    group.add_argument(
        "--overload-factor",
        type=float,
        default=10.0,
        help="times the concurrency ModelPort serves within the timeout (10)",
    )
    group.add_argument(
        "--overload-max-connections",
        type=int,
        default=4000,
        help="at most this many connections at the overload point (4000)",
    )
    group.add_argument(
        "--overload-slack",
        type=float,
        default=0.05,
        help="seconds beyond the timeout a request may take (parsing, answering) (0.05)",
    )


class Prober:
    """GET /v2/health/live every PROBE_INTERVAL_S on a new connection, on its own thread
    (pinned to the client core), recording each latency or failure."""

    def __init__(self, port: int, core: int) -> None:
        self.port = port
        self.core = core
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-probe", daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {self.core})  # this thread only
        while not self._stop.wait(PROBE_INTERVAL_S):
            started = time.perf_counter()
            connection = http.client.HTTPConnection(HOST, self.port, timeout=5.0)
            try:
                connection.request("GET", "/v2/health/live")
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    self.latencies.append(time.perf_counter() - started)
                else:
                    self.failures.append(f"HTTP {response.status}")
            except OSError as exc:
                self.failures.append(type(exc).__name__)
            finally:
                connection.close()


def run_scenario(
    args: argparse.Namespace, run: Run, wrk: str, admin_key: str, work_dir: Path
) -> bool:
    """Run the scenario and write its report; return True when it failed."""
    started = time.monotonic()
    python = args.modelport_venv.absolute() / "bin" / "python"
    model_dir = work_dir / "overload-model"
    train = [str(python), str(BENCH_DIR / "peers" / "train_moderate.py"), str(model_dir)]
    if subprocess.run([*train, "--skops"]).returncode != 0:
        raise SystemExit("training the overload scenario's model failed")
    reference = Reference.read(model_dir / "reference.json")
    notes: dict[str, Any] = {
        "timeout_s": args.overload_timeout,
        "versions": package_versions(python, ("modelport", "scikit-learn", "uvicorn")),
    }
    failure = None
    try:
        measure_overload(args, python, model_dir, reference, wrk, admin_key, work_dir, notes)
    except (ServerError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        failure = str(exc).replace("\n", "\n  ")
        print(f"   FAILED: {exc}", flush=True)
    notes["elapsed_s"] = time.monotonic() - started
    print("\n" + "\n".join(verdicts(args, notes)))
    write(args.overload_output, run, args, notes, failure)
    (work_dir / "results-overload.json").write_text(json.dumps(notes, indent=2, default=str))
    print(f"\nwrote {args.overload_output} ({notes['elapsed_s'] / 60:.1f} min)")
    return failure is not None


def measure_overload(
    args: argparse.Namespace,
    python: Path,
    model_dir: Path,
    reference: Reference,
    wrk: str,
    admin_key: str,
    work_dir: Path,
    notes: dict[str, Any],
) -> None:
    port = free_port()
    argv = modelport_command(python, work_dir / "overload-data", port, 0, "--no-demo")
    headers = {"Authorization": f"Bearer {admin_key}"}
    env = {
        "MODELPORT_ADMIN_KEY": admin_key,
        "MODELPORT_REQUEST_TIMEOUT_S": f"{args.overload_timeout:g}",
    }
    endpoint = predict_endpoint(reference.row, f"/models/{MODERATE_MODEL}/predict")
    server = Server(argv, work_dir, port, (endpoint,), "/v2/health/ready", env, headers)
    log = work_dir / "logs" / "overload.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://{HOST}:{port}{endpoint.path}"
    print(f"\n== ModelPort, request timeout {args.overload_timeout:g} s", flush=True)
    with running(server, args.server_core, log, args.start_timeout) as pid:
        upload_skops(port, MODERATE_MODEL, model_dir / "model.skops", headers)
        wait_model_ready(port, MODERATE_MODEL, headers)
        verify(server, endpoint, reference)
        script = write_script(work_dir / "overload.lua", endpoint.body, headers, count_status=503)
        wrk_timeout = max(5.0, 20 * args.overload_timeout)

        def load(connections: int, seconds: float) -> Measurement:
            return measure(wrk, url, script, connections, seconds, args.client_core, wrk_timeout)

        with RssSampler(pid, args.client_core) as rss:
            notes["rss_ready"] = rss.sample()
            if args.warmup > 0:
                load(CAPACITY_CONCURRENCY, args.warmup)
            rss.mark()
            capacity = load(CAPACITY_CONCURRENCY, args.duration)
            notes["capacity"] = point(capacity, CAPACITY_CONCURRENCY, rss.point_peak)
            served_ok = capacity.requests - capacity.errors
            rps = served_ok / capacity.seconds if capacity.seconds else 0.0
            within = max(1.0, rps * args.overload_timeout)
            wanted = math.ceil(args.overload_factor * within)
            connections = min(wanted, args.overload_max_connections)
            notes.update(within_timeout=within, wanted_connections=wanted, connections=connections)
            print(
                f"   capacity c={CAPACITY_CONCURRENCY}: {capacity.rps:,.0f} req/s, p99 "
                f"{capacity.p99_ms:.1f} ms, {capacity.errors} errors: about {within:.0f} "
                f"requests complete within {args.overload_timeout:g} s; overload at "
                f"{connections} connections",
                flush=True,
            )
            crowd_connections = math.ceil(args.overload_factor * CAPACITY_CONCURRENCY)
            crowd = load(crowd_connections, args.duration)
            notes["crowd"] = point(crowd, crowd_connections, rss.point_peak)
            notes["crowd_longest"] = longest_in_server(port, headers)
            print(
                f"   {crowd_connections} connections: {crowd.rps:,.0f} answers/s, max latency "
                f"{crowd.max_ms:.0f} ms",
                flush=True,
            )
            notes["rss_start"] = rss.mark()
            with Prober(port, args.client_core) as prober:
                overloaded = load(connections, args.duration)
            notes["rss_end"] = rss.sample()
            notes["overload"] = point(overloaded, connections, rss.point_peak)
            notes["server_longest"] = longest_in_server(port, headers)
            time.sleep(2.0)
            notes["rss_after_2s"] = rss.sample()
            notes["rss_peak"] = rss.peak
        notes["probe"] = probe_summary(prober)
        context = Context(python, work_dir, model_dir, reference, admin_key, "moderate")
        measure_ceiling_flood(args, context, wrk, script, connections, notes)
        o = notes["overload"]
        print(
            f"   overload c={connections}: {o['rps']:,.0f} answers/s, "
            f"{100 * o['share_503']:.1f}% 503, max latency {o['max_ms']:.0f} ms, other errors "
            f"{o['other_errors']}, probe max {notes['probe'].get('max_ms', 0):.1f} ms",
            flush=True,
        )


def longest_in_server(port: int, headers: dict[str, str]) -> dict[str, float]:
    """ModelPort's own longest time from first reading a request's bytes to answering it,
    per outcome (`modelport_request_longest_seconds` in /metrics; since the model loaded,
    so the earlier points count too): what the server controls, without the time a
    request spent unread in the kernel."""
    longest = {}
    for line in (get_text(port, "/metrics", headers) or "").splitlines():
        if line.startswith("modelport_request_longest_seconds{") and MODERATE_MODEL in line:
            outcome = line.split('outcome="')[1].split('"')[0]
            longest[outcome] = float(line.rsplit(" ", 1)[1])
    return longest


def measure_ceiling_flood(
    args: argparse.Namespace,
    context: Context,
    wrk: str,
    script: Path,
    connections: int,
    notes: dict[str, Any],
) -> None:
    """The raw ASGI app (a constant answer, no model, no parsing) under the same number of
    connections, probed the same way, after ModelPort has stopped: what any Python server
    on this core does with that many connections."""
    server = build_asgi_ceiling(context)
    log = context.work_dir / "logs" / "overload-asgi-ceiling.log"
    print(f"\n== the raw ASGI app under the same {connections} connections", flush=True)
    wrk_timeout = max(5.0, 20 * args.overload_timeout)
    with (
        running(server, args.server_core, log, args.start_timeout) as pid,
        RssSampler(pid, args.client_core) as rss,
    ):
        rss.mark()
        with Prober(server.port, args.client_core) as prober:
            flood = measure(
                wrk,
                f"http://{HOST}:{server.port}{server.endpoints[0].path}",
                script,
                connections,
                args.duration,
                args.client_core,
                wrk_timeout,
            )
        notes["ceiling_flood"] = point(flood, connections, rss.point_peak)
    notes["ceiling_probe"] = probe_summary(prober)
    c = notes["ceiling_flood"]
    print(
        f"   asgi-ceiling c={connections}: {c['rps']:,.0f} answers/s, p50 {c['p50_ms']:.0f} ms, "
        f"max {c['max_ms']:.0f} ms, probe max {notes['ceiling_probe'].get('max_ms', 0):.1f} ms",
        flush=True,
    )


def point(m: Measurement, connections: int, rss_peak: int) -> dict[str, Any]:
    non_503 = m.non_2xx - m.counted
    return {
        "connections": connections,
        "requests": m.requests,
        "seconds": m.seconds,
        "rps": m.rps,
        "ok_rps": (m.requests - m.errors) / m.seconds if m.seconds else 0.0,
        "p50_ms": m.p50_ms,
        "p99_ms": m.p99_ms,
        "max_ms": m.max_ms,
        "answers_503": m.counted,
        "share_503": m.counted / m.requests if m.requests else 0.0,
        "other_errors": non_503 + m.socket_errors,
        "socket_errors": m.socket_errors,
        "client_cpu": m.client_cpu,
        "rss_peak": rss_peak,
    }


def probe_summary(prober: Prober) -> dict[str, Any]:
    latencies = sorted(prober.latencies)
    if not latencies:
        return {"answered": 0, "failures": prober.failures}
    return {
        "answered": len(latencies),
        "failures": prober.failures,
        "p50_ms": 1000 * statistics.median(latencies),
        "max_ms": 1000 * latencies[-1],
    }


def verdicts(args: argparse.Namespace, notes: dict[str, Any]) -> list[str]:
    o = notes.get("overload")
    if o is None:
        return ["Not evaluated: the overload point was not measured."]
    timeout_ms = 1000 * args.overload_timeout
    limit_ms = timeout_ms + 1000 * args.overload_slack
    lines = []
    crowd = notes.get("crowd")
    if crowd is not None:
        met = crowd["max_ms"] <= limit_ms and crowd["socket_errors"] == 0
        longest = notes.get("crowd_longest", {})
        lines.append(
            f"- no request waits longer than its timeout, at {args.overload_factor:g}x the "
            f"capacity point's concurrency ({crowd['connections']} connections): "
            f"**{'met' if met else 'NOT met'}** — the longest answered request took "
            f"{crowd['max_ms']:.1f} ms at the client against a {timeout_ms:g} ms timeout "
            f"(limit {limit_ms:g} ms with {1000 * args.overload_slack:g} ms for the network "
            f"and answering); p99 {crowd['p99_ms']:.1f} ms; "
            f"{100 * crowd['share_503']:.1f}% 503; {crowd['socket_errors']} unanswered. "
            "Inside the server (from first reading a request's bytes to answering it, "
            "`modelport_request_longest_seconds`, since the model loaded): predictions "
            f"{1000 * longest.get('success', 0.0):.1f} ms, refusals "
            f"{1000 * longest.get('failure', 0.0):.1f} ms"
        )
    met = o["max_ms"] <= limit_ms and o["socket_errors"] == 0
    lines.append(
        f"- no request waits longer than its timeout, at the flood point ({o['connections']} "
        f"connections): **{'met' if met else 'NOT met'}** at the client — the longest "
        f"answered request took {o['max_ms']:.1f} ms, p50 {o['p50_ms']:.1f} ms, p99 "
        f"{o['p99_ms']:.1f} ms; {o['socket_errors']} requests unanswered (socket errors or "
        "client timeouts)"
    )
    longest = notes.get("server_longest", {})
    if longest:
        answered = 1000 * longest.get("success", 0.0)
        refused = 1000 * longest.get("failure", 0.0)
        lines.append(
            "- inside the server at the flood point (from first reading a request's bytes "
            "to answering it, `modelport_request_longest_seconds`): the longest prediction "
            f"took {answered:.1f} ms (limit {limit_ms:g} ms): "
            f"**{'met' if answered <= limit_ms else 'NOT met'}**; the longest refusal "
            f"{refused:.1f} ms: "
            f"**{'met' if refused <= limit_ms else 'NOT met'}**. Past its parsing budget a "
            "turn of the event loop leaves requests unparsed; that wait counts against "
            "their deadline, so every prediction answers within it, and a request whose "
            "wait used its timeout up gets its 503 when its turn comes"
        )
    start, end, peak = notes["rss_start"], notes["rss_end"], notes["rss_peak"]
    growth = end / start - 1 if start else 0.0
    met = growth < RSS_GROWTH_LIMIT
    lines.append(
        f"- RSS grows < {100 * RSS_GROWTH_LIMIT:.0f}%: **{'met' if met else 'NOT met'}** — "
        f"{start / MIB:,.0f} MiB when the overload started, {end / MIB:,.0f} MiB when it "
        f"ended ({100 * growth:+.1f}%), peak {peak / MIB:,.0f} MiB, "
        f"{notes['rss_after_2s'] / MIB:,.0f} MiB 2 s later"
    )
    p = notes["probe"]
    ok = p["answered"] > 0 and not p["failures"] and p.get("max_ms", 0) <= 1000 * PROBE_LIMIT_S
    lines.append(
        f"- GET /v2/health/live answers during the overload: **{'met' if ok else 'NOT met'}** — "
        f"{p['answered']} probes answered 200, {len(p['failures'])} failed"
        + (f" ({', '.join(sorted(set(p['failures'])))})" if p["failures"] else "")
        + (
            f"; latency p50 {p['p50_ms']:.1f} ms, max {p['max_ms']:.1f} ms (limit "
            f"{1000 * PROBE_LIMIT_S:g} ms)"
            if p["answered"]
            else ""
        )
    )
    c, cp = notes.get("ceiling_flood"), notes.get("ceiling_probe", {})
    if c is not None:
        lines.append(
            f"- for scale, the raw ASGI app (a constant answer, nothing to refuse) under the "
            f"same {c['connections']} connections: {c['rps']:,.0f} answers/s, p50 "
            f"{c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms, max {c['max_ms']:.1f} ms, "
            f"{c['socket_errors']} unanswered; probes {cp.get('answered', 0)} answered, "
            f"{len(cp.get('failures', []))} failed"
            + (f", max {cp['max_ms']:.1f} ms" if cp.get("answered") else "")
            + ". A closed loop of N connections waits N / (answers per second) per answer "
            "whatever the server does with the request (Little's law): within a 100 ms "
            "timeout, N connections need 10 N answers/s from one core"
        )
    lines.append(
        f"- shed load: {100 * o['share_503']:.1f}% of the answers were 503, "
        f"{o['ok_rps']:,.0f} req/s still answered with a prediction (capacity at "
        f"concurrency {CAPACITY_CONCURRENCY}: {notes['capacity']['ok_rps']:,.0f} req/s)"
    )
    return lines


def points_table(notes: dict[str, Any]) -> list[str]:
    out = [
        "| point | connections | req/s | 2xx req/s | 503 share | other errors | p50 ms | "
        "p99 ms | max ms | peak RSS MiB | wrk CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "capacity": "capacity",
        "crowd": "10x the capacity's connections",
        "overload": "overload (flood)",
        "ceiling_flood": "raw ASGI app, same connections",
    }
    for key, label in labels.items():
        p = notes.get(key)
        if p is None:
            continue
        out.append(
            f"| {label} | {p['connections']} | {p['rps']:,.0f} | {p['ok_rps']:,.0f} | "
            f"{100 * p['share_503']:.1f}% | {p['other_errors']} | {p['p50_ms']:.2f} | "
            f"{p['p99_ms']:.2f} | {p['max_ms']:.1f} | {p['rss_peak'] / MIB:,.0f} | "
            f"{100 * p['client_cpu']:.0f}% |"
        )
    return out


def write(
    path: Path, run: Run, args: argparse.Namespace, notes: dict[str, Any], failure: str | None
) -> None:
    versions = ", ".join(f"{k} {v}" for k, v in notes.get("versions", {}).items())
    capped = notes.get("wanted_connections", 0) > notes.get("connections", 0)
    out = [
        *preamble(
            "ModelPort benchmark: overload",
            f"Produced by `{run.command}` on {run.date} in {notes.get('elapsed_s', 0) / 60:.1f} "
            "minutes. The demo scenario is in [RESULTS.md](RESULTS.md).",
        ),
        "ModelPort serves the moderate scenario's HistGradientBoostingClassifier (200 "
        "iterations, 30 features; pushed as skops) on `/models/moderate-hgb/predict`, "
        f"started with `MODELPORT_REQUEST_TIMEOUT_S={args.overload_timeout:g}`, pinned to "
        f"core {run.server_core}; {run.wrk} (one thread) runs on core {run.client_core}. "
        f"Capacity: {run.duration_s:g} s at concurrency {CAPACITY_CONCURRENCY} after a "
        f"{run.warmup_s:g} s warm-up. Then {args.overload_factor:g}x its connections "
        f"({notes.get('crowd', {}).get('connections', '-')}) for {run.duration_s:g} s: a "
        "closed loop that one core can still answer within the timeout if it sheds what it "
        f"cannot predict in time. About {notes.get('within_timeout', 0):.0f} requests "
        f"complete within one timeout at that rate, so the overload point opens "
        f"{args.overload_factor:g}x that many connections: "
        f"{notes.get('connections', '-')}"
        + (
            f" (capped from {notes.get('wanted_connections')} by --overload-max-connections)"
            if capped
            else ""
        )
        + f", for {run.duration_s:g} s. wrk counts the 503 answers (its own timeout is "
        f"{max(5.0, 20 * args.overload_timeout):g} s); latencies are those of answered "
        "requests. RSS sums the server's process tree, sampled every 0.2 s. A separate "
        f"thread sends `GET /v2/health/live` every {1000 * PROBE_INTERVAL_S:g} ms on a new "
        "connection during the overload.",
        "",
        "## Results",
        "",
        *points_table(notes),
        "",
        "## Targets",
        "",
        *verdicts(args, notes),
    ]
    finish(path, out, versions, failure)
