"""Predict in worker processes: each loads the version itself and receives raw numpy
buffers through shared memory; answers come back as raw buffers over a pipe."""
