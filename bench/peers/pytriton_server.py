"""A scikit-learn model behind PyTriton: Triton's HTTP V2 endpoint with dynamic batching.

Usage: python pytriton_server.py HOST HTTP_PORT GRPC_PORT METRICS_PORT MODEL_DIR NAME
           MAX_BATCH DELAY_US

Loads MODEL_DIR/model.joblib and binds it as NAME: one FP64 input `features` of one row per
request ([1, F], the first dimension being Triton's batch), one FP64 output `predict`.
`@batch` hands the infer function the rows of every request that Triton's dynamic batcher
gathered (up to MAX_BATCH rows, waiting at most DELAY_US microseconds for more).

Triton's Python backend stub must find this interpreter's libpython: the benchmark puts its
directory first on LD_LIBRARY_PATH.
"""

import sys
from pathlib import Path

import joblib
import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def main(argv: list[str]) -> None:
    host, http_port, grpc_port, metrics_port, model_dir, name, max_batch, delay_us = argv
    model = joblib.load(Path(model_dir) / "model.joblib")

    @batch
    def infer(features: np.ndarray) -> dict[str, np.ndarray]:
        return {"predict": model.predict(features).astype(np.float64).reshape(-1, 1)}

    config = TritonConfig(
        http_address=host,
        http_port=int(http_port),
        grpc_address=host,
        grpc_port=int(grpc_port),
        metrics_port=int(metrics_port),
        log_verbose=0,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name=name,
            infer_func=infer,
            inputs=[Tensor(name="features", dtype=np.float64, shape=(-1,))],
            outputs=[Tensor(name="predict", dtype=np.float64, shape=(1,))],
            config=ModelConfig(
                max_batch_size=int(max_batch),
                batcher=DynamicBatcher(max_queue_delay_microseconds=int(delay_us)),
            ),
            strict=True,
        )
        triton.serve()


if __name__ == "__main__":
    main(sys.argv[1:])
