"""Progress lines for one stream and site: at the start, every few seconds, and at the end."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

PROGRESS_INTERVAL_SECONDS = 15.0


class SiteProgress:
    """Counts the days and records of one partition and logs them at INFO, without secrets."""

    def __init__(
        self,
        logger: logging.Logger,
        site_id: int,
        total_days: int,
        request_counter: Callable[[], int],
        *,
        interval_seconds: float = PROGRESS_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._site_id = site_id
        self._total_days = total_days
        self._request_counter = request_counter
        self._requests_at_start = request_counter()
        self._interval = interval_seconds
        self._clock = clock
        self._started = clock()
        self._last_logged = self._started
        self.days_read = 0
        self.records = 0

    def start(self, first_day: str, last_day: str) -> None:
        """Log what the partition is about to read."""
        self._logger.info(
            "Site %s: reading %d days, %s to %s.",
            self._site_id,
            self._total_days,
            first_day,
            last_day,
        )

    def days_done(self, record_count: int, day_count: int = 1) -> None:
        """Count complete days and their records; log a progress line when the interval passed."""
        self.days_read += day_count
        self.records += record_count
        now = self._clock()
        if now - self._last_logged < self._interval or self.days_read >= self._total_days:
            return
        self._last_logged = now
        elapsed = now - self._started
        remaining_days = self._total_days - self.days_read
        seconds_left = elapsed / self.days_read * remaining_days
        self._logger.info(
            "Site %s: %d of %d days read, %d requests, %d records, about %.0f s left.",
            self._site_id,
            self.days_read,
            self._total_days,
            self._requests(),
            self.records,
            seconds_left,
        )

    def finish(self) -> None:
        """Log the totals of the partition."""
        self._logger.info(
            "Site %s: done, %d days, %d requests, %d records in %.1f s.",
            self._site_id,
            self.days_read,
            self._requests(),
            self.records,
            self._clock() - self._started,
        )

    def _requests(self) -> int:
        return self._request_counter() - self._requests_at_start
