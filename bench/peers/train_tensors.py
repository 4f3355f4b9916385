"""Train the tensor scenario's two LinearRegressions and write the requests' reference answers.

Usage: python train_tensors.py OUT_DIR [--skops]

Both models are trained the same way (`make_regression(n_samples=5000, noise=10.0,
random_state=42)`, 80/20 split with seed 42), so every environment with the same
scikit-learn produces the same coefficients:

- `wide-1024`: 1024 features, asked about one row per request (a [1, 1024] FP32 tensor);
- `batch-30`: 30 features, asked about 32 rows per request (a [32, 30] FP32 tensor).

Writes OUT_DIR/NAME/model.joblib (and model.skops with --skops) for each, and
OUT_DIR/reference.json: each request's rows, rounded to FP32 and written as the shortest
decimals that read back as the same FP32 values, and the model's predictions for them.
"""

import json
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_regression
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split

MODELS = {"wide-1024": (1024, 1), "batch-30": (30, 32)}  # name: (features, rows per request)


def main(out_dir: Path, with_skops: bool) -> None:
    """Train, dump each model and write the reference requests and predictions."""
    reference = {}
    for name, (features, rows) in MODELS.items():
        X, y = make_regression(n_samples=5000, n_features=features, noise=10.0, random_state=42)
        X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=42)
        model = LinearRegression().fit(X_train, y_train)
        model_dir = out_dir / name
        model_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, model_dir / "model.joblib")
        if with_skops:
            import skops.io

            skops.io.dump(model, model_dir / "model.skops")
        request = X_test[:rows].astype(np.float32)
        values = [[float(str(v)) for v in row] for row in request]
        if not np.array_equal(np.array(values, dtype=np.float32), request):
            raise SystemExit(f"{name}: the decimal rows do not read back as the FP32 rows")
        reference[name] = {
            "features": features,
            "rows": values,
            "predictions": model.predict(request.astype(np.float64)).tolist(),
        }
    (out_dir / "reference.json").write_text(json.dumps(reference))


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--skops" in sys.argv[2:])
