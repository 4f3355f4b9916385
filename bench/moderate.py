"""The moderate scenario's floor, combined limit, target verdict and RESULTS-moderate.md.

Every system serves the same HistGradientBoostingClassifier (peers/train_moderate.py) and is
asked for one row per request at concurrency 32 and 128, with batching on where it has it.
Two numbers from the same run bound what a server on one core could do:

- the floor: `predict` called in-process (peers/floor.py, pinned to the server core) on
  batches of 1, 32 and 128 rows: microseconds per call and per row;
- the combined limit: the req/s one core could serve if each request cost the raw-ASGI
  ceiling's per-request time plus the batched predict's cost per row,
  1 / (1 / ceiling_rps + us_per_row / 1e6), at each concurrency: as the issue defines it,
  with the cost per row at batch 32 (the verdict), and, stricter at concurrency 128, with
  batches of as many rows as there are connections.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from envs import BENCH_DIR
from report import Row, Run, noise_note, preamble, rss_lines, systems_lines, table

FLOOR_BATCHES = (1, 32, 128)
FLOOR_SECONDS = 2.0
COMBINED_BATCH = 32  # the combined limit: the predict cost per row at this batch
TARGET_SHARE = 0.60  # ModelPort at concurrency 128: at least this share of the combined limit
TARGET_P99_MS = 50.0
TARGET_CONCURRENCY = 128


def measure_floor(python: Path, model_dir: Path, core: int) -> dict[str, Any]:
    """Run peers/floor.py in ModelPort's environment, pinned to the server core."""
    argv = [
        "taskset",
        "--cpu-list",
        str(core),
        str(python),
        str(BENCH_DIR / "peers" / "floor.py"),
        str(model_dir),
        str(FLOOR_SECONDS),
        *(str(b) for b in FLOOR_BATCHES),
    ]
    print(f"\n== in-process floor: predict on batches of {FLOOR_BATCHES} rows", flush=True)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        print(f"   FAILED: {done.stderr[-2000:]}", flush=True)
        return {}
    floor: dict[str, Any] = json.loads(done.stdout)
    for size, f in floor.items():
        print(
            f"   batch {size:>3}: {f['us_per_call']:9,.1f} us per call  "
            f"{f['us_per_row']:8,.1f} us per row  ({f['calls']} calls)",
            flush=True,
        )
    return floor


def combined_limits(
    rows: list[Row], floor: dict[str, Any], batch: int | None = COMBINED_BATCH
) -> dict[int, float]:
    """The combined limit at each concurrency the ceiling was measured at, with the
    predict cost per row at ``batch`` rows (None: as many rows as connections)."""
    return {
        r.concurrency: 1.0
        / (1.0 / r.measurement.rps + per_row_us(floor, batch or r.concurrency) / 1e6)
        for r in rows
        if r.system == "asgi-ceiling"
        and r.measurement.rps > 0
        and str(batch or r.concurrency) in floor
    }


def per_row_us(floor: dict[str, Any], batch: int) -> float:
    """The floor's predict cost per row, in µs, on batches of ``batch`` rows."""
    cost: float = floor[str(batch)]["us_per_row"]
    return cost


def floor_lines(floor: dict[str, Any]) -> list[str]:
    if not floor:
        return ["The floor was not measured (see the run's output)."]
    out = [
        "| rows per call | µs per call (median) | µs per call (mean) | µs per row "
        "| rows/s on one core |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size, f in floor.items():
        out.append(
            f"| {size} | {f['us_per_call']:,.1f} | {f['us_per_call_mean']:,.1f} | "
            f"{f['us_per_row']:,.2f} | {1e6 / f['us_per_row']:,.0f} |"
        )
    return out


def combined_lines(rows: list[Row], floor: dict[str, Any]) -> list[str]:
    limits = combined_limits(rows, floor)
    strict = combined_limits(rows, floor, None)
    if not limits:
        return ["The combined limit needs asgi-ceiling and the floor in the same run."]
    out = [
        f"| conc. | ceiling req/s | predict µs/row at {COMBINED_BATCH} | combined limit req/s | "
        "ModelPort endpoint | req/s | % of limit | p99 ms | µs/row, batch = conc. | "
        "stricter limit | % of it |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    ceiling = {r.concurrency: r.measurement.rps for r in rows if r.system == "asgi-ceiling"}
    for concurrency, limit in sorted(limits.items()):
        mine = [r for r in rows if r.system == "modelport" and r.concurrency == concurrency]
        for r in mine or [None]:
            cells = [
                str(concurrency),
                f"{ceiling[concurrency]:,.0f}",
                f"{per_row_us(floor, COMBINED_BATCH):,.2f}",
                f"{limit:,.0f}",
            ]
            other = strict.get(concurrency)
            if r is None:
                cells += ["-", "-", "-", "-", "-", "-", "-"]
            else:
                m = r.measurement
                cells += [
                    r.endpoint,
                    f"{m.rps:,.0f}",
                    f"{100 * m.rps / limit:.1f}%",
                    f"{m.p99_ms:.2f}",
                    f"{per_row_us(floor, concurrency):,.2f}" if other else "-",
                    f"{other:,.0f}" if other else "-",
                    f"{100 * m.rps / other:.1f}%" if other else "-",
                ]
            out.append("| " + " | ".join(cells) + " |")
    return out


def verdict(rows: list[Row], floor: dict[str, Any]) -> list[str]:
    """Each ModelPort endpoint at concurrency 128: share of the combined limit and p99."""
    limits = combined_limits(rows, floor)
    strict = combined_limits(rows, floor, None)
    top = TARGET_CONCURRENCY
    mine = [r for r in rows if r.system == "modelport" and r.concurrency == top]
    if not mine or top not in limits:
        return [
            f"Not evaluated: it needs ModelPort and asgi-ceiling at concurrency {top} and the "
            "floor in the same run."
        ]
    lines = []
    for r in mine:
        m = r.measurement
        share = m.rps / limits[top]
        met = share >= TARGET_SHARE and m.p99_ms < TARGET_P99_MS and m.errors == 0
        lines.append(
            f"- ModelPort {r.endpoint} at concurrency {top}: **{'met' if met else 'NOT met'}** "
            f"— {m.rps:,.0f} req/s = {100 * share:.1f}% of the combined limit "
            f"{limits[top]:,.0f} req/s (target >= {100 * TARGET_SHARE:.0f}%); p99 "
            f"{m.p99_ms:.2f} ms (target < {TARGET_P99_MS:g} ms); {m.errors} errors"
            + (
                f"; stricter, with the predict cost per row at batch {top}: "
                f"{100 * m.rps / strict[top]:.1f}% of {strict[top]:,.0f} req/s"
                if top in strict
                else ""
            )
        )
    return lines


def summary(rows: list[Row], floor: dict[str, Any]) -> list[str]:
    return [*noise_note(rows), *combined_lines(rows, floor), "", *verdict(rows, floor)]


def write(path: Path, run: Run, rows: list[Row], floor: dict[str, Any]) -> None:
    """Write RESULTS-moderate.md."""
    out = [
        *preamble(
            "ModelPort benchmark: a moderate model",
            f"Produced by `{run.command}` on {run.date} in {run.elapsed_s / 60:.1f} minutes "
            "(environment creation included). The demo scenario is in [RESULTS.md](RESULTS.md).",
        ),
        "The model: `HistGradientBoostingClassifier(max_iter=200, early_stopping=False, "
        "random_state=42)` on `make_classification(n_samples=10000, n_features=30, "
        "n_informative=15, random_state=42)` (80/20 split, seed 42), trained in each "
        "system's environment by `peers/train_moderate.py` (ModelPort gets its skops dump "
        "through `POST /api/v1/models/moderate-hgb/versions` and is asked on "
        "`/models/moderate-hgb/predict` and V2 `/v2/models/moderate-hgb/infer`; MLflow "
        "serves its `mlflow.sklearn.save_model` directory; the others load the joblib dump). "
        "Every request is one row of 30 features; before any load each server's predicted "
        "class for a fixed test row is checked against the reference. Peers run with "
        "batching on where they have it (see Systems).",
        "",
        f"Each server runs alone, pinned to core {run.server_core}; {run.wrk} with one "
        f"thread runs on core {run.client_core}. Each endpoint is warmed up for "
        f"{run.warmup_s:g} s at the highest concurrency, then measured for "
        f"{run.duration_s:g} s per concurrency. Errors are non-2xx answers plus socket "
        "errors (timeout 5 s). Peak RSS sums the server's process tree.",
        "",
        "## Results",
        "",
        *table(rows),
        "",
        *noise_note(rows),
        "## The floor: in-process predict",
        "",
        f"`peers/floor.py` in ModelPort's environment, pinned to core {run.server_core}: "
        f"`predict` on the first N test rows after a warm-up, the batch sizes taking turns "
        f"(one call each), {FLOOR_SECONDS:g} s per batch size in all.",
        "",
        *floor_lines(floor),
        "",
        "## The combined limit",
        "",
        "What one core could serve if each request cost the raw-ASGI ceiling's time per "
        f"request plus the batched predict's cost per row at batch {COMBINED_BATCH}, as issue "
        f"#4 defines it: 1 / (1 / ceiling_rps + µs_per_row_at_{COMBINED_BATCH} / 1e6), with "
        "both numbers from this run. The last three columns use, stricter, batches of as many "
        "rows as there are connections (at 128 connections a server can batch 128 rows).",
        "",
        *combined_lines(rows, floor),
        "",
        "## Target",
        "",
        f"Issue #4: at concurrency {TARGET_CONCURRENCY}, ModelPort serves at least "
        f"{100 * TARGET_SHARE:.0f}% of the combined limit with a p99 under "
        f"{TARGET_P99_MS:g} ms.",
        "",
        *verdict(rows, floor),
        "",
        "## Memory",
        "",
        *rss_lines(run),
        "",
        "## Systems",
        "",
        *systems_lines(run),
    ]
    path.write_text("\n".join(out) + "\n")
