"""The in-process floor: how long `predict` takes on batches of the moderate model's rows.

Usage: python floor.py MODEL_DIR SECONDS BATCH [BATCH ...]

Loads MODEL_DIR/model.joblib, takes the first BATCH of the 128 test rows in
MODEL_DIR/reference.json (repeated when BATCH is larger), calls `predict` on them after a
short warm-up, the batch sizes taking turns (SECONDS seconds per size in all), and prints
one JSON object: for each batch size the median and mean microseconds per call, and the
median per row.
"""

import json
import statistics
import sys
import time
from pathlib import Path

import joblib
import numpy as np


def main(model_dir: Path, seconds: float, batches: list[int]) -> None:
    model = joblib.load(model_dir / "model.joblib")
    rows = np.array(json.loads((model_dir / "reference.json").read_text())["rows"])
    inputs = {size: np.resize(rows, (size, rows.shape[1])) for size in batches}
    for x in inputs.values():
        for _ in range(20):
            model.predict(x)
    # The batch sizes take turns, one call each, so that a noisy second of the machine
    # weighs on every size alike instead of on whichever was being timed then.
    times: dict[int, list[float]] = {size: [] for size in batches}
    clock = time.perf_counter
    deadline = clock() + seconds * len(batches)
    while clock() < deadline:
        for size, x in inputs.items():
            started = clock()
            model.predict(x)
            times[size].append(clock() - started)
    result = {}
    for size, samples in times.items():
        median = statistics.median(samples) * 1e6
        result[str(size)] = {
            "calls": len(samples),
            "us_per_call": median,
            "us_per_call_mean": statistics.fmean(samples) * 1e6,
            "us_per_row": median / size,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]), [int(b) for b in sys.argv[3:]])
