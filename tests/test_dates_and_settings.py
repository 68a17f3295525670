"""The Beijing calendar, the sync window and the settings checks."""

from __future__ import annotations

import datetime as dt

import pytest

from tap_baidu_tongji.dates import (
    BEIJING,
    beijing_today,
    parse_beijing_timestamp,
    parse_period_label,
    sync_window,
)
from tap_baidu_tongji.settings import check_settings, parse_site_ids

TODAY = dt.date(2026, 3, 10)
VALID = {"client_id": "key", "client_secret": "secret", "refresh_token": "122.abc"}


@pytest.mark.parametrize(
    ("utc_moment", "expected"),
    [
        # 00:30 Beijing is 16:30 UTC of the day before.
        (dt.datetime(2026, 3, 9, 16, 30, tzinfo=dt.timezone.utc), dt.date(2026, 3, 10)),
        # 23:30 Beijing is 15:30 UTC of the same day.
        (dt.datetime(2026, 3, 10, 15, 30, tzinfo=dt.timezone.utc), dt.date(2026, 3, 10)),
    ],
)
def test_beijing_today_ignores_host_zone(utc_moment, expected):
    assert beijing_today(utc_moment) == expected


def test_window_without_bookmark_ends_yesterday():
    window = sync_window(
        start_date=dt.date(2026, 3, 1),
        end_date=None,
        bookmark=None,
        lookback_days=3,
        today=TODAY,
        include_today=False,
    )
    assert window.start == dt.date(2026, 3, 1)
    assert window.end == dt.date(2026, 3, 9)
    assert window.day_count == 9


def test_window_rereads_lookback_before_bookmark():
    window = sync_window(
        start_date=dt.date(2026, 1, 1),
        end_date=None,
        bookmark=dt.date(2026, 3, 8),
        lookback_days=3,
        today=TODAY,
        include_today=True,
    )
    assert window.start == dt.date(2026, 3, 5)
    assert window.end == TODAY


def test_window_start_date_is_a_floor():
    window = sync_window(
        start_date=dt.date(2026, 3, 7),
        end_date=dt.date(2026, 3, 8),
        bookmark=dt.date(2026, 3, 8),
        lookback_days=10,
        today=TODAY,
        include_today=False,
    )
    assert window.start == dt.date(2026, 3, 7)
    assert window.end == dt.date(2026, 3, 8)


def test_window_future_end_date_clamped():
    window = sync_window(
        start_date=dt.date(2026, 3, 9),
        end_date=dt.date(2027, 1, 1),
        bookmark=None,
        lookback_days=0,
        today=TODAY,
        include_today=False,
    )
    assert window.end == dt.date(2026, 3, 9)
    assert list(window.days()) == [dt.date(2026, 3, 9)]


def test_window_empty_when_up_to_date():
    window = sync_window(
        start_date=dt.date(2026, 3, 10),
        end_date=None,
        bookmark=None,
        lookback_days=0,
        today=TODAY,
        include_today=False,
    )
    assert window.day_count == 0
    assert list(window.days()) == []


def test_period_label_parses_both_ends():
    assert parse_period_label("2026/03/01 - 2026/03/22") == (
        dt.date(2026, 3, 1),
        dt.date(2026, 3, 22),
    )
    assert parse_period_label("2026/03/05") == (dt.date(2026, 3, 5), dt.date(2026, 3, 5))


def test_beijing_timestamp_is_aware():
    moment = parse_beijing_timestamp("2023/03/30 07:56:56")
    assert moment.tzinfo == BEIJING
    assert moment.isoformat() == "2023-03-30T07:56:56+08:00"


def test_valid_settings_have_no_errors():
    assert check_settings(VALID, today=TODAY) == []


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"client_id": ""}, "Missing client_id: set it to the API Key"),
        ({"client_secret": "  "}, "Missing client_secret: set it to the Secret Key"),
        (
            {"start_date": "2026-13-01"},
            "Invalid start_date '2026-13-01': expected a date as YYYY-MM-DD",
        ),
        ({"end_date": "03/01/2026"}, "Invalid end_date '03/01/2026'"),
        (
            {"start_date": "2026-03-05", "end_date": "2026-03-01"},
            "Invalid end_date 2026-03-01: it is before start_date 2026-03-05",
        ),
        ({"start_date": "2026-04-01"}, "Invalid start_date 2026-04-01: it is after today"),
        ({"lookback_days": -1}, "Invalid lookback_days -1: expected a whole number from 0 to 366."),
        ({"page_size": 0}, "Invalid page_size 0: expected a whole number from 1 to 10000."),
        ({"site_ids": ["123", "abc"]}, "Invalid site_ids entry 'abc'"),
        ({"api_url": "openapi.baidu.com"}, "Invalid api_url 'openapi.baidu.com'"),
        ({"refresh_token": ""}, "Invalid refresh_token: it is empty"),
    ],
)
def test_invalid_setting_names_value_and_fix(override, expected):
    errors = check_settings({**VALID, **override}, today=TODAY)

    assert len(errors) == 1
    assert errors[0].startswith(expected)


def test_site_ids_accept_numeric_strings():
    assert parse_site_ids(["16847648", 17960321, " 5 "]) == [16847648, 17960321, 5]
    assert parse_site_ids("1,2") == [1, 2]
    assert parse_site_ids(None) == []
