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
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from modelport.errors import InvalidInputError, ModelPortError, UnavailableError
from modelport.runtimes.base import LoadedModel, Tensors
from modelport.serving.statistics import BatchStatistics

Outputs = Tensors


@dataclass
class _Pending:
    inputs: Tensors
    rows: int
    outputs: frozenset[str]
    future: asyncio.Future[Outputs]
    enqueued_ns: int


class Batcher:
    """Runs one model's predictions, batching concurrent callers."""

    def __init__(
        self,
        model: LoadedModel,
        max_batch_size: int,
        inline: bool,
        batchable: bool,
        limits: QueueLimits | None = None,
    ) -> None:
        self._model = model
        self._max_batch_size = max_batch_size if batchable else 1
        self._limits = limits or QueueLimits()
        self._queued_rows = 0
        self._inline = inline
        self._executor = None if inline else ThreadPoolExecutor(1, "modelport-predict")
        self._pending: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._running = False
        self.stats = BatchStatistics()

    async def submit(
        self, inputs: Tensors, outputs: frozenset[str], timeout: float | None = None
    ) -> Outputs:
        """Queue one caller's inputs; returns its outputs (its own rows only).

        A full queue refuses at once (503 with Retry-After), and a caller still waiting
        after ``timeout`` seconds (default: the server's) gets a 503 while its rows leave
        the queue, so an overloaded model keeps memory flat instead of growing a backlog.
        """
        loop = asyncio.get_running_loop()
        if self._worker is None:
            self._worker = loop.create_task(self._work())
        rows = len(next(iter(inputs.values()))) if inputs else 0
        if self._queued_rows and self._queued_rows + rows > self._limits.max_queue_rows:
            raise UnavailableError(
                f"the model is overloaded ({self._queued_rows} rows already queued); retry shortly",
                retry_after=1,
            )
        future: asyncio.Future[Outputs] = loop.create_future()
        self._pending.append(_Pending(inputs, rows, outputs, future, time.perf_counter_ns()))
        self._queued_rows += rows
        self._wakeup.set()
        seconds = timeout if timeout is not None else self._limits.timeout_s
        timer = loop.call_later(seconds, _expire, future, seconds)
        try:
            return await future
        finally:
            timer.cancel()

    @property
    def busy(self) -> bool:
        """Callers are queued or being served."""
        return self._queued_rows > 0 or self._running

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
                    self._running = True
                    try:
                        await self._run(batch)
                    finally:
                        self._running = False
                await asyncio.sleep(0)  # let the loop read requests that arrived meanwhile

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        rows = 0
        while self._pending:
            item = self._pending[0]
            if item.future.done():  # caller gave up (disconnect, timeout)
                self._pending.popleft()
                self._queued_rows -= item.rows
                continue
            if batch and rows + item.rows > self._max_batch_size:
                break
            batch.append(self._pending.popleft())
            self._queued_rows -= item.rows
            rows += item.rows
        return batch

    async def _predict(self, inputs: Tensors, outputs: frozenset[str]) -> Outputs:
        if self._executor is None:
            return self._model.predict(inputs, outputs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._model.predict, inputs, outputs)

    async def _run(self, batch: list[_Pending]) -> None:
        started = time.perf_counter_ns()
        for item in batch:
            self.stats.add_queue(started - item.enqueued_ns)
        if len(batch) == 1:
            await self._run_alone(batch[0])
            return
        outputs = frozenset().union(*(item.outputs for item in batch))
        names = batch[0].inputs.keys()
        inputs = {name: np.concatenate([item.inputs[name] for item in batch]) for name in names}
        total = sum(item.rows for item in batch)
        try:
            results = await self._predict(inputs, outputs)
            _check_rows(results, total)
        except Exception:
            for item in batch:  # isolate the caller whose rows fail
                await self._run_alone(item)
            return
        self.stats.add_batch(len(batch), total, time.perf_counter_ns() - started)
        start = 0
        for item in batch:
            end = start + item.rows
            if not item.future.done():
                item.future.set_result({name: results[name][start:end] for name in item.outputs})
            start = end

    async def _run_alone(self, item: _Pending) -> None:
        started = time.perf_counter_ns()
        try:
            results = await self._predict(item.inputs, item.outputs)
            if self._max_batch_size > 1:
                _check_rows(results, item.rows)
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(_as_domain_error(exc))
            return
        self.stats.add_batch(1, item.rows, time.perf_counter_ns() - started)
        if not item.future.done():
            item.future.set_result(results)


@dataclass(frozen=True)
class QueueLimits:
    """Backpressure: rows allowed to wait per model, and how long a caller waits."""

    max_queue_rows: int = 8192
    timeout_s: float = 30.0


def _expire(future: asyncio.Future[Outputs], seconds: float) -> None:
    if not future.done():
        future.set_exception(
            UnavailableError(
                f"no prediction within the {seconds:g}s request timeout (the model is "
                "busy); retry later",
                retry_after=1,
            )
        )


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
