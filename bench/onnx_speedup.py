"""ONNX Runtime against scikit-learn for the moderate scenario's model, inside ModelPort.

Usage: .venv/bin/python bench/onnx_speedup.py [--repeat N] [--output PATH]

Trains the moderate scenario's HistGradientBoostingClassifier (`peers/train_moderate.py`,
200 iterations, 30 features), converts it the way `modelport models push --convert onnx`
does (skl2onnx, checked against the original on 512 rows), loads both through ModelPort's
own runtimes (`load_model`, one thread each, pinned to one core) and times `predict` on the
scenario's test rows (in each model's input dtype: FP64 for scikit-learn, FP32 for ONNX) in
batches of 1, 32 and 128 rows: the best of N calls and the median.
Writes bench/RESULTS-onnx.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from envs import BENCH_DIR, package_versions
from report import finish, preamble

BATCHES = (1, 32, 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300, help="calls per batch size (300)")
    parser.add_argument("--core", type=int, default=0, help="core to pin to (0)")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "RESULTS-onnx.md")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})
    started = time.monotonic()

    from modelport.cli.convert import convert_to_onnx
    from modelport.runtimes.loader import inspect_upload, load_model
    from modelport.tensors.dtypes import NUMPY_DTYPES

    with tempfile.TemporaryDirectory() as work:
        out = Path(work)
        train = [sys.executable, str(BENCH_DIR / "peers" / "train_moderate.py"), str(out)]
        subprocess.run([*train, "--skops"], check=True)
        reference = json.loads((out / "reference.json").read_text())
        rows = np.asarray(reference["rows"], dtype=np.float64)
        converted = convert_to_onnx(out / "model.joblib")
        models = {}
        artifacts = (
            ("scikit-learn (skops)", out / "model.skops"),
            ("ONNX Runtime", converted.path),
        )
        for label, path in artifacts:
            inspected = inspect_upload(path, False, True, None)
            models[label] = load_model(
                path, inspected.format, inspected.signature, False, False, None, 1
            )
        timings: dict[str, dict[int, tuple[float, float]]] = {}
        agree = True
        for label, model in models.items():
            spec = model.signature.inputs[0]  # the DataPlane hands rows over in its dtype
            name, typed = spec.name, rows.astype(NUMPY_DTYPES[spec.datatype])
            output = model.default_outputs[0]
            predicted = model.predict({name: typed}, frozenset({output}))[output]
            expected = np.asarray(reference["predictions"])
            agree &= bool((np.asarray(predicted).ravel() == expected).all())
            timings[label] = {}
            for size in BATCHES:
                batch = {name: typed[:size]}
                for _ in range(10):
                    model.predict(batch, frozenset({output}))
                samples = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    model.predict(batch, frozenset({output}))
                    samples.append(time.perf_counter() - t0)
                timings[label][size] = (min(samples), statistics.median(samples))
        converted.path.unlink()

    sk, ort = timings["scikit-learn (skops)"], timings["ONNX Runtime"]
    out_lines = preamble(
        "ModelPort benchmark: ONNX Runtime vs scikit-learn",
        f"Produced by `.venv/bin/python bench/onnx_speedup.py` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{(time.monotonic() - started) / 60:.1f} minutes.",
    )
    out_lines += [
        "",
        __doc__.split("\n\n", 2)[2].strip(),
        "",
        "## Results",
        "",
        "| rows per call | scikit-learn best µs | median µs | ONNX Runtime best µs | median µs "
        "| speedup (best) | speedup (median) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in BATCHES:
        out_lines.append(
            f"| {size} | {sk[size][0] * 1e6:,.0f} | {sk[size][1] * 1e6:,.0f} "
            f"| {ort[size][0] * 1e6:,.0f} | {ort[size][1] * 1e6:,.0f} "
            f"| {sk[size][0] / ort[size][0]:.1f}x | {sk[size][1] / ort[size][1]:.1f}x |"
        )
    out_lines += [
        "",
        f"- the two runtimes agree on all {len(rows)} test rows' classes: "
        f"{'yes' if agree else 'NO'}; the conversion's own check: "
        f"{converted.checked_rows} synthetic rows, largest difference {converted.max_difference:g}",
    ]
    python = Path(sys.executable)
    installed = package_versions(python, ("modelport", "scikit-learn", "onnxruntime", "skl2onnx"))
    versions = ", ".join(f"{k} {v}" for k, v in installed.items())
    finish(args.output, out_lines, versions, None)
    print("\n".join(out_lines[-len(BATCHES) - 6 :]))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
