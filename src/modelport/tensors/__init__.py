"""Tensor data shared by every layer (client included): V2 datatypes ↔ numpy, and the
binary tensor encoding. Depends only on numpy, ``types`` and ``errors``."""
