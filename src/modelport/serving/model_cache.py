"""Loaded versions, kept in memory; concurrent first requests trigger a single load.

Loading a version means: verify and load its artifact, run a synthetic warm-up request
(so the first caller is not the slow one, and to time predict), choose where predict runs
(on the event loop, on a thread, or in worker processes) and start its batcher.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Histogram

from modelport.runtimes.base import LoadedModel
from modelport.runtimes.isolation import LoadedInWorkers
from modelport.runtimes.loader import load_version, model_path, synthetic_inputs
from modelport.runtimes.plugins import needs_isolation
from modelport.serving.batching import Batcher, BatchPolicy, QueueLimits
from modelport.serving.generation import GenerationScheduler, scheduler_for
from modelport.serving.heap import freeze_imports
from modelport.serving.loop_lag import LoopLag
from modelport.serving.predictors import (
    InlinePredictor,
    Predictor,
    ProcessPredictor,
    ThreadPredictor,
)
from modelport.serving.statistics import ModelStatistics
from modelport.serving.workers.pool import WorkerPool, WorkerSpec
from modelport.storage.artifacts import ArtifactStore
from modelport.types import Datatype, Signature, TensorSpec, VersionInfo

log = logging.getLogger(__name__)

INLINE_PREDICT_LIMIT_S = 0.002
"""Models whose one-row predict is faster than this run on the event loop: a thread hop
would cost more than the prediction itself."""

ONE_CORE_INLINE_LIMIT_S = 0.010
"""With a single usable core a predict thread runs nothing in parallel, and every hand-over
of the GIL between it and the event loop can wait a switch interval (5 ms): there, models
up to this one-row predict time run on the event loop too (measured with a 2-4 ms
HistGradientBoosting model at 128 connections: 4.8k req/s and p99 45-49 ms inline against
4.1-4.4k and 51-58 ms on a thread). Slower ones keep a thread, so that the loop stays
responsive while they predict."""

PROCESS_PREDICT_MIN_S = 0.005
"""With cores to spare, models whose one-row predict takes at least this long get worker
processes by default: the hand-over (~100 µs) is small beside the predict time."""

LOAD_SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class ServedModel:
    """One loaded version with its batcher."""

    version: VersionInfo
    batcher: Batcher
    finite_inputs_only: bool
    default_outputs: list[str]
    load_seconds: float
    predict_seconds: float | None
    stats: ModelStatistics = field(default_factory=ModelStatistics)
    pool: WorkerPool | None = None
    generation: GenerationScheduler | None = None
    """Text-generation models: the scheduler that batches their decoding steps."""
    short_path_requests: int = 0
    """Requests queued straight from their row matrix (``DataPlane.start_rows``)."""

    def __post_init__(self) -> None:
        self.default_output_set = frozenset(self.default_outputs)
        self.row_input = row_input_of(self.version.signature, self.default_outputs)
        """The one numeric ``[-1, n]`` input of a model answering one default output, or
        None: such models take the short path for row matrices (``DataPlane.start_rows``)."""

    @property
    def workers(self) -> int:
        """Predict processes (0: predict runs in the server process)."""
        return self.pool.count if self.pool is not None else 0

    @property
    def busy(self) -> bool:
        """Callers are queued or being answered."""
        return self.batcher.busy or (self.generation is not None and self.generation.busy)

    async def close(self) -> None:
        if self.generation is not None:
            await self.generation.close()
        await self.batcher.close()

    @property
    def footprint(self) -> int:
        """What the version counts for against the memory budget: one artifact's size per
        copy in memory."""
        return self.version.artifact_size * max(1, self.workers)


@dataclass(frozen=True)
class ServingDefaults:
    """Server-wide defaults for what a version's serving configuration leaves unset."""

    max_batch_size: int = 256
    workers: int | None = None  # None: chosen per model from its predict time
    server_processes: int = 1
    shared_arrays: Path | None = None
    """Where models' large arrays are kept as files that several processes map."""


@dataclass
class CacheCounters:
    loads: int = 0
    evictions: int = 0
    load_time: Histogram = field(
        default_factory=lambda: Histogram(
            "modelport_model_load_seconds",
            "Time to load a version: artifact check, load, warm-up, workers started",
            buckets=LOAD_SECONDS_BUCKETS,
            registry=None,
        )
    )

    def loaded(self, seconds: float) -> None:
        self.loads += 1
        self.load_time.observe(seconds)


def _serves(served: ServedModel, version: VersionInfo) -> bool:
    """Whether ``served`` was loaded from what ``version`` describes: the same object (the
    resolution cache hands it out) or, after the registry changed and references were
    resolved again, the same artifact and serving configuration. Then ``served`` takes the
    newer description, so that the next lookup is an identity check again (the short
    path for row matrices depends on it)."""
    if served.version is version:
        return True
    loaded = served.version
    if loaded.artifact_sha256 != version.artifact_sha256 or loaded.serving != version.serving:
        return False
    served.version = version
    return True


def row_input_of(signature: Signature, default_outputs: list[str]) -> TensorSpec | None:
    if len(signature.inputs) != 1 or len(default_outputs) != 1:
        return None
    spec = signature.inputs[0]
    numeric = spec.datatype not in (Datatype.BYTES, Datatype.BF16, Datatype.FP16)
    if numeric and len(spec.shape) == 2 and spec.shape[0] == -1 and spec.shape[1] > 0:
        return spec
    return None


def _is_batchable(signature: Signature) -> bool:
    """Rows of several callers can share one predict when every tensor has a free batch
    dimension first."""
    specs = [*signature.inputs, *signature.outputs]
    return bool(specs) and all(spec.shape and spec.shape[0] == -1 for spec in specs)


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def runs_inline(predict_seconds: float | None, cpus: int) -> bool:
    """Whether a version without worker processes predicts on the event loop (else on a
    thread): when its one-row predict (from the warm-up; None: unknown) is fast enough."""
    if predict_seconds is None:
        return False
    return predict_seconds < (ONE_CORE_INLINE_LIMIT_S if cpus < 2 else INLINE_PREDICT_LIMIT_S)


def default_workers(predict_seconds: float | None, cpus: int) -> int:
    """Worker processes for a model nobody configured: none for cheap models (the
    hand-over would dominate) or when no core is free beside the server's own."""
    if predict_seconds is None or predict_seconds < PROCESS_PREDICT_MIN_S or cpus < 2:
        return 0
    return min(cpus - 1, 8)


class ModelCache:
    """Maps ``(model, version)`` to a served model, loading on first use.

    With a memory budget, the least recently used versions are unloaded when a new one
    would not fit; pinned models (the default model) and versions with queued callers are
    never evicted. A version counts for its artifact's size once per copy in memory.
    """

    def __init__(
        self,
        artifacts: ArtifactStore,
        allow_pickle: bool,
        defaults: ServingDefaults | None = None,
        limits: QueueLimits | None = None,
        memory_limit_bytes: int | None = None,
        pinned: frozenset[str] = frozenset(),
    ) -> None:
        self._artifacts = artifacts
        self._allow_pickle = allow_pickle
        self._defaults = defaults or ServingDefaults()
        self._limits = limits or QueueLimits()
        self.loop_lag = LoopLag()
        self.memory_limit = memory_limit_bytes
        self._pinned = pinned
        self.counters = CacheCounters()
        self._served: OrderedDict[tuple[str, int], ServedModel] = OrderedDict()
        self._loading: dict[tuple[str, int], asyncio.Future[ServedModel]] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    def loaded(self) -> list[ServedModel]:
        return list(self._served.values())

    def is_loaded(self, name: str, version: int) -> bool:
        return (name, version) in self._served

    def find(self, name: str, version: int) -> ServedModel | None:
        return self._served.get((name, version))

    def current(self, version: VersionInfo) -> ServedModel | None:
        """The loaded model for exactly this resolution (the object the resolution cache
        hands out), or None: then ``get`` decides whether to load."""
        key = (version.model, version.version)
        served = self._served.get(key)
        if served is not None and _serves(served, version):
            self._served.move_to_end(key)
            return served
        return None

    async def get(self, version: VersionInfo) -> ServedModel:
        key = (version.model, version.version)
        served = self._served.get(key)
        if served is not None and _serves(served, version):
            self._served.move_to_end(key)
            return served
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ServedModel] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            served = await self._load(version)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved; waiters re-raise it
            raise
        finally:
            self._loading.pop(key, None)
        replaced = self._served.pop(key, None)
        self._served[key] = served
        if replaced is not None:  # its serving configuration changed: finish, then stop
            self._retire(replaced)
        self.counters.loaded(served.load_seconds)
        await self._make_room(keep=key)
        future.set_result(served)
        return served

    def memory_used(self) -> int:
        return sum(served.footprint for served in self._served.values())

    async def _make_room(self, keep: tuple[str, int]) -> None:
        """Unload least recently used versions until the budget holds (if it can)."""
        if self.memory_limit is None:
            return
        used = self.memory_used()
        for key in list(self._served):
            if used <= self.memory_limit:
                return
            served = self._served[key]
            if key == keep or key[0] in self._pinned or served.busy:
                continue
            del self._served[key]
            used -= served.footprint
            await served.close()
            self.counters.evictions += 1
            log.info("evicted %s@%d to stay within the memory budget", key[0], key[1])

    def _retire(self, served: ServedModel) -> None:
        async def retire() -> None:
            deadline = time.monotonic() + self._limits.timeout_s
            while served.busy and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # let its queued callers finish
            await served.close()

        task = asyncio.get_running_loop().create_task(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _load(self, version: VersionInfo) -> ServedModel:
        started = time.perf_counter()
        defaults = self._defaults
        share = defaults.shared_arrays if defaults.server_processes > 1 else None
        cpus = usable_cpus()
        path = await asyncio.to_thread(self._artifacts.verified_path, version.artifact_sha256)
        path = await asyncio.to_thread(
            model_path, path, version.format, self._artifacts.unpacked_dir
        )
        isolated = needs_isolation(version.format)  # the uploader's code: workers only
        model: LoadedModel = LoadedInWorkers(version.signature)
        predict_seconds: float | None = None
        config = version.serving
        generation = None
        if not isolated:
            model = await asyncio.to_thread(
                load_version, path, version, self._allow_pickle, share, cpus
            )
            generation = scheduler_for(model, config.max_batch_size)
            # A generation model's place is fixed (its scheduler drives it here), and each
            # of its predicts decodes tokens: one timing is enough to report.
            timings = 1 if generation is not None else 3
            predict_seconds = await asyncio.to_thread(self._warm_up, model, version, timings)
        workers = config.workers if config.workers is not None else defaults.workers
        if workers is None:
            workers = default_workers(predict_seconds, cpus)
        if isolated:
            workers = max(1, workers)
        if generation is not None:
            workers = 0  # its scheduler drives the model in this process
        pool = None
        if workers > 0:
            if workers > 1:
                share = defaults.shared_arrays
            threads = max(1, cpus // workers)
            spec = WorkerSpec(path, version, self._allow_pickle, threads, share)
            pool = WorkerPool(spec, workers)
            try:
                await pool.start()
            finally:
                await asyncio.to_thread(model.unload)  # the workers hold their own copies
            predictor: Predictor = ProcessPredictor(pool)
        elif runs_inline(predict_seconds, cpus):
            predictor = InlinePredictor(model)
        else:
            predictor = ThreadPredictor(model)
        policy = BatchPolicy(
            max_batch_size=config.max_batch_size or self._defaults.max_batch_size,
            max_batch_delay_s=config.max_batch_delay_ms / 1000,
            latency_target_s=config.latency_target_ms / 1000 if config.latency_target_ms else None,
        )
        self.loop_lag.start()
        batcher = Batcher(
            predictor, policy, _is_batchable(version.signature), self._limits, self.loop_lag
        )
        freeze_imports()  # the framework this load imported, if any
        load_seconds = time.perf_counter() - started
        log.info(
            "loaded %s@%d in %.1f ms (predict %s, %s)",
            version.model,
            version.version,
            load_seconds * 1000,
            f"{predict_seconds * 1e6:.0f} µs" if predict_seconds is not None else "untimed",
            f"{workers} worker processes" if workers else predictor.mode,
        )
        return ServedModel(
            version=version,
            batcher=batcher,
            finite_inputs_only=model.finite_inputs_only,
            default_outputs=list(model.default_outputs),
            load_seconds=load_seconds,
            predict_seconds=predict_seconds,
            pool=pool,
            generation=generation,
        )

    @staticmethod
    def _warm_up(model: LoadedModel, version: VersionInfo, timings: int = 3) -> float | None:
        """Run a synthetic request (so the first caller is not the slow one); the time of
        a one-row predict (the best of ``timings``: three where it decides where predict
        runs, as one noisy timing must not), or None when the model refuses synthetic
        input."""
        row = synthetic_inputs(version.signature)
        outputs = frozenset(model.default_outputs)
        measured = []
        try:
            model.predict(row, outputs)
            for _ in range(timings):
                started = time.perf_counter()
                model.predict(row, outputs)
                measured.append(time.perf_counter() - started)
        except Exception as exc:  # a model may refuse zeros; it is still servable
            log.warning("warm-up of %s@%d failed: %s", version.model, version.version, exc)
            return None
        return min(measured)

    async def unload(self, name: str, version: int | None = None) -> int:
        keys = [k for k in self._served if k[0] == name and version in (None, k[1])]
        for key in keys:
            served = self._served.pop(key)
            await served.close()
        return len(keys)

    async def close(self) -> None:
        self.loop_lag.stop()
        for task in list(self._retiring):
            task.cancel()
        for name, _ in list(self._served):
            await self.unload(name)
