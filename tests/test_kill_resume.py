"""A tap killed in the middle of a sync, then run again from its last STATE, loses no row.

This drives the tap CLI alone; tests/test_pipeline_kill_resume.py does the same kill inside
`meltano run ... target-postgres`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tap_baidu_tongji.dates import beijing_today
from tap_baidu_tongji.emulator import Emulator
from tests.conftest import TapRun, catalog_selecting, run_tap_cli, tap_config

STREAMS = {"overview_time_trend", "visit_district"}
FIRST_DAY = beijing_today() - dt.timedelta(days=20)
LAST_DAY = FIRST_DAY + dt.timedelta(days=5)
WINDOW = {"start_date": FIRST_DAY.isoformat(), "end_date": LAST_DAY.isoformat(), "page_size": 7}
RECORDS_AFTER_STATE = 5
"""RECORD lines to wait for after the first report bookmark, so the kill lands mid-site."""


def run_until_killed(config: dict[str, Any], folder: Path, catalog: dict[str, Any]) -> TapRun:
    """Start the tap, SIGKILL it once a report bookmark and a few more records are out."""
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(config))
    catalog_path = folder / "catalog.json"
    catalog_path.write_text(json.dumps(catalog))
    args = [sys.executable, "-m", "tap_baidu_tongji", "--config", str(config_path)]
    args += ["--catalog", str(catalog_path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_BAIDU_TONGJI_")}

    messages: list[dict[str, Any]] = []
    records_after_state = 0
    seen_report_state = False
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=folder, env=env
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            message = json.loads(line)
            messages.append(message)
            if message["type"] == "STATE" and "visit_district" in message["value"]["bookmarks"]:
                seen_report_state = True
            elif message["type"] == "RECORD" and seen_report_state:
                records_after_state += 1
            if records_after_state >= RECORDS_AFTER_STATE:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.stdout.close()
        returncode = process.wait(timeout=60)

    records: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        if message["type"] == "RECORD":
            records.setdefault(message["stream"], []).append(message["record"])
    return TapRun(returncode, messages, "", "", records)


def rows_by_key(runs: list[TapRun]) -> dict[str, dict[str, str]]:
    """Load the records of the runs in order by primary key, the last value winning."""
    tables: dict[str, dict[str, str]] = {}
    for run in runs:
        keys = {m["stream"]: m["key_properties"] for m in run.messages if m["type"] == "SCHEMA"}
        for stream, records in run.records.items():
            table = tables.setdefault(stream, {})
            for record in records:
                key = json.dumps([record.get(name) for name in keys[stream]])
                table[key] = json.dumps(record, sort_keys=True, ensure_ascii=False)
    return tables


def test_killed_sync_resumes_without_loss(tmp_path: Path) -> None:
    complete_folder, killed_folder = tmp_path / "complete", tmp_path / "killed"
    complete_folder.mkdir()
    killed_folder.mkdir()

    with Emulator(port=0) as emu:
        fast = tap_config(emu, complete_folder, max_requests_per_second=1000, **WINDOW)
        catalog = catalog_selecting(complete_folder, fast, STREAMS)
        complete = run_tap_cli(fast, complete_folder, catalog=catalog)

    # A second emulator serves the same data, with its own seed refresh token unused.
    with Emulator(port=0) as emu:
        # A budget of 20 requests per second keeps the run slow enough to stop mid-sync.
        slow = tap_config(emu, killed_folder, max_requests_per_second=20, **WINDOW)
        killed = run_until_killed(slow, killed_folder, catalog)
        last_state = killed.final_state
        emu.clear_request_log()
        resume_config = {**slow, "max_requests_per_second": 1000}
        resumed = run_tap_cli(resume_config, killed_folder, catalog=catalog, state=last_state)
        resumed_days: dict[str, set[str]] = {}
        for entry in emu.request_log:
            if entry.params.get("method") == "visit/district/a":
                site_days = resumed_days.setdefault(entry.params["site_id"], set())
                site_days.add(entry.params["start_date"])

    assert complete.returncode == 0, complete.stderr[-3000:]
    assert killed.returncode == -signal.SIGKILL
    assert len(killed.records["visit_district"]) < len(complete.records["visit_district"])
    assert last_state["bookmarks"]["visit_district"]["partitions"]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The first site was complete when the tap died: the resumed run re-reads only the
    # look-back days (3 by default) before its bookmark, not the window from start_date.
    first_site_mark = last_state["bookmarks"]["visit_district"]["partitions"][0]
    assert first_site_mark["replication_key_value"] == LAST_DAY.isoformat()
    lookback_days = [LAST_DAY - dt.timedelta(days=offset) for offset in range(4)]
    first_site = str(first_site_mark["context"]["site_id"])
    assert resumed_days[first_site] == {day.strftime("%Y%m%d") for day in lookback_days}

    expected = rows_by_key([complete])
    assert rows_by_key([killed, resumed]) == expected
    assert rows_by_key([resumed]) != expected
