"""Learned costs the batcher plans with: predict time per batch (``a·rows + b``) and the
rate at which rows arrive."""

from __future__ import annotations

DECAY = 0.95
"""Weight kept by past observations at each new one (about the last 20 batches count)."""


class BatchCost:
    """Exponentially weighted least squares of batch time against rows."""

    def __init__(self) -> None:
        self._w = self._n = self._t = self._nn = self._nt = 0.0
        self.observations = 0
        self.per_row = 0.0  # a, seconds
        self.fixed = 0.0  # b, seconds

    def observe(self, rows: int, seconds: float) -> None:
        d = DECAY
        self._w = self._w * d + 1.0
        self._n = self._n * d + rows
        self._t = self._t * d + seconds
        self._nn = self._nn * d + rows * rows
        self._nt = self._nt * d + rows * seconds
        self.observations += 1
        mean_n, mean_t = self._n / self._w, self._t / self._w
        variance = self._nn / self._w - mean_n * mean_n
        if variance > 1e-9 * max(1.0, mean_n * mean_n):
            slope = (self._nt / self._w - mean_n * mean_t) / variance
            self.per_row = max(0.0, slope)
            self.fixed = max(0.0, mean_t - self.per_row * mean_n)
        else:  # every recent batch had one size: keep the slope learned before
            self.fixed = max(0.0, mean_t - self.per_row * mean_n)

    @property
    def known(self) -> bool:
        return self.observations >= 3

    def estimate(self, rows: int) -> float:
        """Seconds one predict call on ``rows`` rows is expected to take."""
        return self.fixed + self.per_row * rows


class ArrivalRate:
    """Rows per second arriving, smoothed over recent arrivals."""

    def __init__(self) -> None:
        self._last = 0.0
        self.rows_per_s = 0.0

    def arrived(self, rows: int, now: float) -> None:
        if self._last:
            gap = max(now - self._last, 1e-6)
            self.rows_per_s = self.rows_per_s * 0.9 + (rows / gap) * 0.1
        self._last = now

    def expected(self, seconds: float, now: float) -> float:
        """Rows expected within ``seconds`` (none if the stream went quiet)."""
        if not self.rows_per_s or now - self._last > 1.0:
            return 0.0
        return self.rows_per_s * seconds
