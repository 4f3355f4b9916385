"""Write a trained estimator in every format the servers load, and its reference answers.

Imported by the training scripts (train_demo.py, train_moderate.py), which run in each
server's environment so that every server loads a model made by its own scikit-learn.

- OUT_DIR/model.joblib, always (Flask, MLServer, PyTriton, LitServe, BentoML);
- OUT_DIR/model.skops with `--skops` (pushed to ModelPort through its API);
- OUT_DIR/mlflow/ with `--mlflow` (`mlflow.sklearn.save_model`, served by `mlflow models serve`);
- OUT_DIR/reference.json: the reference rows and predictions every answer is checked against.
"""

import json
import shutil
from pathlib import Path
from typing import Any

import joblib


def save(model: Any, out_dir: Path, reference: dict[str, Any], flags: list[str]) -> None:
    """Dump `model` as asked by `flags` and write `reference` next to it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out_dir / "model.joblib")
    if "--skops" in flags:
        import skops.io

        skops.io.dump(model, out_dir / "model.skops")
    if "--mlflow" in flags:
        import mlflow.sklearn
        import skops.io

        shutil.rmtree(out_dir / "mlflow", ignore_errors=True)
        # MLflow stores the model with skops and refuses types skops does not trust by
        # default (HistGradientBoosting's TreePredictor): trust exactly those of this model,
        # which this script just made.
        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
        mlflow.sklearn.save_model(model, str(out_dir / "mlflow"), skops_trusted_types=trusted)
    (out_dir / "reference.json").write_text(json.dumps(reference))
