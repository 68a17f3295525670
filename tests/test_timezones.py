"""The sync window follows the Beijing calendar whatever the host's time zone and clock."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tap_baidu_tongji import dates
from tap_baidu_tongji.emulator import Emulator
from tap_baidu_tongji.tap import TapBaiduTongji
from tests.conftest import tap_config

BEIJING_DAY = dt.date(2026, 11, 10)


@pytest.fixture
def host_zone(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test with the process time zone set to the parameter."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if previous is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = previous
    time.tzset()


def selected_catalog(tap: TapBaiduTongji, streams: set[str]) -> dict:
    catalog = tap.catalog_dict
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in streams | {"sites"}
    return catalog


@pytest.mark.parametrize("host_zone", ["UTC", "America/Los_Angeles"], indirect=True)
@pytest.mark.parametrize("beijing_clock", [dt.time(0, 30), dt.time(23, 30)])
@pytest.mark.parametrize("include_today", [False, True])
def test_window_ends_on_beijing_day(
    host_zone: str,
    beijing_clock: dt.time,
    include_today: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    beijing_moment = dt.datetime.combine(BEIJING_DAY, beijing_clock, tzinfo=dates.BEIJING)
    monkeypatch.setattr(dates, "beijing_now", lambda now=None: beijing_moment)
    # At 00:30 Beijing time both host zones are still on the previous calendar day.
    host_day = time.localtime(beijing_moment.timestamp()).tm_mday
    assert host_day == (BEIJING_DAY.day - 1 if beijing_clock.hour == 0 else BEIJING_DAY.day)

    with Emulator(port=0, today=BEIJING_DAY) as emu:
        config = tap_config(
            emu,
            tmp_path,
            start_date="2026-11-07",
            include_today=include_today,
            max_concurrent_requests=1,
        )
        streams = {"visit_district", "overview_time_trend"}
        probe = TapBaiduTongji(config=config, parse_env_config=False)
        tap = TapBaiduTongji(
            config=config, catalog=selected_catalog(probe, streams), parse_env_config=False
        )
        tap.sync_all()
        requests_seen = emu.request_log

    lines = capsys.readouterr().out.splitlines()
    messages = [m for m in map(json.loads, filter(None, lines)) if m["type"] == "RECORD"]
    last_day = BEIJING_DAY if include_today else BEIJING_DAY - dt.timedelta(days=1)
    expected_days = {
        (dt.date(2026, 11, 7) + dt.timedelta(days=n)).isoformat()
        for n in range((last_day - dt.date(2026, 11, 7)).days + 1)
    }

    district = [m["record"] for m in messages if m.get("stream") == "visit_district"]
    assert {r["date"] for r in district} == expected_days
    requested_days = {
        dt.datetime.strptime(e.params["start_date"], "%Y%m%d").date().isoformat()
        for e in requests_seen
        if e.params.get("method") == "visit/district/a"
    }
    assert requested_days == expected_days

    trend_windows = {
        (e.params["start_date"], e.params["end_date"])
        for e in requests_seen
        if e.params.get("method") == "overview/getTimeTrendRpt"
    }
    assert trend_windows == {("20261107", last_day.strftime("%Y%m%d"))}
    trend_days = {m["record"]["date"] for m in messages if m.get("stream") == "overview_time_trend"}
    assert trend_days == expected_days
