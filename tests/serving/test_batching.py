"""The batcher: every caller gets exactly its own rows; a failing row set fails only its
own request; the batch delay waits only while more rows are expected; requests that cannot
meet their deadline are refused at once; a caller that disconnects leaves the queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import numpy as np
import pytest

from modelport.errors import InvalidInputError, UnavailableError
from modelport.runtimes.base import Tensors
from modelport.serving.batching import Batcher, BatchPolicy, QueueLimits
from modelport.serving.cost import BatchCost
from modelport.serving.loop_lag import LoopLag
from modelport.serving.predictors import ThreadPredictor
from modelport.types import Signature


class DoublingModel:
    """Doubles each row after ``seconds`` of work per call; refuses negative rows."""

    finite_inputs_only = True

    def __init__(self, seconds: float) -> None:
        self.signature = Signature()
        self.default_outputs = ["y"]
        self.seconds = seconds
        self.batches: list[int] = []

    def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        x = inputs["x"]
        self.batches.append(len(x))
        if (x < 0).any():
            raise ValueError("negative values are not allowed")
        time.sleep(self.seconds)
        return {"y": x * 2}

    def unload(self) -> None:
        pass


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


def batcher(model: DoublingModel, **policy: Any) -> Batcher:
    limits = QueueLimits(max_queue_rows=policy.pop("max_queue_rows", 8192), timeout_s=30)
    return Batcher(ThreadPredictor(model), BatchPolicy(**policy), batchable=True, limits=limits)


def test_callers_with_different_row_counts_get_their_own_rows_in_order() -> None:
    model = DoublingModel(0.02)

    async def scenario() -> list[Tensors]:
        b = batcher(model)
        inputs = [np.arange(n, dtype=float).reshape(n, 1) + 100 * n for n in (1, 3, 2, 5, 1, 4)]
        results = await asyncio.gather(*(b.submit({"x": x}, frozenset({"y"})) for x in inputs))
        await b.close()
        for x, result in zip(inputs, results, strict=True):
            assert np.array_equal(result["y"], x * 2)
        return results

    run(scenario())
    assert len(model.batches) < 6, model.batches  # callers shared predict calls
    assert sum(model.batches) == 16


def test_a_failing_row_set_fails_only_its_own_request() -> None:
    model = DoublingModel(0.01)

    async def scenario() -> list[Any]:
        b = batcher(model)
        rows = [np.ones((2, 1)), -np.ones((1, 1)), np.full((3, 1), 5.0)]
        first = b.submit({"x": np.zeros((1, 1))}, frozenset({"y"}))  # keeps the model busy
        calls = [b.submit({"x": x}, frozenset({"y"})) for x in rows]
        results = await asyncio.gather(first, *calls, return_exceptions=True)
        await b.close()
        return results

    _, good, bad, other = run(scenario())
    assert np.array_equal(good["y"], np.full((2, 1), 2.0))
    assert isinstance(bad, InvalidInputError) and "negative" in bad.message
    assert np.array_equal(other["y"], np.full((3, 1), 10.0))


def test_the_batch_delay_gathers_a_stream_of_requests() -> None:
    model = DoublingModel(0.0)

    async def scenario(delay_ms: float) -> None:
        b = batcher(model, max_batch_delay_s=delay_ms / 1000)
        calls = []
        for i in range(40):
            x = np.full((1, 1), float(i))
            calls.append(asyncio.ensure_future(b.submit({"x": x}, frozenset({"y"}))))
            await asyncio.sleep(0.002)
        results = await asyncio.gather(*calls)
        assert [float(r["y"][0, 0]) for r in results] == [2.0 * i for i in range(40)]
        await b.close()

    run(scenario(0))
    without_delay = len(model.batches)
    model.batches.clear()
    run(scenario(30))
    assert without_delay >= 35  # an idle model runs each request at once
    assert len(model.batches) <= 10, model.batches  # a 30 ms window gathers ~15 per batch


def test_a_lone_request_is_not_held_back_by_the_batch_delay() -> None:
    model = DoublingModel(0.0)

    async def scenario() -> float:
        b = batcher(model, max_batch_delay_s=0.5)
        for _ in range(3):  # learn that requests arrive rarely
            await b.submit({"x": np.ones((1, 1))}, frozenset({"y"}))
            await asyncio.sleep(1.1)
        started = time.perf_counter()
        await b.submit({"x": np.ones((1, 1))}, frozenset({"y"}))
        elapsed = time.perf_counter() - started
        await b.close()
        return elapsed

    assert run(scenario()) < 0.25  # far below the 500 ms window: nobody else was coming


def test_requests_that_cannot_meet_the_latency_target_are_refused_at_once() -> None:
    model = DoublingModel(0.02)

    async def scenario() -> tuple[list[Any], list[float]]:
        b = batcher(model, max_batch_size=1, latency_target_s=0.1)
        for _ in range(4):  # learn the cost: about 20 ms per call
            await b.submit({"x": np.ones((1, 1))}, frozenset({"y"}))
        waits: list[float] = []

        async def timed() -> Any:
            started = time.perf_counter()
            try:
                return await b.submit({"x": np.ones((1, 1))}, frozenset({"y"}))
            finally:
                waits.append(time.perf_counter() - started)

        results = await asyncio.gather(*(timed() for _ in range(30)), return_exceptions=True)
        await b.close()
        return results, waits

    results, waits = run(scenario())
    refused = [r for r in results if isinstance(r, UnavailableError)]
    answered = [r for r in results if isinstance(r, dict)]
    assert 2 <= len(answered) <= 8 and len(refused) == 30 - len(answered)
    assert all("deadline" in r.message and r.retry_after for r in refused)
    assert max(waits) < 0.25  # nobody waited much past the 100 ms target


def test_a_full_queue_refuses_with_retry_after() -> None:
    model = DoublingModel(0.05)

    async def scenario() -> list[Any]:
        b = batcher(model, max_batch_size=1, max_queue_rows=3)
        calls = [b.submit({"x": np.ones((1, 1))}, frozenset({"y"})) for _ in range(8)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        await b.close()
        return results

    results = run(scenario())
    refused = [r for r in results if isinstance(r, UnavailableError)]
    assert refused and all("overloaded" in r.message and r.retry_after == 1 for r in refused)
    assert sum(isinstance(r, dict) for r in results) >= 3


def test_a_disconnected_caller_leaves_the_queue_and_is_never_predicted() -> None:
    model = DoublingModel(0.05)

    async def scenario() -> None:
        b = batcher(model, max_batch_size=1)
        gone = asyncio.Event()

        async def client_gone() -> None:
            await gone.wait()

        busy = asyncio.ensure_future(b.submit({"x": np.ones((1, 1))}, frozenset({"y"})))
        await asyncio.sleep(0.01)  # the model is now busy: the next caller queues
        marked = np.full((7, 1), 42.0)
        waiting = asyncio.ensure_future(
            b.submit({"x": marked}, frozenset({"y"}), None, client_gone)
        )
        await asyncio.sleep(0.005)
        assert b.queued_rows == 7
        gone.set()
        with pytest.raises(UnavailableError, match="disconnected"):
            await waiting
        assert b.queued_rows == 0  # freed at once, not when the model gets to it
        await busy
        await b.close()

    run(scenario())
    assert 7 not in model.batches


def test_the_cost_model_learns_time_per_row_and_fixed_time() -> None:
    cost = BatchCost()
    for rows in (1, 8, 32, 4, 64, 16, 2, 128):
        cost.observe(rows, 0.001 + 0.00002 * rows)
    assert cost.known
    assert cost.per_row == pytest.approx(0.00002, rel=1e-3)
    assert cost.fixed == pytest.approx(0.001, rel=1e-3)
    assert cost.estimate(100) == pytest.approx(0.003, rel=1e-3)


def test_a_lagging_event_loop_counts_in_the_expected_wait() -> None:
    """A loop busy elsewhere (a flood of other requests) delays every queued batch: a
    request is refused at once when that lag alone would pass its deadline."""
    model = DoublingModel(0.001)

    async def scenario() -> tuple[float, str]:
        lag = LoopLag()
        lag.start()
        b = Batcher(ThreadPredictor(model), BatchPolicy(), True, QueueLimits(), lag)
        for _ in range(3):  # learn the (small) predict cost
            await b.submit({"x": np.ones((1, 1))}, frozenset({"y"}), timeout=1.0)
        assert b.admit(1, timeout=0.1)  # an idle loop: admitted
        loop = asyncio.get_running_loop()
        flood: list[asyncio.Handle] = []

        def busy_turn() -> None:  # every turn of the loop now takes 120 ms
            time.sleep(0.12)
            flood.append(loop.call_later(0.005, busy_turn))

        flood.append(loop.call_soon(busy_turn))
        for _ in range(5):
            await asyncio.sleep(0.01)
        measured = lag.seconds
        with pytest.raises(UnavailableError) as refused:
            b.admit(1, timeout=0.1)
        flood[-1].cancel()
        lag.stop()
        await b.close()
        return measured, refused.value.message

    measured, message = run(scenario())
    assert measured > 0.1
    assert "deadline" in message


def test_time_spent_waiting_to_be_read_counts_against_the_deadline() -> None:
    """A request parsed late (a flood defers parsing) has less of its timeout left: it
    expires when the rest runs out, and is refused at once when the rest cannot cover the
    work ahead of it."""
    model = DoublingModel(0.1)

    async def scenario() -> tuple[float, float, str, str]:
        b = batcher(model, max_batch_size=1)
        busy = asyncio.ensure_future(b.submit({"x": np.ones((1, 1))}, frozenset({"y"})))
        await asyncio.sleep(0.01)  # predicting for ~90 ms more; no cost learned yet
        started = time.perf_counter()
        item = b.enqueue({"x": np.ones((1, 1))}, frozenset({"y"}), 0.5, waited=0.45)
        await b.wait(item)
        waited = time.perf_counter() - started
        with pytest.raises(UnavailableError) as expired:
            item.future.result()
        await busy
        for _ in range(3):  # learn the cost: ~100 ms a call
            await b.submit({"x": np.ones((1, 1))}, frozenset({"y"}))
        assert b.admit(1, timeout=1.0, waited=0.1).seconds == pytest.approx(0.9)
        with pytest.raises(UnavailableError) as late:
            b.admit(1, timeout=1.0, waited=0.95)  # 50 ms left for a 100 ms predict
        await b.close()
        return item.deadline - item.enqueued, waited, expired.value.message, late.value.message

    deadline, waited, expired, late = run(scenario())
    assert deadline == pytest.approx(0.5)  # counted from when it was read
    assert waited < 0.09  # expired 50 ms after it was parsed, before the busy call ended
    assert "deadline" in expired
    assert "deadline" in late and "waited 950 ms to be read" in late


def test_unloading_fails_the_running_batch_and_refuses_new_rows() -> None:
    model = DoublingModel(0.3)

    async def scenario() -> tuple[float, str, str]:
        b = batcher(model)
        running = asyncio.ensure_future(b.submit({"x": np.ones((2, 1))}, frozenset({"y"})))
        while not model.batches:  # the batch is predicting
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        await b.close()
        with pytest.raises(UnavailableError) as failed:
            await running
        waited = time.perf_counter() - started
        with pytest.raises(UnavailableError) as refused:
            b.enqueue({"x": np.ones((1, 1))}, frozenset({"y"}))
        return waited, failed.value.message, refused.value.message

    waited, failed, refused = run(scenario())
    assert waited < 0.25  # answered at unload, not left to hang or wait for the predict
    assert "unloaded" in failed and "unloaded" in refused
