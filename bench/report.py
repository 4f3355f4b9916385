"""Turn a run's measurements into a table, ratios and target verdicts, and write RESULTS.md.

Ratios compare numbers taken in the same run: each row's req/s against MLServer's best
configuration (the one with more req/s at the highest concurrency) and against the ceiling,
at the same concurrency.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpuload import NOISY
from loadgen import Measurement

TARGET_FACTOR = 3.0  # ModelPort must serve at least this many times MLServer's better config
CEILING_SHARE = 0.50  # issue #4: ModelPort's best protocol at c=32, share of the ceiling
PREDICT_SHARE = 0.70  # issue #4: /predict at c=32, share of ModelPort's best protocol
TARGET_CONCURRENCY = 32
MIB = 1024 * 1024


@dataclass(frozen=True)
class Row:
    """One measured point."""

    system: str
    endpoint: str
    concurrency: int
    measurement: Measurement
    others_cpu: float = 0.0  # share of one core used by other processes meanwhile
    rss_peak: int = 0  # bytes: the server's process tree RSS at its highest during the point


@dataclass
class Run:
    """Everything RESULTS.md reports besides the rows."""

    command: str
    date: str
    duration_s: float
    warmup_s: float
    server_core: int
    client_core: int
    wrk: str
    summaries: dict[str, str] = field(default_factory=dict)
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    pinning: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    peers: set[str] = field(default_factory=set)
    elapsed_s: float = 0.0
    rss: dict[str, tuple[int, int]] = field(default_factory=dict)  # system: (ready, peak) bytes


def finish(path: Path, out: list[str], versions: str, failure: str | None) -> None:
    """Close a ModelPort-only results file (its software and any failure) and write it."""
    out += ["", "## Software", "", f"- ModelPort's environment: {versions}"]
    if failure:
        out += ["", "## Failure", "", f"- {failure}"]
    path.write_text("\n".join(out) + "\n")


def preamble(title: str, produced: str) -> list[str]:
    """A results file's opening: its title, how it was produced, the machine, and the
    heading of the method section that follows."""
    return [
        f"# {title}",
        "",
        produced,
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in machine().items()),
        "",
        "## Method",
        "",
    ]


def machine() -> dict[str, str]:
    """nproc, CPU model, kernel, memory and the runner's python."""
    cpu = "?"
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = "?"
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "nproc": str(os.cpu_count()),
        "CPU": cpu,
        "kernel": platform.release(),
        "memory": memory,
        "runner python": platform.python_version(),
    }


def mlserver_best(rows: list[Row]) -> str | None:
    """The MLServer configuration with the most req/s at the highest concurrency measured."""
    candidates = [r for r in rows if r.system.startswith("mlserver")]
    if not candidates:
        return None
    top = max(r.concurrency for r in candidates)
    at_top = [r for r in candidates if r.concurrency == top]
    return max(at_top, key=lambda r: r.measurement.rps).system


def table(rows: list[Row]) -> list[str]:
    """An aligned Markdown table of every row, with the two ratios."""
    best = mlserver_best(rows)
    best_rps = {r.concurrency: r.measurement.rps for r in rows if r.system == best}
    ceiling = {r.concurrency: r.measurement.rps for r in rows if r.system == "asgi-ceiling"}
    header = [
        "system",
        "endpoint",
        "conc.",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        f"x {best or 'MLServer'}",
        "% of ceiling",
        "peak RSS MiB",
        "client CPU",
        "others' CPU",
    ]
    cells = [header]
    for r in rows:
        m = r.measurement
        cells.append(
            [
                r.system,
                r.endpoint,
                str(r.concurrency),
                f"{m.rps:,.0f}",
                f"{m.p50_ms:.2f}",
                f"{m.p99_ms:.2f}",
                str(m.errors),
                _ratio(m.rps, best_rps.get(r.concurrency), "x"),
                _ratio(m.rps, ceiling.get(r.concurrency), "%"),
                f"{r.rss_peak / MIB:,.0f}" if r.rss_peak else "-",
                f"{100 * m.client_cpu:.0f}%",
                f"{100 * r.others_cpu:.1f}%",
            ]
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    right = set(range(2, len(header)))
    lines = []
    for n, row in enumerate(cells):
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("| " + " | ".join(padded) + " |")
        if n == 0:
            lines.append(
                "|"
                + "|".join(
                    "-" * (w + 1) + (":" if i in right else "-") for i, w in enumerate(widths)
                )
                + "|"
            )
    return lines


def noise_note(rows: Sequence[Any], describe: Callable[[Any], str] | None = None) -> list[str]:
    """A warning when other processes used the machine during some points, else nothing.
    ``describe`` names a point (default: system, endpoint, concurrency)."""
    noisy = [r for r in rows if r.others_cpu > NOISY]
    if not noisy:
        return []
    worst = max(noisy, key=lambda r: r.others_cpu)
    where = (
        describe(worst)
        if describe
        else f"{worst.system} {worst.endpoint} at concurrency {worst.concurrency}"
    )
    return [
        f"**Noisy run**: other processes (or steal) took more than {100 * NOISY:.0f}% of a "
        f"core during {len(noisy)} of {len(rows)} points (up to {100 * worst.others_cpu:.0f}%, "
        f"{where}); rerun on a quiet machine before drawing conclusions.",
        "",
    ]


def verdict(rows: list[Row], peers: set[str]) -> list[str]:
    """Whether each ModelPort endpoint meets the target at the highest concurrency."""
    mine = [r for r in rows if r.system == "modelport"]
    best = mlserver_best(rows)
    if not mine or best is None:
        return ["Target not evaluated: it needs ModelPort and MLServer in the same run."]
    top = max(r.concurrency for r in mine)
    best_rps = next(r.measurement.rps for r in rows if r.system == best and r.concurrency == top)
    peer_rows = [r for r in rows if r.system in peers and r.concurrency == top]
    if not peer_rows:
        return ["Target not evaluated: no peer was measured at the same concurrency."]
    lowest = min(peer_rows, key=lambda r: r.measurement.p99_ms)
    lines = []
    for r in (r for r in mine if r.concurrency == top):
        m = r.measurement
        fast = m.rps >= TARGET_FACTOR * best_rps
        lower = m.p99_ms < lowest.measurement.p99_ms
        status = "met" if fast and lower and m.errors == 0 else "NOT met"
        lines.append(
            f"- ModelPort {r.endpoint} at concurrency {top}: **{status}** — {m.rps:,.0f} req/s "
            f"= {m.rps / best_rps:.2f}x {best} (target >= {TARGET_FACTOR:g}x); p99 "
            f"{m.p99_ms:.2f} ms vs lowest peer p99 {lowest.measurement.p99_ms:.2f} ms "
            f"({lowest.system}); {m.errors} errors"
        )
    return lines


def ceiling_verdict(rows: list[Row]) -> list[str]:
    """Issue #4's tiny-model targets at concurrency 32: ModelPort's best protocol at least
    CEILING_SHARE of the ceiling, and /predict at least PREDICT_SHARE of that best."""
    top = TARGET_CONCURRENCY
    mine = [r for r in rows if r.system == "modelport" and r.concurrency == top]
    ceiling = [r for r in rows if r.system == "asgi-ceiling" and r.concurrency == top]
    if not mine or not ceiling:
        return [
            f"Not evaluated: it needs ModelPort and asgi-ceiling at concurrency {top} in the "
            "same run."
        ]
    ceiling_rps = ceiling[0].measurement.rps
    best = max(mine, key=lambda r: r.measurement.rps)
    share = best.measurement.rps / ceiling_rps if ceiling_rps else 0.0
    met = share >= CEILING_SHARE and best.measurement.errors == 0
    lines = [
        f"- best protocol ({best.endpoint}) at concurrency {top}: **{'met' if met else 'NOT met'}**"
        f" — {best.measurement.rps:,.0f} req/s = {100 * share:.1f}% of the ceiling's "
        f"{ceiling_rps:,.0f} req/s (target >= {100 * CEILING_SHARE:.0f}%); p99 "
        f"{best.measurement.p99_ms:.2f} ms; {best.measurement.errors} errors"
    ]
    predict = next((r for r in mine if r.endpoint == "/predict"), None)
    if predict is None:
        lines.append("- /predict: not measured")
        return lines
    m = predict.measurement
    of_best = m.rps / best.measurement.rps if best.measurement.rps else 0.0
    met = of_best >= PREDICT_SHARE and m.errors == 0
    lines.append(
        f"- simple JSON /predict at concurrency {top}: **{'met' if met else 'NOT met'}** — "
        f"{m.rps:,.0f} req/s = {100 * of_best:.1f}% of the best protocol (target >= "
        f"{100 * PREDICT_SHARE:.0f}%), {100 * m.rps / ceiling_rps:.1f}% of the ceiling; p99 "
        f"{m.p99_ms:.2f} ms; {m.errors} errors"
    )
    return lines


def rss_lines(run: Run) -> list[str]:
    """Each system's RSS once ready and at its peak (its whole process tree)."""
    if not run.rss:
        return []
    out = ["| system | RSS when ready MiB | peak RSS MiB |", "|---|---:|---:|"]
    for name, (ready, peak) in run.rss.items():
        out.append(f"| {name} | {ready / MIB:,.0f} | {peak / MIB:,.0f} |")
    return out


def systems_lines(run: Run) -> list[str]:
    out = []
    for name, summary in run.summaries.items():
        versions = ", ".join(f"{k} {v}" for k, v in run.versions.get(name, {}).items())
        pinning = run.pinning.get(name, "")
        out.append(f"- **{name}**: {summary}. {versions}." + (f" {pinning}." if pinning else ""))
    if run.failures:
        out += ["", "## Failures", ""]
        out += [f"- **{name}**: {reason}" for name, reason in run.failures.items()]
    return out


def write(path: Path, run: Run, rows: list[Row]) -> None:
    """Write RESULTS.md."""
    out = [
        "# ModelPort benchmark results",
        "",
        f"Produced by `{run.command}` on {run.date} in {run.elapsed_s / 60:.1f} minutes "
        "(environment creation included).",
        "",
        "The other scenarios (`python bench/run.py --scenario NAME`) write their own files: "
        "[RESULTS-tensors.md](RESULTS-tensors.md) (V2 REST JSON, REST binary and gRPC on FP32 "
        "tensors), [RESULTS-moderate.md](RESULTS-moderate.md) (a HistGradientBoosting "
        "classifier, the in-process floor and the combined limit), "
        "[RESULTS-multimodel.md](RESULTS-multimodel.md) (500 models, a 50-model memory "
        "budget, Zipf traffic) and [RESULTS-overload.md](RESULTS-overload.md) (10x the "
        "concurrency ModelPort can serve within a short request timeout).",
        "",
        "## Machine",
        "",
    ]
    out += [f"- {k}: {v}" for k, v in machine().items()]
    out += [
        "",
        "## Method",
        "",
        f"Each server runs alone, pinned to core {run.server_core} (`taskset`, inherited "
        f"by worker processes); the load generator, {run.wrk} with one thread, is pinned to "
        f"core {run.client_core}; gRPC is loaded by `grpcload.py` (tritonclient's stubs, "
        "grpc.aio) on the same core. Every request is a one-row prediction on the demo "
        "LinearRegression (`make_regression(n_samples=1000, n_features=10, noise=10.0, "
        "random_state=42)`, 80/20 split, seed 42), trained in each system's environment, "
        "sent over loopback with keep-alive (gunicorn's sync worker closes each connection "
        "after answering, so wrk reconnects). ModelPort answers it four ways: the simple JSON "
        "`/predict`, V2 JSON (FP64), V2 binary (the row as FP32 little-endian bytes after a "
        "JSON header, `Inference-Header-Content-Length`) and V2 gRPC (FP32 "
        "`raw_input_contents`). Before any load, each server's prediction for one fixed row "
        "is checked against the reference to 1e-6 (the FP32 endpoints against the FP32 "
        f"row's prediction, to 1e-4). Each endpoint is warmed up for {run.warmup_s:g} s at "
        f"the highest concurrency, then measured for {run.duration_s:g} s per concurrency. "
        "Errors are non-2xx answers plus socket errors (timeout 5 s). Peak RSS is the sum of "
        "the RSS of the server's process tree (`/proc/PID/statm`, sampled every 0.2 s), at "
        "its highest during the point.",
        "",
        "## Results",
        "",
    ]
    out += table(rows)
    out += [
        "",
        "Ratios are taken within this run, at the same concurrency. `client CPU` is the "
        "share of its core the load generator used: near 100%, it rather than the server sets "
        "the pace. `others' CPU` is the share of a core that processes outside the benchmark, "
        "and the hypervisor's steal time, took during the point.",
        "",
        *noise_note(rows),
        "## Memory",
        "",
        *rss_lines(run),
        "",
        "## Targets",
        "",
        f"Issue #4: at concurrency {TARGET_CONCURRENCY}, ModelPort's best protocol serves at "
        f"least {100 * CEILING_SHARE:.0f}% of the raw-ASGI ceiling measured in this run, and "
        f"its simple JSON `/predict` at least {100 * PREDICT_SHARE:.0f}% of that best "
        "protocol's req/s.",
        "",
        *ceiling_verdict(rows),
        "",
        f"Earlier target: each ModelPort endpoint serves at least {TARGET_FACTOR:g}x "
        "MLServer's best configuration, with a p99 lower than every peer's "
        f"({', '.join(sorted(run.peers))}; the constant-answer ceiling is not a peer).",
        "",
    ]
    out += verdict(rows, run.peers)
    out += ["", "## Systems", ""]
    out += systems_lines(run)
    path.write_text("\n".join(out) + "\n")


def _ratio(value: float, reference: float | None, kind: str) -> str:
    if not reference:
        return "-"
    return f"{value / reference:.2f}x" if kind == "x" else f"{100 * value / reference:.1f}%"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
