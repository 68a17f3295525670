"""Invalid settings and catalogs through the CLI: one clear line, exit 1, no wasted requests."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tap_baidu_tongji.dates import beijing_today
from tap_baidu_tongji.emulator import Emulator
from tests.conftest import catalog_selecting, run_tap_cli, tap_config

START = beijing_today() - dt.timedelta(days=10)
END = START + dt.timedelta(days=1)
STREAMS = {"overview_time_trend"}


@dataclass(frozen=True)
class Case:
    """One invalid input, the setting its message must name, and a phrase of the fix."""

    overrides: dict[str, Any]
    setting: str
    fix: str
    reaches_site_list: bool = False
    """Whether the mistake shows only once config/getSiteList has responded (before getData)."""
    prepare: Callable[[Path, dict[str, Any]], None] | None = None
    catalog_change: Callable[[dict[str, Any]], None] | None = None


def store_under_regular_file(folder: Path, config: dict[str, Any]) -> None:
    blocker = folder / "not-a-folder"
    blocker.write_text("a regular file\n")
    config["token_store_path"] = str(blocker / "tokens.json")


def select_unknown_stream(catalog: dict[str, Any]) -> None:
    entry = copy.deepcopy(catalog["streams"][0])
    entry["tap_stream_id"] = entry["stream"] = "visit_toppages"
    for metadata in entry["metadata"]:
        if metadata["breadcrumb"] == []:
            metadata["metadata"]["selected"] = True
    catalog["streams"].append(entry)


CASES = {
    "start date not a date": Case({"start_date": "2026-13-01"}, "start_date", "YYYY-MM-DD"),
    "end date not a date": Case({"end_date": "2026/11/01"}, "end_date", "YYYY-MM-DD"),
    "end before start": Case(
        {"start_date": END.isoformat(), "end_date": START.isoformat()},
        "end_date",
        "on or after start_date",
    ),
    "start date in future": Case(
        {"start_date": (beijing_today() + dt.timedelta(days=3)).isoformat(), "end_date": None},
        "start_date",
        "choose a past day",
    ),
    "negative lookback": Case({"lookback_days": -1}, "lookback_days", "from 0 to 366"),
    "empty client id": Case({"client_id": ""}, "client_id", "API Key"),
    "blank client secret": Case({"client_secret": "   "}, "client_secret", "Secret Key"),
    "non-numeric site id": Case({"site_ids": ["abc"]}, "site_ids", "numeric site id"),
    "site id with letters": Case({"site_ids": [16847648, "1684x"]}, "site_ids", "numeric"),
    "site id not in account": Case(
        {"site_ids": [16847648, 99999999]},
        "site_ids",
        "Remove them from site_ids",
        reaches_site_list=True,
    ),
    "token store under a file": Case(
        {}, "token_store_path", "Set token_store_path", prepare=store_under_regular_file
    ),
    "catalog with unknown stream": Case(
        {}, "visit_toppages", "--discover", catalog_change=select_unknown_stream
    ),
}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("discover")
    with Emulator(port=0) as emu:
        config = tap_config(emu, folder, start_date=START.isoformat())
        return catalog_selecting(folder, config, STREAMS)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_setting_stops_cleanly(case: Case, catalog: dict[str, Any], tmp_path: Path) -> None:
    run_catalog = copy.deepcopy(catalog)
    if case.catalog_change:
        case.catalog_change(run_catalog)

    with Emulator(port=0) as emu:
        config = tap_config(emu, tmp_path, start_date=START.isoformat(), end_date=END.isoformat())
        for name, value in case.overrides.items():
            if value is None:
                config.pop(name, None)
            else:
                config[name] = value
        if case.prepare:
            case.prepare(tmp_path, config)
        run = run_tap_cli(config, tmp_path, catalog=run_catalog)
        paths = [entry.path for entry in emu.request_log]

    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert run.records == {}
    error_lines = [
        line
        for line in run.stderr.splitlines()
        if "| ERROR" in line
        and "Config validation failed" not in line
        and "An unhandled error occurred" not in line
    ]
    assert len(error_lines) == 1, error_lines
    assert case.setting in error_lines[0]
    assert case.fix in error_lines[0]

    assert not any(path.endswith("/report/getData") for path in paths)
    if case.reaches_site_list:
        assert sum(path.endswith("/config/getSiteList") for path in paths) == 1
    else:
        assert paths == []
