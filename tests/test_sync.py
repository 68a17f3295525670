"""Incremental sync through the real CLI against the emulator over loopback HTTP."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from tap_baidu_tongji.emulator import Emulator
from tests.conftest import catalog_selecting, run_tap_cli, tap_config

STREAMS = {"overview_time_trend", "trend_time", "visit_district", "overview_common_track"}


def data_requests(emu: Emulator, method: str) -> list[dict[str, str]]:
    return [
        entry.params
        for entry in emu.request_log
        if entry.path.endswith("/report/getData") and entry.params.get("method") == method
    ]


def refresh_count(emu: Emulator) -> int:
    return sum(1 for entry in emu.request_log if entry.grant_type == "refresh_token")


def bookmarks(state: dict[str, Any], stream: str) -> dict[int, str]:
    partitions = state["bookmarks"][stream]["partitions"]
    return {p["context"]["site_id"]: p["replication_key_value"] for p in partitions}


def expected_rows(emu: Emulator, method: str, site_id: int, day: dt.date) -> dict[str, Any]:
    """Ask the emulator directly for one day of a report, all rows on one page."""
    token = requests.post(
        emu.url + "/oauth/2.0/token",
        data={
            "grant_type": "authorization_code",
            "code": emu.issue_authorization_code(),
            "redirect_uri": "oob",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        },
        timeout=10,
    ).json()["access_token"]
    api_day = day.strftime("%Y%m%d")
    response = requests.get(
        emu.url + "/rest/2.0/tongji/report/getData",
        params={
            "access_token": token,
            "site_id": site_id,
            "method": method,
            "start_date": api_day,
            "end_date": api_day,
            "metrics": "pv_count,visitor_count",
            "max_results": 0,
        },
        timeout=10,
    )
    return response.json()["result"]  # type: ignore[no-any-return]


def test_first_run_reads_window_with_exact_values(emulator: Emulator, tmp_path: Path):
    config = tap_config(emulator, tmp_path, start_date="2026-11-01", end_date="2026-11-05")
    catalog = catalog_selecting(tmp_path, config, STREAMS)

    run = run_tap_cli(config, tmp_path, catalog=catalog)

    assert run.returncode == 0, run.stderr[-3000:]
    site_ids = [int(site["site_id"]) for site in emulator.sites]
    assert set(run.records) == STREAMS | {"sites"}
    assert len(run.records["overview_time_trend"]) == 5 * len(site_ids)
    assert len(run.records["trend_time"]) == 5 * len(site_ids)
    for stream in STREAMS:
        assert bookmarks(run.final_state, stream) == dict.fromkeys(site_ids, "2026-11-05")

    site_id = site_ids[0]
    day = dt.date(2026, 11, 3)
    expected = expected_rows(emulator, "visit/district/a", site_id, day)
    got = [
        r
        for r in run.records["visit_district"]
        if r["site_id"] == site_id and r["date"] == "2026-11-03"
    ]
    assert len(got) == expected["total"]
    first_cell = expected["items"][0][0][0]
    first_values = dict(zip(expected["fields"][1:], expected["items"][1][0], strict=True))
    (match,) = [r for r in got if r["name"] == first_cell["name"]]
    assert match["area"] == first_cell["area"]
    expected_pv = first_values["pv_count"]
    assert match["pv_count"] == (None if expected_pv == "--" else int(expected_pv))


def test_records_emitted_oldest_first(emulator: Emulator, tmp_path: Path):
    config = tap_config(emulator, tmp_path, start_date="2026-11-01", end_date="2026-11-06")
    catalog = catalog_selecting(tmp_path, config, {"trend_time", "visit_district"})

    run = run_tap_cli(config, tmp_path, catalog=catalog)

    assert run.returncode == 0, run.stderr[-3000:]
    for stream in ("trend_time", "visit_district"):
        per_site: dict[int, list[str]] = {}
        for record in run.records[stream]:
            per_site.setdefault(record["site_id"], []).append(record["date"])
        for dates in per_site.values():
            assert dates == sorted(dates)


def test_second_run_reads_only_lookback_and_new_days(emulator: Emulator, tmp_path: Path):
    config = tap_config(emulator, tmp_path, start_date="2026-10-20", end_date="2026-11-05")
    catalog = catalog_selecting(tmp_path, config, {"overview_time_trend", "visit_district"})
    first = run_tap_cli(config, tmp_path, catalog=catalog)
    assert first.returncode == 0, first.stderr[-3000:]
    emulator.clear_request_log()

    later = {**config, "end_date": "2026-11-08"}
    second = run_tap_cli(later, tmp_path, catalog=catalog, state=first.final_state)

    assert second.returncode == 0, second.stderr[-3000:]
    district_days = Counter(p["start_date"] for p in data_requests(emulator, "visit/district/a"))
    site_count = len(emulator.sites)
    assert sorted(district_days) == [f"202611{d:02d}" for d in range(2, 9)]
    assert set(district_days.values()) == {site_count}
    trend = data_requests(emulator, "overview/getTimeTrendRpt")
    assert {(p["start_date"], p["end_date"]) for p in trend} == {("20261102", "20261108")}
    assert len(trend) == site_count
    assert len(data_requests(emulator, "config/getSiteList")) == 0
    site_lists = [e for e in emulator.request_log if e.path.endswith("/config/getSiteList")]
    assert len(site_lists) == 1


def test_empty_days_move_bookmark(tmp_path: Path):
    sites = [
        {
            "site_id": 20000001,
            "domain": "new.example.com",
            "status": 0,
            "create_time": "2026-11-04 10:00:00",
            "sub_dir_list": [],
        }
    ]
    with Emulator(port=0, sites=sites) as emu:
        config = tap_config(emu, tmp_path, start_date="2026-10-01", end_date="2026-11-05")
        catalog = catalog_selecting(tmp_path, config, {"visit_district"})
        first = run_tap_cli(config, tmp_path, catalog=catalog)
        assert first.returncode == 0, first.stderr[-3000:]
        dates = {r["date"] for r in first.records.get("visit_district", [])}
        assert "2026-10-01" not in dates
        assert bookmarks(first.final_state, "visit_district") == {20000001: "2026-11-05"}

        emu.clear_request_log()
        quiet = {**config, "lookback_days": 0}
        second = run_tap_cli(quiet, tmp_path, catalog=catalog, state=first.final_state)

        assert second.returncode == 0, second.stderr[-3000:]
        requested = [p["start_date"] for p in data_requests(emu, "visit/district/a")]
        assert requested == ["20261105"]


def test_new_site_starts_at_start_date(tmp_path: Path):
    first_site = {
        "site_id": 30000001,
        "domain": "a.example.com",
        "status": 0,
        "create_time": "2025-01-01 00:00:00",
        "sub_dir_list": [],
    }
    second_site = {**first_site, "site_id": 30000002, "domain": "b.example.com"}
    streams = {"overview_time_trend"}

    with Emulator(port=0, sites=[first_site]) as emu:
        config = tap_config(emu, tmp_path, start_date="2026-11-01", end_date="2026-11-05")
        catalog = catalog_selecting(tmp_path, config, streams)
        first = run_tap_cli(config, tmp_path, catalog=catalog)
        assert first.returncode == 0, first.stderr[-3000:]

    with Emulator(port=0, sites=[first_site, second_site]) as emu:
        config = tap_config(
            emu,
            tmp_path,
            start_date="2026-11-01",
            end_date="2026-11-07",
            token_store_path=str(tmp_path / "second-store.json"),
        )
        second = run_tap_cli(config, tmp_path, catalog=catalog, state=first.final_state)

        assert second.returncode == 0, second.stderr[-3000:]
        windows = {
            int(p["site_id"]): (p["start_date"], p["end_date"])
            for p in data_requests(emu, "overview/getTimeTrendRpt")
        }
        assert windows == {
            30000001: ("20261102", "20261107"),
            30000002: ("20261101", "20261107"),
        }
        assert bookmarks(second.final_state, "overview_time_trend") == {
            30000001: "2026-11-07",
            30000002: "2026-11-07",
        }


def test_stored_access_token_reused_next_run(emulator: Emulator, tmp_path: Path):
    config = tap_config(emulator, tmp_path, start_date="2026-11-04", end_date="2026-11-05")
    catalog = catalog_selecting(tmp_path, config, {"overview_time_trend"})

    first = run_tap_cli(config, tmp_path, catalog=catalog)
    second = run_tap_cli(config, tmp_path, catalog=catalog, state=first.final_state)

    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    assert refresh_count(emulator) == 1


def test_expired_token_refreshed_once_and_stored(emulator: Emulator, tmp_path: Path):
    config = tap_config(emulator, tmp_path, start_date="2026-11-04", end_date="2026-11-05")
    catalog = catalog_selecting(tmp_path, config, {"overview_time_trend", "visit_district"})
    first = run_tap_cli(config, tmp_path, catalog=catalog)
    assert first.returncode == 0, first.stderr[-3000:]
    store_path = Path(config["token_store_path"])
    before = json.loads(store_path.read_text())

    emulator.expire_access_tokens()
    emulator.clear_request_log()
    second = run_tap_cli(config, tmp_path, catalog=catalog)

    assert second.returncode == 0, second.stderr[-3000:]
    assert refresh_count(emulator) == 1
    after = json.loads(store_path.read_text())
    assert after["refresh_token"] != before["refresh_token"]
    assert after["access_token"] != before["access_token"]
    rejected = [e for e in emulator.request_log if e.error_code == 111]
    assert len(rejected) == 1
    refresh_time = next(e.time for e in emulator.request_log if e.grant_type == "refresh_token")
    assert rejected[0].time < refresh_time


def test_no_secret_in_debug_output(emulator: Emulator, tmp_path: Path):
    config = tap_config(emulator, tmp_path, start_date="2026-11-04", end_date="2026-11-05")
    catalog = catalog_selecting(tmp_path, config, {"overview_time_trend", "visit_district"})
    env = {"TAP_BAIDU_TONGJI_LOGLEVEL": "DEBUG", "LOGLEVEL": "DEBUG"}

    first = run_tap_cli(config, tmp_path, catalog=catalog, env=env)
    emulator.expire_access_tokens()
    second = run_tap_cli(config, tmp_path, catalog=catalog, env=env)

    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    assert "DEBUG" in first.stderr
    stored = json.loads(Path(config["token_store_path"]).read_text())
    secrets = [
        emulator.client_secret,
        emulator.seed_refresh_token,
        stored["access_token"],
        stored["refresh_token"],
    ]
    output = first.stdout + first.stderr + second.stdout + second.stderr
    for secret in secrets:
        assert secret not in output
