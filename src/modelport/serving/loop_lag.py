"""How late the event loop runs what is ready: the wait any queued request has before its
batch can even start, on top of the predict work ahead of it.

Under a flood of requests one turn of the loop reads and answers thousands of sockets
before it comes back to the batcher, so a request admitted on the model's predict cost
alone would miss its deadline anyway. A timer that should fire every ``INTERVAL_S``
measures how late it fires; the batcher adds that lag to a request's expected wait.
"""

from __future__ import annotations

import asyncio
import time

INTERVAL_S = 0.01
DECAY = 0.5
"""Weight of the newest sample: the estimate follows a flood (and its end) within a few
ticks."""


class LoopLag:
    """Seconds the event loop is currently behind (0 when it keeps up)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        """Begin measuring on the running loop (idempotent)."""
        if self._timer is None:
            self._arm(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = time.perf_counter() + INTERVAL_S
        self._timer = loop.call_later(INTERVAL_S, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        late = max(0.0, time.perf_counter() - self._due)
        self.seconds = DECAY * late + (1 - DECAY) * self.seconds
        self._arm(loop)
