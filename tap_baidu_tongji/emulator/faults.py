"""Fault switches of the emulator: injected failures and the open readings of the API.

A `FaultPlan` is read by every request while the server runs, so tests may change it at any
time. Counters and lists are guarded by the plan's lock, and plain flags are single
attribute writes.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from dataclasses import dataclass, field

# Endpoint names a `Failure` can target.
ENDPOINT_GET_DATA = "getData"
ENDPOINT_SITE_LIST = "getSiteList"
ENDPOINT_TOKEN = "token"  # noqa: S105 (an endpoint name, not a secret)
ENDPOINT_ANY = "any"
ENDPOINTS = (ENDPOINT_GET_DATA, ENDPOINT_SITE_LIST, ENDPOINT_TOKEN, ENDPOINT_ANY)

ERROR_MESSAGES: dict[int, str] = {
    1: "Unknown error",
    2: "Service temporarily unavailable",
    3: "Unsupported openapi method",
    4: "Open api request limit reached",
    5: "Unauthorized client IP address",
    6: "No permission to access user data",
    100: "Invalid parameter",
    110: "Access token invalid or no longer valid",
    111: "Access token expired",
}
"""Baidu OpenAPI gateway error codes and their exact `error_msg` texts."""

HTTP_FAULT_STATUSES = (429, 500, 502, 503)


class FailureKind(enum.Enum):
    """Effect of an injected failure on a matching request."""

    ERROR_CODE = "code"
    """Respond `{"error_code": N, "error_msg": …}` with `Failure.status` (200 by default)."""

    HTTP_STATUS = "http"
    """Respond `Failure.status` (429, 500, 502 or 503) with an HTML gateway page."""

    TIMEOUT = "timeout"
    """Sleep `Failure.delay_seconds`, then respond normally."""

    RESET = "reset"
    """Close the connection with a TCP reset and send nothing."""

    TRUNCATED = "truncated"
    """Send the first half of the normal JSON body, with a Content-Length that matches it."""


@dataclass
class Failure:
    """One injected failure and the requests it applies to.

    A request matches when it hits `endpoint` and every set filter (`method`, `site_id`,
    `start_date`) equals its parameter. Among matching requests, `nth` fires only on the
    nth one (1-based) and `first` fires on the first N ones. With neither set, every
    matching request fails.
    """

    kind: FailureKind
    error_code: int = 1
    status: int = 200
    delay_seconds: float = 0.0
    retry_after: str | None = None
    endpoint: str = ENDPOINT_GET_DATA
    method: str | None = None
    site_id: str | None = None
    start_date: str | None = None
    nth: int | None = None
    first: int | None = None
    matched: int = 0
    """Requests that matched the filters so far."""
    fired: int = 0
    """Requests that this failure changed so far."""

    def __post_init__(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"invalid endpoint {self.endpoint!r}: use one of {ENDPOINTS}")
        if self.kind is FailureKind.HTTP_STATUS and self.status == 200:
            self.status = 503
        if self.kind is FailureKind.HTTP_STATUS and self.status < 400:
            raise ValueError(f"invalid HTTP status {self.status} for an http failure: use 4xx/5xx")
        if self.nth is not None and self.nth < 1:
            raise ValueError(f"invalid nth {self.nth}: calls are counted from 1")
        if self.first is not None and self.first < 1:
            raise ValueError(f"invalid first {self.first}: give a count of at least 1")

    def _matches(self, endpoint: str, params: dict[str, str]) -> bool:
        if self.endpoint != ENDPOINT_ANY and self.endpoint != endpoint:
            return False
        if self.method is not None and params.get("method") != self.method:
            return False
        if self.site_id is not None and params.get("site_id") != self.site_id:
            return False
        return not (
            self.start_date is not None
            and params.get("start_date", "").replace("-", "") != self.start_date.replace("-", "")
        )

    @classmethod
    def parse(cls, spec: str) -> Failure:
        """Build a failure from a command-line spec such as `code=111,method=trend/time/a,first=2`.

        The kind is one of `code=N`, `http=STATUS`, `timeout=SECONDS`, `reset` or `truncated`.
        Other keys: `status`, `retry_after`, `endpoint`, `method`, `site`, `date`, `nth`, `first`.
        """
        values: dict[str, str] = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            key, _, value = part.partition("=")
            values[key.strip()] = value.strip()

        kinds = [k for k in ("code", "http", "timeout", "reset", "truncated") if k in values]
        if len(kinds) != 1:
            raise ValueError(
                f"invalid failure spec {spec!r}: name exactly one of code=N, http=STATUS, "
                "timeout=SECONDS, reset, truncated"
            )
        kind_name = kinds[0]
        failure = cls(kind=FailureKind(kind_name))
        if kind_name == "code":
            failure.error_code = int(values["code"])
        elif kind_name == "http":
            failure.status = int(values["http"])
        elif kind_name == "timeout":
            failure.delay_seconds = float(values["timeout"])

        if "status" in values:
            failure.status = int(values["status"])
        failure.retry_after = values.get("retry_after") or None
        failure.endpoint = values.get("endpoint", ENDPOINT_GET_DATA)
        failure.method = values.get("method") or None
        failure.site_id = values.get("site") or None
        failure.start_date = values.get("date") or None
        failure.nth = int(values["nth"]) if "nth" in values else None
        failure.first = int(values["first"]) if "first" in values else None
        unknown = set(values) - {
            "code", "http", "timeout", "reset", "truncated", "status", "retry_after",
            "endpoint", "method", "site", "date", "nth", "first",
        }  # fmt: skip
        if unknown:
            raise ValueError(f"invalid failure spec {spec!r}: unknown keys {sorted(unknown)}")
        failure.__post_init__()
        return failure


@dataclass
class FaultPlan:
    """Every fault switch of the emulator. All default to a well-behaved server."""

    failures: list[Failure] = field(default_factory=list)
    """Injected failures, checked in order; the first one that fires wins."""

    latency_seconds: float = 0.0
    """Fixed delay added to every request, for benchmarks."""

    rate_limit_per_second: int | None = None
    """Data calls allowed per rolling second; more are answered with error 4."""

    error_http_status: int = 200
    """HTTP status of data-call error bodies (110, 111, 6, 100, 3, 4) that no failure injected."""

    sticky_refresh_token: bool = False
    """A refresh returns the refresh token it was given, which stays valid."""

    drop_refresh_responses: int = 0
    """The next N refresh-token grants consume the token, then close without a response."""

    page_size_cap: int | None = None
    """Server-side maximum rows per page, applied below any `max_results`, `0` included."""

    ignore_max_results: bool = False
    """Return every row from `start_index` on, whatever `max_results` requests."""

    shuffle_metrics: bool = False
    """List metrics in `fields` in another order than requested (values follow `fields`)."""

    extra_cell_keys: bool = False
    """Add keys that no client knows to every dimension cell object."""

    raw_utf8: bool = False
    """Send raw UTF-8 JSON instead of PHP-style `\\/` and `\\uXXXX` escapes."""

    omit_offset: bool = False
    """Leave `offset` out of every result."""

    omit_total: bool = False
    """Leave `total` out of every result."""

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _recent_calls: deque[float] = field(default_factory=deque, repr=False, compare=False)

    def add_failure(self, failure: Failure) -> Failure:
        """Append a failure while the server runs and return it (its counters update live)."""
        with self.lock:
            self.failures.append(failure)
        return failure

    def clear_failures(self) -> None:
        """Remove every injected failure."""
        with self.lock:
            self.failures.clear()

    def take_failure(self, endpoint: str, params: dict[str, str]) -> Failure | None:
        """Count this request against every matching failure and return the one that fires."""
        chosen: Failure | None = None
        with self.lock:
            for failure in self.failures:
                if not failure._matches(endpoint, params):
                    continue
                failure.matched += 1
                if failure.nth is not None:
                    fires = failure.matched == failure.nth
                elif failure.first is not None:
                    fires = failure.matched <= failure.first
                else:
                    fires = True
                if fires and chosen is None:
                    failure.fired += 1
                    chosen = failure
        return chosen

    def take_refresh_drop(self) -> bool:
        """Return whether this refresh grant's response must be dropped, and count it."""
        with self.lock:
            if self.drop_refresh_responses > 0:
                self.drop_refresh_responses -= 1
                return True
            return False

    def admit_call(self) -> bool:
        """Record a data call for the rate limit and return False when the limit is exceeded."""
        limit = self.rate_limit_per_second
        if limit is None:
            return True
        now = time.monotonic()
        with self.lock:
            while self._recent_calls and now - self._recent_calls[0] >= 1.0:
                self._recent_calls.popleft()
            if len(self._recent_calls) >= limit:
                return False
            self._recent_calls.append(now)
            return True
