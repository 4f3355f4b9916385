"""Train the demo LinearRegression the way ModelPort's demo does, and dump it.

Usage: python train_demo.py OUT_DIR [--skops] [--mlflow]

Writes OUT_DIR/model.joblib (see artifacts.py for the other formats) and
OUT_DIR/reference.json: one fixed test row and the model's prediction for it, which every
server's answer is checked against before it is loaded; and the same row rounded to FP32
(written as the shortest decimals that read back as the same FP32 values) with its
prediction, for the endpoints that send FP32 tensors (V2 binary, gRPC).
"""

import sys
from pathlib import Path

import numpy as np
from artifacts import save
from sklearn.datasets import make_regression
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split


def main(out_dir: Path, flags: list[str]) -> None:
    """Train, dump the model and write the reference rows and predictions."""
    X, y = make_regression(n_samples=1000, n_features=10, noise=10.0, random_state=42)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=42)
    model = LinearRegression().fit(X_train, y_train)
    row = X_test[:1]
    row32 = [float(str(v)) for v in row[0].astype(np.float32)]
    reference = {
        "row": row[0].tolist(),
        "prediction": float(model.predict(row)[0]),
        "row32": row32,
        "prediction32": float(model.predict(np.array([row32]))[0]),
    }
    save(model, out_dir, reference, flags)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
