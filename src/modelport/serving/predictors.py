"""Where a version's predict calls run: on the event loop (tiny models), on one thread
beside it, or in worker processes (heavy models, several cores)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from modelport.runtimes.base import LoadedModel, Tensors
from modelport.serving.workers.pool import WorkerPool


class Predictor(Protocol):
    """Runs predict calls; at most ``slots`` at once."""

    slots: int
    mode: str

    async def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors: ...

    async def close(self) -> None: ...


class InlinePredictor:
    """On the event loop: cheaper than any hand-over for models that answer in
    microseconds."""

    slots = 1
    mode = "inline"

    def __init__(self, model: LoadedModel) -> None:
        self._model = model

    async def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        return self._model.predict(inputs, outputs)

    async def close(self) -> None:
        self._model.unload()


class ThreadPredictor:
    """On one thread beside the loop, which keeps reading requests meanwhile (and runs in
    parallel where the runtime releases the GIL)."""

    slots = 1
    mode = "thread"

    def __init__(self, model: LoadedModel) -> None:
        self._model = model
        self._executor = ThreadPoolExecutor(1, "modelport-predict")

    async def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._model.predict, inputs, outputs)

    async def close(self) -> None:
        self._executor.shutdown(wait=False)
        self._model.unload()


class ProcessPredictor:
    """In ``pool.count`` worker processes, one batch each at a time."""

    mode = "processes"

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.slots = pool.count

    async def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        return await self.pool.predict(inputs, outputs)

    async def close(self) -> None:
        await self.pool.close()
