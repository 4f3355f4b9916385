"""The tensor scenario's tables, target verdict and RESULTS-tensors.md.

Every ratio compares numbers from the same run, on the same model, at the same concurrency:
each row's req/s against MLServer's best gRPC configuration for that model (the one with
more gRPC req/s at the highest concurrency measured).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from report import noise_note as shared_noise_note
from report import preamble
from tensors import MODELS, TARGET_FACTOR, TOLERANCE, TensorRow

DESCRIPTIONS = {
    "wide-1024": "one row of 1024 features per request, a [1, 1024] FP32 tensor",
    "batch-30": "32 rows of 30 features per request, a [32, 30] FP32 tensor",
}


def mlserver_best_grpc(rows: list[TensorRow], model: str) -> TensorRow | None:
    """MLServer's gRPC row with the most req/s on `model` at the highest concurrency."""
    grpc = [
        r
        for r in rows
        if r.model == model and r.system.startswith("mlserver") and r.endpoint == "gRPC"
    ]
    if not grpc:
        return None
    top = max(r.concurrency for r in grpc)
    return max((r for r in grpc if r.concurrency == top), key=lambda r: r.measurement.rps)


def table(rows: list[TensorRow], model: str) -> list[str]:
    mine = [r for r in rows if r.model == model]
    best = mlserver_best_grpc(rows, model)
    baseline = {
        r.concurrency: r.measurement.rps
        for r in mine
        if best is not None and r.system == best.system and r.endpoint == "gRPC"
    }
    header = [
        "system",
        "endpoint",
        "conc.",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        f"x {best.system if best else 'MLServer'} gRPC",
        "client CPU",
        "others' CPU",
    ]
    cells = [header]
    for r in mine:
        m = r.measurement
        base = baseline.get(r.concurrency)
        cells.append(
            [
                r.system,
                r.endpoint,
                str(r.concurrency),
                f"{m.rps:,.0f}",
                f"{m.p50_ms:.2f}",
                f"{m.p99_ms:.2f}",
                str(m.errors),
                f"{m.rps / base:.2f}x" if base else "-",
                f"{100 * m.client_cpu:.0f}%",
                f"{100 * r.others_cpu:.1f}%",
            ]
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        padded = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("| " + " | ".join(padded) + " |")
        if n == 0:
            lines.append(
                "|"
                + "|".join("-" * (w + 1) + ("-" if i < 2 else ":") for i, w in enumerate(widths))
                + "|"
            )
    return lines


def verdict(rows: list[TensorRow]) -> list[str]:
    """Whether ModelPort's REST binary and gRPC reach the target on each model."""
    lines = []
    for model in MODELS:
        best = mlserver_best_grpc(rows, model)
        mine = [r for r in rows if r.model == model and r.system == "modelport"]
        if best is None or not mine:
            lines.append(f"- {model}: not evaluated (it needs ModelPort and MLServer gRPC)")
            continue
        base = best.measurement.rps
        lines.append(
            f"- **{model}**: MLServer's best gRPC configuration is {best.system}, "
            f"{base:,.0f} req/s at concurrency {best.concurrency}."
        )
        for kind in ("REST binary", "gRPC"):
            found = [r for r in mine if r.endpoint == kind and r.concurrency == best.concurrency]
            if not found:
                lines.append(f"  - ModelPort {kind}: **not measured**")
                continue
            m = found[0].measurement
            ok = m.rps >= TARGET_FACTOR * base and m.errors == 0
            client = f"; the client used {100 * m.client_cpu:.0f}% of its core" + (
                ", so it, not the server, may set the pace" if m.client_cpu > 0.9 else ""
            )
            lines.append(
                f"  - ModelPort {kind}: **{'met' if ok else 'NOT met'}**: {m.rps:,.0f} req/s = "
                f"{m.rps / base:.2f}x (target >= {TARGET_FACTOR:g}x), p99 {m.p99_ms:.2f} ms, "
                f"{m.errors} errors{client}"
            )
    return lines


def noise_note(rows: list[TensorRow]) -> list[str]:
    return shared_noise_note(
        rows, lambda r: f"{r.system} {r.model} {r.endpoint} at concurrency {r.concurrency}"
    )


def summary(rows: list[TensorRow]) -> list[str]:
    """What the runner prints at the end."""
    out = []
    for model in MODELS:
        if any(r.model == model for r in rows):
            out += [f"{model}: {DESCRIPTIONS[model]}", *table(rows, model), ""]
    return [*out, *noise_note(rows), *verdict(rows)]


def write(path: Path, run: Any, rows: list[TensorRow], notes: dict[str, Any]) -> None:
    """Write RESULTS-tensors.md; `run` is the demo scenario's report.Run (command, cores...)."""
    client = ", ".join(f"{k} {v}" for k, v in notes.get("client", {}).items())
    out = [
        *preamble(
            "ModelPort tensor benchmark results: V2 REST JSON, REST binary and gRPC",
            f"Produced by `{run.command}` on {run.date}; this scenario took "
            f"{notes.get('elapsed_s', 0.0) / 60:.1f} minutes (environment creation included). "
            "The one-row demo scenario is in [RESULTS.md](RESULTS.md).",
        ),
        "Two LinearRegressions, trained the same way in every environment "
        "(`make_regression(n_samples=5000, n_features=F, noise=10.0, random_state=42)`, 80/20 "
        "split, seed 42; see `peers/train_tensors.py`): `wide-1024` (F = 1024) is asked about "
        "one row per request, a [1, 1024] FP32 tensor; `batch-30` (F = 30) about 32 rows, a "
        "[32, 30] FP32 tensor. Each server holds both models: ModelPort gets the skops dump "
        "through `POST /api/v1/models/NAME/versions`, MLServer the joblib dump "
        "(mlserver-sklearn).",
        "",
        "Endpoints: **REST JSON** is `POST /v2/models/NAME/infer` with the tensor as a flat "
        "FP32 `data` list; **REST binary** the same URL with the binary tensor data extension "
        "(JSON header, its length in `Inference-Header-Content-Length`, then the raw "
        "little-endian FP32 bytes; the output asked for as raw bytes too); MLServer does not "
        "implement that extension. **gRPC** is `inference.GRPCInferenceService/ModelInfer` "
        "with the tensor in `raw_input_contents` (MLServer answers in `raw_output_contents` "
        "then).",
        "",
        f"Each server runs alone, pinned to core {run.server_core} (`taskset`, inherited by "
        f"worker processes); the load generators are pinned to core {run.client_core}: "
        f"{run.wrk} with one thread for REST, and for gRPC `grpcload.py` (Python grpc.aio "
        f"with tritonclient's generated stubs, {client}), which keeps N calls in flight on "
        "one channel for a fixed time, sending the request serialised once and not parsing "
        "the answers. `client CPU` is the share of its core the load generator used (wrk: "
        "CPU time over the run; grpcload.py: its own process time while loading): near 100% "
        "the client, not the server, sets the pace. Before any load, every system's answer "
        f"to every request on every endpoint is checked against the reference predictions "
        f"(to {TOLERANCE:g} relative, absolute below 1). Each endpoint is warmed up for "
        f"{run.warmup_s:g} s at the highest concurrency, then measured for {run.duration_s:g} "
        "s per concurrency. Errors are non-2xx answers plus socket errors (REST), failed "
        "calls (gRPC, deadline 5 s).",
        "",
        "## Results",
        "",
    ]
    for model in MODELS:
        if any(r.model == model for r in rows):
            out += [f"### {model}: {DESCRIPTIONS[model]}", "", *table(rows, model), ""]
    out += [
        "Ratios are taken within this run, on the same model and at the same concurrency, "
        "against MLServer's best gRPC configuration for that model. `others' CPU` is the "
        "share of a core that processes outside the benchmark, and the hypervisor's steal "
        "time, took during the point.",
        "",
        *noise_note(rows),
        "## Target",
        "",
        f"ModelPort's REST binary and gRPC each serve at least {TARGET_FACTOR:g}x MLServer's "
        "gRPC req/s (its best configuration) on the same model at the highest concurrency, "
        "one core each.",
        "",
        *verdict(rows),
        "",
        "## Systems",
        "",
    ]
    for name, text in notes.get("summaries", {}).items():
        versions = ", ".join(f"{k} {v}" for k, v in notes["versions"].get(name, {}).items())
        pinning = notes["pinning"].get(name, "")
        out.append(f"- **{name}**: {text}. {versions}." + (f" {pinning}." if pinning else ""))
    if notes.get("failures") or notes.get("missing"):
        out += ["", "## Not measured or failed", ""]
        out += [f"- **{name}**: not measured: {why}" for name, why in notes["missing"].items()]
        out += [f"- **{name}**: failed: {why}" for name, why in notes["failures"].items()]
    path.write_text("\n".join(out) + "\n")
