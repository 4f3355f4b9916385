"""Train the moderate scenario's HistGradientBoostingClassifier and dump it.

Usage: python train_moderate.py OUT_DIR [--skops] [--mlflow]

`make_classification(n_samples=10000, n_features=30, n_informative=15, random_state=42)`,
80/20 split with seed 42, `HistGradientBoostingClassifier(max_iter=200,
early_stopping=False, random_state=42)`: exactly 200 boosting iterations, the same trees in
every environment with the same scikit-learn.

Writes OUT_DIR/model.joblib (see artifacts.py for the other formats) and
OUT_DIR/reference.json: the fixed test row every answer is checked against and its
predicted class, and 128 test rows with their classes (the in-process floor's batches).
"""

import sys
from pathlib import Path

from artifacts import save
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split


def main(out_dir: Path, flags: list[str]) -> None:
    """Train, dump the model and write the reference rows and predictions."""
    X, y = make_classification(n_samples=10000, n_features=30, n_informative=15, random_state=42)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=42)
    model = HistGradientBoostingClassifier(max_iter=200, early_stopping=False, random_state=42)
    model.fit(X_train, y_train)
    rows = X_test[:128]
    predictions = model.predict(rows)
    # The checked row: the first test row of class 1, so a server answering 0 always fails.
    first = next(n for n, p in enumerate(predictions) if p == 1)
    reference = {
        "row": rows[first].tolist(),
        "prediction": float(predictions[first]),
        "rows": rows.tolist(),
        "predictions": [float(p) for p in predictions],
        "iterations": int(model.n_iter_),
    }
    save(model, out_dir, reference, flags)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
