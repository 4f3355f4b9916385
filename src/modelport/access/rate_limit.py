"""Requests per second per API key: a token bucket per key, refilled continuously, holding
at most one second of requests (so a key may burst to its rate, never beyond)."""

from __future__ import annotations

import math
import threading
import time

from modelport.errors import RateLimitedError
from modelport.types import Principal


class RateLimiter:
    """Refuses a key's request when its bucket is empty (429 with Retry-After)."""

    def __init__(self, default_rate: float | None) -> None:
        self._default = default_rate
        self._buckets: dict[int, tuple[float, float]] = {}  # key id -> (tokens, updated)
        self._lock = threading.Lock()

    def check(self, principal: Principal) -> None:
        rate = principal.rate_limit or self._default
        if rate is None or principal.key_id is None:
            return
        capacity = max(1.0, rate)
        now = time.monotonic()
        with self._lock:
            tokens, updated = self._buckets.get(principal.key_id, (capacity, now))
            tokens = min(capacity, tokens + (now - updated) * rate)
            if tokens < 1.0:
                self._buckets[principal.key_id] = (tokens, now)
                wait = (1.0 - tokens) / rate
                raise RateLimitedError(
                    f"key '{principal.name}' is over its rate limit of {rate:g} requests per "
                    f"second; retry in {wait:.2f} s",
                    retry_after=max(1, math.ceil(wait)),
                )
            self._buckets[principal.key_id] = (tokens - 1.0, now)
