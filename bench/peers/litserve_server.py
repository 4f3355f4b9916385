"""A scikit-learn model behind LitServe, answering the Flask tutorial's `/predict`.

Usage: python litserve_server.py HOST PORT MODEL_DIR [MAX_BATCH BATCH_TIMEOUT_S]

`{"features": [[...]]}` → `{"prediction": [...]}`. Without MAX_BATCH each request is
predicted alone; with it, LitServe gathers up to MAX_BATCH requests (one row each), waiting
at most BATCH_TIMEOUT_S seconds, and predicts them together.
"""

import sys
from pathlib import Path
from typing import Any

import joblib
import litserve as ls
import numpy as np


class SklearnAPI(ls.LitAPI):
    def __init__(self, model_dir: Path, **batching: Any) -> None:
        super().__init__(**batching)
        self.model_dir = model_dir
        self.batched = batching.get("max_batch_size", 1) > 1

    def setup(self, device: str) -> None:
        self.model = joblib.load(self.model_dir / "model.joblib")

    def decode_request(self, request: dict[str, Any]) -> np.ndarray:
        features = np.asarray(request["features"], dtype=np.float64)
        return features[0] if self.batched else features  # one row each when batching

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.stack(inputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def unbatch(self, output: np.ndarray) -> list[float]:
        return output.tolist()

    def encode_response(self, output: Any) -> dict[str, list[float]]:
        values = output.tolist() if isinstance(output, np.ndarray) else [output]
        return {"prediction": values}


def main(argv: list[str]) -> None:
    host, port, model_dir = argv[0], int(argv[1]), Path(argv[2])
    batching: dict[str, Any] = {}
    if len(argv) > 3:
        batching = {"max_batch_size": int(argv[3]), "batch_timeout": float(argv[4])}
    server = ls.LitServer(SklearnAPI(model_dir, **batching), accelerator="cpu")
    server.run(host=host, port=port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
