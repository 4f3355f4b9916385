"""Train-to-deploy pipelines: a spec runs as a job in a worker process (dataset → split →
preprocessing → candidate search with cross-validation → test → ONNX → registration with
lineage → evaluation gate → alias move)."""
