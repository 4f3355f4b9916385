"""The V2 repository and statistics extensions, shared by REST and gRPC: which models
exist and are loaded, explicit load/unload, and per-version inference statistics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from modelport.errors import NotFoundError
from modelport.registry.references import Reference
from modelport.serving.dataplane import DataPlane
from modelport.serving.model_cache import ServedModel
from modelport.serving.statistics import BatchStatistics, ModelStatistics


@dataclass(frozen=True)
class IndexEntry:
    name: str
    version: str
    state: str
    reason: str = ""


@dataclass
class VersionStatistics:
    name: str
    version: str
    requests: ModelStatistics = field(default_factory=ModelStatistics)
    batches: BatchStatistics = field(default_factory=BatchStatistics)


class Repository:
    """What V2's repository and statistics endpoints see of the registry and the cache."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    async def index(self, ready_only: bool = False) -> list[IndexEntry]:
        registry = self.dataplane.registry
        entries: list[IndexEntry] = []
        for model in await asyncio.to_thread(registry.list_models):
            if model.latest_version is None:
                continue
            version = await self.dataplane.resolve(Reference(model.name))
            loaded = self.dataplane.models.is_loaded(model.name, version.version)
            if ready_only and not loaded:
                continue
            reason = "" if loaded else self.dataplane.unloaded_reason(model.name)
            state = "READY" if loaded else "UNAVAILABLE"
            entries.append(IndexEntry(model.name, str(version.version), state, reason))
        return entries

    async def load(self, name: str) -> None:
        await self.dataplane.load(Reference(name))

    async def unload(self, name: str) -> None:
        await self.dataplane.registry_model(name)
        await self.dataplane.unload(name)

    async def statistics(self, reference: Reference | None) -> list[VersionStatistics]:
        """Statistics of every loaded version, or of the version ``reference`` names."""
        if reference is None:
            return [_stats_of(served) for served in self.dataplane.models.loaded()]
        version = await self.dataplane.resolve(reference)
        served = self.dataplane.models.find(version.model, version.version)
        if served is None:
            return [VersionStatistics(version.model, str(version.version))]
        return [_stats_of(served)]


def _stats_of(served: ServedModel) -> VersionStatistics:
    return VersionStatistics(
        served.version.model,
        str(served.version.version),
        served.stats,
        served.batcher.stats,
    )


__all__ = ["IndexEntry", "NotFoundError", "Repository", "VersionStatistics"]
