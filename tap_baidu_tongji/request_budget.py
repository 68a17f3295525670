"""The request budget every stream of a run shares: a rate limit that lowers itself.

Baidu does not document the OpenAPI's rate limit; it answers error 4 ("Open api request limit
reached") or HTTP 429 when a client goes too fast. The budget starts at the configured rate,
and each such answer halves it for the rest of the run.
"""

from __future__ import annotations

import logging
import threading
import time

from pyrate_limiter import Limiter, Rate

# pyrate-limiter logs each bucket it creates at INFO, which means nothing to a tap user.
logging.getLogger("pyrate_limiter").setLevel(logging.WARNING)

MIN_RATE_PER_SECOND = 0.2
MILLISECONDS_PER_SECOND = 1000
SAFETY_MARGIN = 1.05
"""Windows and spacing are 5 % longer than the rate implies, so that a request delayed on its
way out (thread switches, connection setup) cannot push a second over the budget."""
LOWER_AT_MOST_EVERY_SECONDS = 2.0
"""Concurrent requests that hit the limit together count as one signal, not several."""


def _limiter_for(rate_per_second: float) -> Limiter:
    """Build a limiter that allows `rate_per_second` requests on average, evenly spaced.

    The sliding window caps any window at the rate; the spacing keeps threads from sending
    a whole second's budget at once, so that network jitter cannot pack more than the
    budget into one second at the server.
    """
    second_ms = MILLISECONDS_PER_SECOND * SAFETY_MARGIN
    rates = [Rate(1, max(1, round(second_ms / rate_per_second)))]
    if rate_per_second >= 1:
        limit = int(rate_per_second)
        rates.append(Rate(limit, round(limit * second_ms / rate_per_second)))
    return Limiter(rates, buffer_ms=1)


class RequestBudget:
    """Thread-safe request rate limit shared by every stream and fetch thread of a run."""

    def __init__(self, rate_per_second: float, logger: logging.Logger) -> None:
        self._lock = threading.Lock()
        self._logger = logger
        self._rate = float(rate_per_second)
        self._limiter = _limiter_for(self._rate)
        self._last_lowered = float("-inf")

    @property
    def rate_per_second(self) -> float:
        """Current allowed rate, in requests per second."""
        return self._rate

    def acquire(self) -> None:
        """Block until one more request fits in the budget."""
        with self._lock:
            limiter = self._limiter
        limiter.try_acquire("tongji")

    def lower(self, reason: str) -> None:
        """Halve the rate after the API reported it reached; logs the new rate once."""
        with self._lock:
            now = time.monotonic()
            if now - self._last_lowered < LOWER_AT_MOST_EVERY_SECONDS:
                return
            if self._rate <= MIN_RATE_PER_SECOND:
                return
            self._last_lowered = now
            self._rate = max(MIN_RATE_PER_SECOND, self._rate / 2)
            self._limiter = _limiter_for(self._rate)
            new_rate = self._rate
        self._logger.warning(
            "Lowering the request rate to %.2f requests per second for the rest of the run: %s",
            new_rate,
            reason,
        )
