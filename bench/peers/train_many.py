"""Train the multimodel scenario's N small, distinct models and dump each with skops.

Usage: python train_many.py OUT_DIR N

Model `mNNN` is a LinearRegression on `make_regression(n_samples=200, n_features=10,
noise=10.0, random_state=NNN)`: the same size for every model, different coefficients (so
different artifacts). Writes OUT_DIR/mNNN.skops and OUT_DIR/reference.json: one fixed row and
each model's prediction for it.
"""

import json
import sys
from pathlib import Path

import numpy as np
import skops.io
from sklearn.datasets import make_regression
from sklearn.linear_model import LinearRegression


def name(n: int) -> str:
    return f"m{n:03d}"


def main(out_dir: Path, count: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    row = np.random.default_rng(42).normal(size=(1, 10))
    predictions = {}
    for n in range(count):
        X, y = make_regression(n_samples=200, n_features=10, noise=10.0, random_state=n)
        model = LinearRegression().fit(X, y)
        skops.io.dump(model, out_dir / f"{name(n)}.skops")
        predictions[name(n)] = float(model.predict(row)[0])
    reference = {"row": row[0].tolist(), "predictions": predictions}
    (out_dir / "reference.json").write_text(json.dumps(reference))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
