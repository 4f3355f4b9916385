"""Open Inference Protocol V2 over gRPC."""
