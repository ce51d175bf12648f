"""Token buckets per agent: one runaway or hostile host cannot starve the others.

A bucket holds up to `burst` tokens and refills at `rate` per second; each call
takes one. A host that reconnects after an outage may drain its spool in a burst,
but cannot keep up more than `rate` calls per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Buckets kept before full (idle) ones are forgotten: without TLS a caller could
# otherwise grow the table with made-up host ids.
MAX_KEYS = 10_000


class TokenBuckets:
    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> bool:
        """Takes a token from `key`'s bucket; False (and nothing taken) when it is empty."""
        now = self._clock()
        tokens = self._tokens(key, now)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > MAX_KEYS:
            self._forget_idle(now)
        return True

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k in self._buckets if self._tokens(k, now) >= self.burst]:
            del self._buckets[key]
