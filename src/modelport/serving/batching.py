"""Adaptive batching: callers queue rows; each predict call takes everything queued (up to
``max_batch_size`` rows) and hands every caller exactly its own rows back, in order.

While the model is busy new requests queue, so batches grow with load and cost nothing at
low load. With ``max_batch_delay_ms`` an idle model may also hold the first request back a
little, but only while that pays: more rows are expected before the delay ends, and the
batch still finishes before the oldest caller's deadline (both from learned costs:
predict time ≈ a·rows + b, and the arrival rate). A request that cannot be answered within
its deadline (its timeout, or the version's latency target; the event loop's current lag
counts too) is refused at once with a 503 rather than left to grow the queue. If a batch of
several callers fails, each caller is retried alone so that only the request that caused
the failure fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from modelport.errors import ModelPortError, UnavailableError
from modelport.runtimes.base import Tensors
from modelport.serving.cost import ArrivalRate, BatchCost
from modelport.serving.failures import as_domain_error
from modelport.serving.loop_lag import LoopLag
from modelport.serving.predictors import Predictor
from modelport.serving.statistics import BatchStatistics

Outputs = Tensors
ClientGone = Callable[[], Coroutine[Any, Any, None]]
"""Completes when the caller's connection closes."""

WATCH_AFTER_S = 0.05
"""Callers expected to wait longer than this are watched for disconnecting (a task each;
shorter waits are not worth it)."""


GATHER_ROUNDS = 4
"""Event-loop turns a batch waits at most for requests already arriving."""
GATHER_ROUND_LIMIT_S = 0.002
"""No further turn once one took longer than this."""


class Admission(NamedTuple):
    """A request the queue takes: its deadline (seconds from now) and expected wait."""

    seconds: float
    expected: float


@dataclass(frozen=True)
class QueueLimits:
    """Backpressure: rows allowed to wait per model, and how long a caller waits."""

    max_queue_rows: int = 8192
    timeout_s: float = 30.0


@dataclass(frozen=True)
class BatchPolicy:
    """How one version batches (from its serving configuration)."""

    max_batch_size: int = 256
    max_batch_delay_s: float = 0.0
    latency_target_s: float | None = None


@dataclass(eq=False)
class Pending:
    """One caller's queued request."""

    inputs: Tensors
    rows: int
    outputs: frozenset[str]
    future: asyncio.Future[Outputs]
    enqueued: float
    deadline: float
    queued: bool = True
    worth_watching: bool = False
    """Expected to wait long enough that its client's disconnect is worth watching for."""


class Batcher:
    """Runs one version's predictions, batching concurrent callers."""

    def __init__(
        self,
        predictor: Predictor,
        policy: BatchPolicy,
        batchable: bool,
        limits: QueueLimits | None = None,
        loop_lag: LoopLag | None = None,
    ) -> None:
        self._predictor = predictor
        self._loop_lag = loop_lag
        self.policy = policy
        self._max_rows = policy.max_batch_size if batchable else 1
        self._limits = limits or QueueLimits()
        self._slots = max(1, predictor.slots)
        self._pending: deque[Pending] = deque()
        self._queued_rows = 0
        self._running = 0
        self._busy_until = 0.0
        self._wakeup = asyncio.Event()
        self._expiring: deque[Pending] = deque()
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._worker: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self.cost = BatchCost()
        self.arrivals = ArrivalRate()
        self.stats = BatchStatistics()
        self.shed = 0
        self._closed = False

    @property
    def mode(self) -> str:
        return self._predictor.mode

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    @property
    def running_batches(self) -> int:
        return self._running

    @property
    def busy(self) -> bool:
        """Callers are queued or being served."""
        return self._queued_rows > 0 or self._running > 0

    async def submit(
        self,
        inputs: Tensors,
        outputs: frozenset[str],
        timeout: float | None = None,
        client_gone: ClientGone | None = None,
        waited: float = 0.0,
    ) -> Outputs:
        """Queue one caller's inputs; returns its outputs (its own rows only).

        Refused at once (503 with Retry-After) when the queue is full or the request could
        not be answered before its deadline. A caller still waiting at its deadline gets a
        503 and its rows leave the queue; so do the rows of a caller that disconnects
        while it waits for long. ``waited``: seconds the request already spent in the
        server before it was parsed; they count against its deadline.
        """
        item = self.enqueue(inputs, outputs, timeout, waited=waited)
        await self.wait(item, client_gone)
        return item.future.result()

    def enqueue(
        self,
        inputs: Tensors,
        outputs: frozenset[str],
        timeout: float | None = None,
        admission: Admission | None = None,
        waited: float = 0.0,
    ) -> Pending:
        """``submit`` without waiting: the queued request, whose ``future`` completes with
        its outputs (or its error). Refused at once as ``submit`` is; ``admission`` is what
        ``admit`` said of this very request, when asked already."""
        if self._closed:
            raise UnavailableError("the model was unloaded; retry", retry_after=1)
        loop = asyncio.get_running_loop()
        if self._worker is None:
            self._worker = loop.create_task(self._work())
        rows = len(next(iter(inputs.values()))) if inputs else 0
        now = time.perf_counter()
        if self.policy.max_batch_delay_s:
            self.arrivals.arrived(rows, now)
        seconds, expected = admission or self.admit(rows, timeout, now, waited)
        item = Pending(inputs, rows, outputs, loop.create_future(), now - waited, now + seconds)
        item.worth_watching = self.busy and (expected > WATCH_AFTER_S or not self.cost.known)
        self._pending.append(item)
        self._queued_rows += rows
        self._wakeup.set()
        self._watch_deadline(item, seconds, loop)
        return item

    async def wait(self, item: Pending, client_gone: ClientGone | None = None) -> None:
        """Until ``item`` is answered (read its ``future`` then); if the caller was
        expected to wait long, its rows leave the queue when ``client_gone`` completes."""
        if client_gone is None or not item.worth_watching:
            with contextlib.suppress(ModelPortError):
                await item.future
            return
        watch = asyncio.get_running_loop().create_task(client_gone())
        watch.add_done_callback(lambda _: self.abandon(item))
        try:
            with contextlib.suppress(ModelPortError):
                await item.future
        finally:
            if not watch.done():
                watch.cancel()

    def admit(
        self, rows: int, timeout: float | None = None, now: float | None = None, waited: float = 0.0
    ) -> Admission:
        """Refuse (503 with Retry-After) a request of ``rows`` rows that the queue has no
        room for or that could not be answered before its deadline (``waited`` seconds of
        it are gone already); else the seconds left to its deadline and its expected wait.
        Cheap enough to ask before decoding a body."""
        if self._queued_rows and self._queued_rows + rows > self._limits.max_queue_rows:
            self.shed += 1
            raise UnavailableError(
                f"the model is overloaded ({self._queued_rows} rows already queued); retry shortly",
                retry_after=1,
            )
        seconds = timeout if timeout is not None else self._limits.timeout_s
        target = self.policy.latency_target_s
        if target is not None and target < seconds:
            seconds = target
        expected = self._expected_wait(rows, time.perf_counter() if now is None else now)
        if expected + waited > seconds:
            self.shed += 1
            raise UnavailableError(
                f"the model cannot answer within this request's deadline ({seconds * 1000:g} "
                f"ms: its timeout or the model's latency target); about "
                f"{expected * 1000:.0f} ms of work is ahead of it"
                + (f" and it waited {waited * 1000:.0f} ms to be read" if waited else "")
                + "; retry shortly",
                retry_after=max(1, math.ceil(expected + waited - seconds)),
            )
        return Admission(seconds - waited, expected)

    def _watch_deadline(
        self, item: Pending, seconds: float, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Expire ``item`` at its deadline, ``seconds`` from now. Deadlines mostly grow in
        arrival order, so one timer (for the oldest) serves every such request; an earlier
        one gets its own."""
        if self._expiring and item.deadline < self._expiring[-1].deadline:
            loop.call_later(seconds, self._expire, item)
            return
        self._expiring.append(item)
        if self._expiry_timer is None:
            self._expiry_timer = loop.call_later(seconds, self._sweep)

    def _sweep(self) -> None:
        """Expire every request past its deadline; arm the timer for the next one."""
        self._expiry_timer = None
        expiring, now = self._expiring, time.perf_counter()
        while expiring and (expiring[0].future.done() or expiring[0].deadline <= now):
            self._expire(expiring.popleft())
        if expiring:
            delay = expiring[0].deadline - now
            self._expiry_timer = asyncio.get_running_loop().call_later(delay, self._sweep)

    def _forget_finished(self) -> None:
        expiring = self._expiring
        while expiring and expiring[0].future.done():
            expiring.popleft()

    def _expire(self, item: Pending) -> None:
        if item.future.done():
            return
        self._leave_queue(item)
        seconds = item.deadline - item.enqueued
        item.future.set_exception(
            UnavailableError(
                f"no prediction within this request's deadline ({seconds * 1000:g} ms: its "
                "timeout or the model's latency target); the model is busy, retry later",
                retry_after=1,
            )
        )

    def abandon(self, item: Pending) -> None:
        """The caller is gone: its rows leave the queue (a running batch still runs)."""
        if not item.future.done():
            self._leave_queue(item)
            item.future.set_exception(UnavailableError("the client disconnected"))

    def _leave_queue(self, item: Pending) -> None:
        if item.queued:
            item.queued = False
            self._queued_rows -= item.rows

    def _expected_wait(self, rows: int, now: float) -> float:
        """Seconds until a new request of ``rows`` rows would be answered (0: unknown)."""
        if not self.cost.known:
            return 0.0
        ahead = self._queued_rows + rows
        # A request is never split: batches hold whole requests, at least one each.
        batches = min(math.ceil(ahead / self._max_rows), len(self._pending) + 1)
        work = self.cost.per_row * ahead + self.cost.fixed * batches
        in_progress = max(0.0, self._busy_until - now) if self._running else 0.0
        lag = self._loop_lag.seconds if self._loop_lag is not None else 0.0
        # Late turns delay it twice: before its batch starts, and before its answer is
        # written (a batch's callers are answered on the loop's next turn).
        return 2 * lag + in_progress + work / self._slots

    async def close(self) -> None:
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for task in list(self._batches):
            task.cancel()
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(UnavailableError("the model was unloaded"))
        await self._predictor.close()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending or self._running >= self._slots:
                await self._wakeup.wait()
                self._wakeup.clear()
                continue
            hold = self._hold_for(time.perf_counter())
            if hold > 0:
                timer = loop.call_later(hold, self._wakeup.set)
                await self._wakeup.wait()
                self._wakeup.clear()
                timer.cancel()
                continue
            await self._gather_arrived()
            batch = self._take_batch()
            if not batch:
                continue
            self._running += 1
            if self._slots == 1:
                await self._run(batch)
                self._running -= 1
                self._forget_finished()
                await asyncio.sleep(0)  # let the loop read requests that arrived meanwhile
            else:
                task = loop.create_task(self._run(batch))
                self._batches.add(task)
                task.add_done_callback(self._batch_done)

    async def _gather_arrived(self) -> None:
        """Let the event loop run before a batch is taken, while that brings more rows:
        requests whose bytes have already arrived are read and queued, and join this batch
        instead of waiting a whole predict for the next one."""
        if self._queued_rows >= self._max_rows or self._loop_late():
            return  # a full batch waits already, or a turn is long: it would only delay it
        for _ in range(GATHER_ROUNDS):
            queued, started = self._queued_rows, time.perf_counter()
            await asyncio.sleep(0)
            if self._queued_rows == queued or self._queued_rows >= self._max_rows:
                return
            if time.perf_counter() - started > GATHER_ROUND_LIMIT_S:
                return  # a busy loop: another turn would delay the queued callers

    def _loop_late(self) -> bool:
        lag = self._loop_lag
        return lag is not None and lag.seconds > GATHER_ROUND_LIMIT_S

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        self._running -= 1
        self._forget_finished()
        self._wakeup.set()

    def _hold_for(self, now: float) -> float:
        """Seconds to keep an idle model waiting for more rows; 0 to run now."""
        delay = self.policy.max_batch_delay_s
        if delay <= 0 or self._queued_rows >= self._max_rows:
            return 0.0
        oldest = next((p for p in self._pending if not p.future.done()), None)
        if oldest is None:
            return 0.0
        remaining = min(
            oldest.enqueued + delay - now,
            oldest.deadline - now - self.cost.estimate(self._queued_rows + 1),
        )
        if remaining <= 0 or self.arrivals.expected(remaining, now) < 1.0:
            return 0.0  # nobody else is coming in time: waiting would only add latency
        return remaining

    def _take_batch(self) -> list[Pending]:
        batch: list[Pending] = []
        rows = 0
        while self._pending:
            item = self._pending[0]
            if item.future.done():  # caller gave up (disconnect, timeout)
                self._pending.popleft()
                continue
            if batch and rows + item.rows > self._max_rows:
                break
            batch.append(self._pending.popleft())
            self._leave_queue(item)
            rows += item.rows
        return batch

    async def _run(self, batch: list[Pending]) -> None:
        try:
            await self._run_batch(batch)
        except asyncio.CancelledError:  # unloaded while predicting: nobody is left hanging
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(UnavailableError("the model was unloaded"))
            raise

    async def _run_batch(self, batch: list[Pending]) -> None:
        started = time.perf_counter()
        total = sum(item.rows for item in batch)
        self._busy_until = started + self.cost.estimate(total)
        for item in batch:
            self.stats.add_queue(int((started - item.enqueued) * 1e9))
        if len(batch) == 1:
            await self._run_alone(batch[0])
            return
        outputs = frozenset().union(*(item.outputs for item in batch))
        names = batch[0].inputs.keys()
        inputs = {name: np.concatenate([item.inputs[name] for item in batch]) for name in names}
        try:
            results = await self._predictor.predict(inputs, outputs)
            _check_rows(results, total)
        except Exception:
            for item in batch:  # isolate the caller whose rows fail
                await self._run_alone(item)
            return
        self._observe(len(batch), total, started)
        start = 0
        only = next(iter(outputs)) if len(outputs) == 1 else None
        for item in batch:
            end = start + item.rows
            if not item.future.done():
                if only is not None:  # the usual case: one output, asked by every caller
                    item.future.set_result({only: results[only][start:end]})
                else:
                    item.future.set_result({n: results[n][start:end] for n in item.outputs})
            start = end

    async def _run_alone(self, item: Pending) -> None:
        if item.future.done():
            return
        started = time.perf_counter()
        try:
            results = await self._predictor.predict(item.inputs, item.outputs)
            if self._max_rows > 1:
                _check_rows(results, item.rows)
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(as_domain_error(exc))
            return
        self._observe(1, item.rows, started)
        if not item.future.done():
            item.future.set_result(results)

    def _observe(self, callers: int, rows: int, started: float) -> None:
        seconds = time.perf_counter() - started
        self.cost.observe(rows, seconds)
        self.stats.add_batch(callers, rows, int(seconds * 1e9))


def _check_rows(results: Outputs, rows: int) -> None:
    for name, array in results.items():
        if array.shape[:1] != (rows,):
            raise UnavailableError(
                f"the model returned {array.shape[:1]} rows for output '{name}', expected {rows}"
            )
