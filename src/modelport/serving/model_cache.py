"""Loaded versions, kept in memory; concurrent first requests trigger a single load."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from modelport.runtimes.base import LoadedModel
from modelport.runtimes.loader import load_version, synthetic_inputs
from modelport.serving.batching import Batcher, QueueLimits
from modelport.serving.statistics import ModelStatistics
from modelport.storage.artifacts import ArtifactStore
from modelport.types import Signature, VersionInfo

log = logging.getLogger(__name__)

INLINE_PREDICT_LIMIT_S = 0.002
"""Models whose one-row predict is faster than this run on the event loop: a thread hop
would cost more than the prediction itself."""


@dataclass
class ServedModel:
    """One loaded version with its batcher."""

    version: VersionInfo
    model: LoadedModel
    batcher: Batcher
    load_seconds: float
    stats: ModelStatistics = field(default_factory=ModelStatistics)


def _is_batchable(signature: Signature) -> bool:
    """Rows of several callers can share one predict when every tensor has a free batch
    dimension first."""
    specs = [*signature.inputs, *signature.outputs]
    return bool(specs) and all(spec.shape and spec.shape[0] == -1 for spec in specs)


@dataclass
class CacheCounters:
    loads: int = 0
    evictions: int = 0
    load_seconds: float = 0.0


class ModelCache:
    """Maps ``(model, version)`` to a served model, loading on first use.

    With a memory budget, the least recently used versions are unloaded when a new one
    would not fit; pinned models (the default model) and versions with queued callers are
    never evicted. A version counts for its artifact's size.
    """

    def __init__(
        self,
        artifacts: ArtifactStore,
        allow_pickle: bool,
        max_batch_size: int,
        limits: QueueLimits | None = None,
        memory_limit_bytes: int | None = None,
        pinned: frozenset[str] = frozenset(),
    ) -> None:
        self._artifacts = artifacts
        self._allow_pickle = allow_pickle
        self._max_batch_size = max_batch_size
        self._limits = limits or QueueLimits()
        self._memory_limit = memory_limit_bytes
        self._pinned = pinned
        self.counters = CacheCounters()
        self._served: OrderedDict[tuple[str, int], ServedModel] = OrderedDict()
        self._loading: dict[tuple[str, int], asyncio.Future[ServedModel]] = {}

    def loaded(self) -> list[ServedModel]:
        return list(self._served.values())

    def is_loaded(self, name: str, version: int) -> bool:
        return (name, version) in self._served

    def find(self, name: str, version: int) -> ServedModel | None:
        return self._served.get((name, version))

    async def get(self, version: VersionInfo) -> ServedModel:
        key = (version.model, version.version)
        served = self._served.get(key)
        if served is not None and served.version.artifact_sha256 == version.artifact_sha256:
            self._served.move_to_end(key)
            return served
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ServedModel] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            served = await asyncio.to_thread(self._load, version)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved; waiters re-raise it
            raise
        finally:
            self._loading.pop(key, None)
        self._served[key] = served
        self.counters.loads += 1
        self.counters.load_seconds += served.load_seconds
        await self._make_room(keep=key)
        future.set_result(served)
        return served

    def memory_used(self) -> int:
        return sum(served.version.artifact_size for served in self._served.values())

    async def _make_room(self, keep: tuple[str, int]) -> None:
        """Unload least recently used versions until the budget holds (if it can)."""
        if self._memory_limit is None:
            return
        used = self.memory_used()
        for key in list(self._served):
            if used <= self._memory_limit:
                return
            served = self._served[key]
            if key == keep or key[0] in self._pinned or served.batcher.busy:
                continue
            del self._served[key]
            used -= served.version.artifact_size
            await served.batcher.close()
            served.model.unload()
            self.counters.evictions += 1
            log.info("evicted %s@%d to stay within the memory budget", key[0], key[1])

    def _load(self, version: VersionInfo) -> ServedModel:
        started = time.perf_counter()
        path = self._artifacts.verified_path(version.artifact_sha256)
        model = load_version(path, version, self._allow_pickle)
        load_seconds = time.perf_counter() - started
        inline = self._warm_up(model, version)
        log.info(
            "loaded %s@%d in %.1f ms (%s predict)",
            version.model,
            version.version,
            load_seconds * 1000,
            "inline" if inline else "threaded",
        )
        batchable = _is_batchable(version.signature)
        batcher = Batcher(
            model, self._max_batch_size, inline=inline, batchable=batchable, limits=self._limits
        )
        return ServedModel(version, model, batcher, load_seconds)

    @staticmethod
    def _warm_up(model: LoadedModel, version: VersionInfo) -> bool:
        """Run a synthetic request (so the first caller is not the slow one); say whether
        predict is cheap enough to run on the event loop."""
        row = synthetic_inputs(version.signature)
        outputs = frozenset(model.default_outputs)
        try:
            model.predict(row, outputs)
            started = time.perf_counter()
            model.predict(row, outputs)
        except Exception as exc:  # a model may refuse zeros; it is still servable
            log.warning("warm-up of %s@%d failed: %s", version.model, version.version, exc)
            return False
        return time.perf_counter() - started < INLINE_PREDICT_LIMIT_S

    async def unload(self, name: str, version: int | None = None) -> int:
        keys = [k for k in self._served if k[0] == name and version in (None, k[1])]
        for key in keys:
            served = self._served.pop(key)
            await served.batcher.close()
            served.model.unload()
        return len(keys)

    async def close(self) -> None:
        for name, _ in list(self._served):
            await self.unload(name)
