"""The Python SDK: a typed client for the ModelPort REST API, on httpx."""

from modelport.client.client import Client, InferResult

__all__ = ["Client", "InferResult"]
