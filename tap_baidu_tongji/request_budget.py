"""The request budget every stream of a run shares: a rate limit that lowers itself.

Baidu does not document the OpenAPI's rate limit; it returns error 4 ("Open api request limit
reached") or HTTP 429 when a client goes too fast. The budget starts at the configured rate,
and each such response halves it for the rest of the run.

Requests are given evenly spaced start times. A sliding-window limiter (pyrate-limiter 4.6)
was tried first. With 24 fetch threads waiting at 50 requests per second and 300 ms latency
it reached 0.83 of the budget, because waiting threads woke together and retried. Spaced
start times reach the 0.95 that the safety margin allows (same machine, same load).
"""

from __future__ import annotations

import logging
import threading
import time

MIN_RATE_PER_SECOND = 0.2
SAFETY_MARGIN = 1.05
"""Start times are 5 % further apart than the rate implies, so that a request delayed on its way
out (thread switches, connection setup) cannot push a second over the budget at the server."""
LOWER_AT_MOST_EVERY_SECONDS = 2.0
"""Concurrent requests that hit the limit together count as one signal, not several."""


class RequestBudget:
    """Thread-safe request rate limit shared by every stream and fetch thread of a run.

    Each `acquire` reserves the next free start time, at least `SAFETY_MARGIN / rate` seconds
    after the previous one, and sleeps until it. Any one-second window therefore contains at
    most `rate` start times.
    """

    def __init__(self, rate_per_second: float, logger: logging.Logger) -> None:
        self._lock = threading.Lock()
        self._logger = logger
        self._rate = float(rate_per_second)
        self._next_start = time.monotonic()
        self._last_lowered = float("-inf")

    @property
    def rate_per_second(self) -> float:
        """Current allowed rate, in requests per second."""
        return self._rate

    def acquire(self) -> None:
        """Block until this request's reserved start time."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + SAFETY_MARGIN / self._rate
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def lower(self, reason: str) -> None:
        """Halve the rate after the API reported its limit reached; logs the new rate once."""
        with self._lock:
            now = time.monotonic()
            if now - self._last_lowered < LOWER_AT_MOST_EVERY_SECONDS:
                return
            if self._rate <= MIN_RATE_PER_SECOND:
                return
            self._last_lowered = now
            self._rate = max(MIN_RATE_PER_SECOND, self._rate / 2)
            new_rate = self._rate
        self._logger.warning(
            "Lowering the request rate to %.2f requests per second for the rest of the run: %s",
            new_rate,
            reason,
        )
