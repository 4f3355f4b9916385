"""Assembles the application: storage, registry, keys, DataPlane and the adapters."""
