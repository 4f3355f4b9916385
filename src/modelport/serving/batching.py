"""Opportunistic batching: callers queue rows; one worker runs everything queued as one
predict call and hands each caller exactly its own rows back, in order.

While a batch runs, new requests queue up; the next batch takes them all (up to
``max_batch_size`` rows), so batches grow with load and cost nothing at low load.
If a batch of several callers fails, each caller is retried alone so that only the
request that caused the failure fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from modelport.errors import InvalidInputError, ModelPortError, UnavailableError
from modelport.runtimes.base import LoadedModel

Outputs = dict[str, np.ndarray]


@dataclass
class _Pending:
    inputs: np.ndarray
    outputs: frozenset[str]
    future: asyncio.Future[Outputs]


class Batcher:
    """Runs one model's predictions, batching concurrent callers."""

    def __init__(self, model: LoadedModel, max_batch_size: int, inline: bool) -> None:
        self._model = model
        self._max_batch_size = max_batch_size
        self._inline = inline
        self._executor = None if inline else ThreadPoolExecutor(1, "modelport-predict")
        self._pending: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0
        self.rows = 0

    async def submit(self, inputs: np.ndarray, outputs: frozenset[str]) -> Outputs:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
        future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(inputs, outputs, future))
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(UnavailableError("the model was unloaded"))
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    async def _work(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._take_batch()
                if batch:
                    await self._run(batch)
                await asyncio.sleep(0)  # let the loop read requests that arrived meanwhile

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        rows = 0
        while self._pending:
            item = self._pending[0]
            if item.future.done():  # caller gave up (disconnect, timeout)
                self._pending.popleft()
                continue
            if batch and rows + len(item.inputs) > self._max_batch_size:
                break
            batch.append(self._pending.popleft())
            rows += len(item.inputs)
        return batch

    async def _predict(self, inputs: np.ndarray, outputs: frozenset[str]) -> Outputs:
        if self._executor is None:
            return self._model.predict(inputs, outputs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._model.predict, inputs, outputs)

    async def _run(self, batch: list[_Pending]) -> None:
        self.batches += 1
        self.rows += sum(len(item.inputs) for item in batch)
        if len(batch) == 1:
            await self._run_alone(batch[0])
            return
        outputs = frozenset().union(*(item.outputs for item in batch))
        inputs = np.concatenate([item.inputs for item in batch])
        try:
            results = await self._predict(inputs, outputs)
            _check_rows(results, len(inputs))
        except Exception:
            for item in batch:  # isolate the caller whose rows fail
                await self._run_alone(item)
            return
        start = 0
        for item in batch:
            end = start + len(item.inputs)
            if not item.future.done():
                item.future.set_result({name: results[name][start:end] for name in item.outputs})
            start = end

    async def _run_alone(self, item: _Pending) -> None:
        try:
            results = await self._predict(item.inputs, item.outputs)
            _check_rows(results, len(item.inputs))
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(_as_domain_error(exc))
            return
        if not item.future.done():
            item.future.set_result(results)


def _check_rows(results: Outputs, rows: int) -> None:
    for name, array in results.items():
        if array.shape[:1] != (rows,):
            raise UnavailableError(
                f"the model returned {array.shape[:1]} rows for output '{name}', expected {rows}"
            )


def _as_domain_error(exc: Exception) -> ModelPortError:
    if isinstance(exc, ModelPortError):
        return exc
    if isinstance(exc, ValueError | TypeError | IndexError):
        return InvalidInputError(f"the model rejected the input: {exc}")
    return UnavailableError(f"the model failed while predicting ({type(exc).__name__})")
