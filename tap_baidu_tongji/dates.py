"""The Beijing calendar: Tongji reports count days in Asia/Shanghai, whatever the host's zone."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")

DEFAULT_START_DAYS_BACK = 30

_DAY_LABEL = re.compile(r"^\s*(\d{4})[/-](\d{1,2})[/-](\d{1,2})\s*$")
_PERIOD_LABEL = re.compile(
    r"^\s*(\d{4})/(\d{1,2})/(\d{1,2})\s*-\s*(\d{4})/(\d{1,2})/(\d{1,2})\s*$",
)
_HOUR_LABEL = re.compile(r"^\s*(\d{1,2}):00\s*-\s*\d{1,2}:59\s*$")
_BEIJING_TIMESTAMP = re.compile(
    r"^\s*(\d{4})[/-](\d{1,2})[/-](\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?\s*$",
)


def beijing_now(now: dt.datetime | None = None) -> dt.datetime:
    """Return the current time (or `now`, which must be aware) in Asia/Shanghai."""
    moment = now if now is not None else dt.datetime.now(dt.timezone.utc)
    return moment.astimezone(BEIJING)


def beijing_today(now: dt.datetime | None = None) -> dt.date:
    """Return today's date in Asia/Shanghai."""
    return beijing_now(now).date()


def default_start_date(today: dt.date) -> dt.date:
    """Return the first day read when `start_date` is not set: 30 days before today."""
    return today - dt.timedelta(days=DEFAULT_START_DAYS_BACK)


def parse_setting_date(value: str, setting: str) -> dt.date:
    """Parse a `YYYY-MM-DD` setting value or raise ValueError naming the setting and the fix."""
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        msg = f"Invalid {setting} {value!r}: expected a date as YYYY-MM-DD, for example 2026-01-31."
        raise ValueError(msg) from None


def to_api_date(day: dt.date) -> str:
    """Format a day as the API's `YYYYMMDD` date parameter."""
    return day.strftime("%Y%m%d")


@dataclass(frozen=True)
class SyncWindow:
    """Inclusive range of Beijing days one partition reads in one run."""

    start: dt.date
    end: dt.date

    @property
    def day_count(self) -> int:
        """Number of days in the window, zero when it is empty."""
        return max(0, (self.end - self.start).days + 1)

    def days(self) -> Iterator[dt.date]:
        """Yield each day of the window, oldest first."""
        for offset in range(self.day_count):
            yield self.start + dt.timedelta(days=offset)


def last_readable_day(today: dt.date, *, include_today: bool) -> dt.date:
    """Return the newest day a sync may read: yesterday, or today when partial days are wanted."""
    return today if include_today else today - dt.timedelta(days=1)


def sync_window(
    *,
    start_date: dt.date,
    end_date: dt.date | None,
    bookmark: dt.date | None,
    lookback_days: int,
    today: dt.date,
    include_today: bool,
) -> SyncWindow:
    """Compute the days to read: from max(start_date, bookmark - lookback) to the last day.

    The last day is `end_date` when set, never later than yesterday (or today with
    `include_today`), because Tongji's numbers for the current day are still partial.
    The window is empty (`day_count == 0`) when there is nothing new to read.
    """
    start = start_date
    if bookmark is not None:
        start = max(start_date, bookmark - dt.timedelta(days=lookback_days))

    end = last_readable_day(today, include_today=include_today)
    if end_date is not None:
        end = min(end, end_date)

    return SyncWindow(start=start, end=end)


def parse_day_label(label: str) -> dt.date:
    """Parse a day label such as `2020/04/28` (the dimension cell of daily rows)."""
    match = _DAY_LABEL.match(label)
    if match is None:
        msg = f"not a day label of the form YYYY/MM/DD: {label!r}"
        raise ValueError(msg)
    year, month, day = (int(part) for part in match.groups())
    return dt.date(year, month, day)


def parse_period_label(label: str) -> tuple[dt.date, dt.date]:
    """Parse `YYYY/MM/DD - YYYY/MM/DD` (or a single day label) into its first and last day."""
    match = _PERIOD_LABEL.match(label)
    if match is None:
        day = parse_day_label(label)
        return day, day
    parts = [int(part) for part in match.groups()]
    return dt.date(*parts[:3]), dt.date(*parts[3:])


def parse_beijing_timestamp(text: str) -> dt.datetime:
    """Parse `YYYY/MM/DD HH:MM:SS` (Beijing time, as the API writes it) into an aware datetime."""
    match = _BEIJING_TIMESTAMP.match(text)
    if match is None:
        msg = f"not a timestamp of the form YYYY/MM/DD HH:MM:SS: {text!r}"
        raise ValueError(msg)
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=BEIJING)


def parse_hour_label(label: str) -> int:
    """Parse an hour bucket label such as `23:00 - 23:59` into its hour, 0 to 23."""
    match = _HOUR_LABEL.match(label)
    hour = int(match.group(1)) if match else -1
    if not 0 <= hour <= 23:
        msg = f"not an hour label of the form HH:00 - HH:59: {label!r}"
        raise ValueError(msg)
    return hour


def period_start(day: dt.date, gran: str) -> dt.date:
    """Return the first day of the week (Monday) or month that contains `day`.

    NOTE: the emulator's weeks run Monday to Sunday; no real weekly response was seen.
    """
    if gran == "week":
        return day - dt.timedelta(days=day.weekday())
    if gran == "month":
        return day.replace(day=1)
    return day
