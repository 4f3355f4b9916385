"""A scikit-learn model as a BentoML service: `bentoml serve bentoml_service:Predictor`.

POST /predict with `{"features": [[...]]}` answers the predictions as a JSON list. The model
is read from $BENCH_MODEL_DIR/model.joblib. With BENCH_MAX_BATCH=N the API is `batchable`:
BentoML's adaptive batching gathers up to N requests' rows (waiting no longer than
BENCH_MAX_LATENCY_MS allows) and predicts them together.
"""

import os
from pathlib import Path

import bentoml
import joblib
import numpy as np

MAX_BATCH = int(os.environ.get("BENCH_MAX_BATCH", "0"))
MAX_LATENCY_MS = int(os.environ.get("BENCH_MAX_LATENCY_MS", "1000"))


@bentoml.service(workers=1)
class Predictor:
    def __init__(self) -> None:
        self.model = joblib.load(Path(os.environ["BENCH_MODEL_DIR"]) / "model.joblib")

    if MAX_BATCH:

        @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
        def predict(self, features: np.ndarray) -> np.ndarray:
            return self.model.predict(features)

    else:

        @bentoml.api
        def predict(self, features: np.ndarray) -> np.ndarray:
            return self.model.predict(features)
