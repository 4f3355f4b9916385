"""The model registry: models, immutable versions, aliases and their history."""

from modelport.registry.registry import Registry

__all__ = ["Registry"]
