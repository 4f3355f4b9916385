"""Protocol adapters: the only layer that knows HTTP (and, later, gRPC and OpenAI)."""
