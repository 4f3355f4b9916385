"""Train the demo LinearRegression the way ModelPort's demo does, and dump it with joblib.

Usage: python train_demo.py OUT_DIR

Writes OUT_DIR/model.joblib and OUT_DIR/reference.json: one fixed test row and the model's
prediction for it, which every server's answer is checked against before it is loaded.
"""

import json
import sys
from pathlib import Path

import joblib
from sklearn.datasets import make_regression
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split


def main(out_dir: Path) -> None:
    """Train, dump the model and write the reference row and prediction."""
    X, y = make_regression(n_samples=1000, n_features=10, noise=10.0, random_state=42)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=42)
    model = LinearRegression().fit(X_train, y_train)
    out_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out_dir / "model.joblib")
    row = X_test[:1]
    reference = {"row": row[0].tolist(), "prediction": float(model.predict(row)[0])}
    (out_dir / "reference.json").write_text(json.dumps(reference))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
