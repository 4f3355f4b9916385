"""Loaded versions, kept in memory; concurrent first requests trigger a single load."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from modelport.runtimes.formats import ArtifactFormat
from modelport.runtimes.sklearn import SklearnModel, load_estimator
from modelport.serving.batching import Batcher
from modelport.storage.artifacts import ArtifactStore
from modelport.types import Datatype, VersionInfo

log = logging.getLogger(__name__)

INLINE_PREDICT_LIMIT_S = 0.002
"""Models whose one-row predict is faster than this run on the event loop: a thread hop
would cost more than the prediction itself."""


@dataclass
class ServedModel:
    """One loaded version with its batcher."""

    version: VersionInfo
    model: SklearnModel
    batcher: Batcher
    load_seconds: float
    inline: bool
    loaded_at: float = field(default_factory=time.time)


def _synthetic_row(version: VersionInfo) -> np.ndarray:
    spec = version.signature.inputs[0]
    if spec.datatype is Datatype.BYTES:
        return np.asarray(["warm-up"], dtype=object)
    width = [max(dim, 1) for dim in spec.shape[1:]]
    return np.zeros([1, *width], dtype=np.float64)


class ModelCache:
    """Maps ``(model, version)`` to a served model, loading on first use."""

    def __init__(self, artifacts: ArtifactStore, allow_pickle: bool, max_batch_size: int) -> None:
        self._artifacts = artifacts
        self._allow_pickle = allow_pickle
        self._max_batch_size = max_batch_size
        self._served: dict[tuple[str, int], ServedModel] = {}
        self._loading: dict[tuple[str, int], asyncio.Future[ServedModel]] = {}

    def loaded(self) -> list[ServedModel]:
        return list(self._served.values())

    def is_loaded(self, name: str, version: int) -> bool:
        return (name, version) in self._served

    async def get(self, version: VersionInfo) -> ServedModel:
        key = (version.model, version.version)
        served = self._served.get(key)
        if served is not None and served.version.artifact_sha256 == version.artifact_sha256:
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
        future.set_result(served)
        return served

    def _load(self, version: VersionInfo) -> ServedModel:
        started = time.perf_counter()
        path = self._artifacts.verified_path(version.artifact_sha256)
        estimator = load_estimator(
            path, ArtifactFormat(version.format), version.trusted, self._allow_pickle
        )
        model = SklearnModel(estimator, version.signature)
        load_seconds = time.perf_counter() - started
        row = _synthetic_row(version)
        model.predict(row, frozenset({"predict"}))  # warm-up: the first caller is not slow
        warm_started = time.perf_counter()
        model.predict(row, frozenset({"predict"}))
        inline = time.perf_counter() - warm_started < INLINE_PREDICT_LIMIT_S
        log.info(
            "loaded %s@%d in %.1f ms (%s predict)",
            version.model,
            version.version,
            load_seconds * 1000,
            "inline" if inline else "threaded",
        )
        batcher = Batcher(model, self._max_batch_size, inline=inline)
        return ServedModel(version, model, batcher, load_seconds, inline)

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
