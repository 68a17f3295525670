"""Custom reports: offline validation, filters sent, and trend_time grains."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tap_baidu_tongji.custom_reports import build_custom_reports, check_custom_reports
from tap_baidu_tongji.emulator import Emulator
from tap_baidu_tongji.reports import REPORTS, Layout
from tests.conftest import catalog_selecting, run_tap_cli, tap_config


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"name": "x", "method": "visit/nope/a"},
            "Invalid custom_reports[0] (x) method 'visit/nope/a': use one of",
        ),
        (
            {"name": "x", "method": "visit/district/a", "metrics": ["pv_count", "clicks"]},
            "Invalid custom_reports[0] (x) metrics 'clicks' for visit/district/a: use any of "
            "pv_count,",
        ),
        (
            {"name": "x", "method": "visit/district/a", "clientDevice": "pc"},
            "Invalid custom_reports[0] (x) filter clientDevice for visit/district/a: the method "
            "accepts source, visitor.",
        ),
        (
            {"name": "x", "method": "source/all/a", "viewType": "page"},
            "Invalid custom_reports[0] (x) viewType 'page': use one of type, site.",
        ),
        (
            {"name": "Bad-Name", "method": "source/all/a"},
            "Invalid custom_reports[0] (Bad-Name) name 'Bad-Name'",
        ),
        (
            {"name": "visit_district", "method": "source/all/a"},
            "Invalid custom_reports[0] (visit_district) name",
        ),
        ({"method": "source/all/a"}, "Missing custom_reports[0] name: give the stream a name"),
        (
            {"name": "x", "method": "trend/latest/a"},
            "Invalid custom_reports[0] (x) method 'trend/latest/a'",
        ),
        (
            {"name": "x", "method": "source/all/a", "colour": "red"},
            "Invalid custom_reports[0] (x) key colour",
        ),
        (
            {"name": "x", "method": "trend/time/a", "gran": "year"},
            "Invalid custom_reports[0] (x) gran 'year': use one of day, hour, week, month.",
        ),
    ],
)
def test_invalid_entry_names_allowed_values(entry: dict[str, Any], expected: str):
    errors = check_custom_reports([entry])

    assert len(errors) == 1
    assert errors[0].startswith(expected)
    assert build_custom_reports([entry]) == []


def test_duplicate_names_rejected():
    entries = [
        {"name": "twice", "method": "source/all/a"},
        {"name": "twice", "method": "source/engine/a"},
    ]
    errors = check_custom_reports(entries)

    assert errors == [
        "Invalid custom_reports[1] (twice) name 'twice': a stream of that name exists; "
        "choose another."
    ]


def test_metrics_default_to_every_metric():
    (report,) = build_custom_reports([{"name": "all_sources", "method": "source/all/a"}])

    (base,) = [r for r in REPORTS if r.method == "source/all/a"]
    assert report.metrics == base.metrics
    assert report.stream_name == "all_sources"


def filtered_entry(method: str) -> dict[str, Any]:
    """A custom report on `method` that sets every filter the method accepts except gran."""
    (report,) = [r for r in REPORTS if r.method == method]
    entry: dict[str, Any] = {
        "name": "custom_" + report.stream_name,
        "method": method,
        "metrics": list(report.metrics[:2]),
    }
    for flt in report.filters:
        if flt.name == "gran":
            continue
        entry[flt.name] = flt.allowed_values[0] if flt.allowed_values else "china"
    return entry


FILTERED_METHODS = [
    r.method
    for r in REPORTS
    if r.layout is not Layout.REALTIME and any(f.name != "gran" for f in r.filters)
]


def test_filters_sent_for_every_filterable_method(emulator: Emulator, tmp_path: Path):
    entries = [filtered_entry(method) for method in FILTERED_METHODS]
    config = tap_config(
        emulator,
        tmp_path,
        start_date="2026-11-03",
        end_date="2026-11-04",
        custom_reports=entries,
    )
    names = {entry["name"] for entry in entries}
    catalog = catalog_selecting(tmp_path, config, names)

    run = run_tap_cli(config, tmp_path, catalog=catalog)

    assert run.returncode == 0, run.stderr[-3000:]
    for entry in entries:
        sent = [
            e.params
            for e in emulator.request_log
            if e.params.get("method") == entry["method"] and e.path.endswith("getData")
        ]
        assert sent, entry["name"]
        for params in sent:
            for key, value in entry.items():
                if key in ("name", "method"):
                    continue
                expected = ",".join(value) if key == "metrics" else value
                assert params[key] == expected, (entry["name"], key)
        records = run.records.get(entry["name"], [])
        if entry["method"] not in ("custom/media/a",):
            assert records, entry["name"]
        for record in records:
            assert set(entry["metrics"]) <= set(record)


def test_hour_grain_gives_rows_per_day_and_hour(emulator: Emulator, tmp_path: Path):
    entry = {
        "name": "trend_hourly",
        "method": "trend/time/a",
        "gran": "hour",
        "metrics": ["pv_count"],
    }
    config = tap_config(
        emulator, tmp_path, start_date="2026-11-03", end_date="2026-11-04", custom_reports=[entry]
    )
    catalog = catalog_selecting(tmp_path, config, {"trend_hourly"})

    run = run_tap_cli(config, tmp_path, catalog=catalog)

    assert run.returncode == 0, run.stderr[-3000:]
    records = run.records["trend_hourly"]
    keys = Counter((r["site_id"], r["date"], r["hour"]) for r in records)
    assert max(keys.values()) == 1
    assert len(keys) == 2 * 24 * len(emulator.sites)
    requested = {
        (e.params["start_date"], e.params["end_date"])
        for e in emulator.request_log
        if e.params.get("gran") == "hour"
    }
    assert requested == {("20261103", "20261103"), ("20261104", "20261104")}


@pytest.mark.parametrize(("gran", "first_day"), [("week", "2026-11-02"), ("month", "2026-11-01")])
def test_period_grains_key_on_period_start(
    emulator: Emulator, tmp_path: Path, gran: str, first_day: str
):
    entry = {"name": f"trend_{gran}", "method": "trend/time/a", "gran": gran}
    config = tap_config(
        emulator, tmp_path, start_date="2026-11-05", end_date="2026-11-10", custom_reports=[entry]
    )
    catalog = catalog_selecting(tmp_path, config, {entry["name"]})

    first = run_tap_cli(config, tmp_path, catalog=catalog)
    later = {**config, "end_date": "2026-11-12"}
    second = run_tap_cli(later, tmp_path, catalog=catalog, state=first.final_state)

    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    site_id = int(emulator.sites[0]["site_id"])
    first_rows = [r for r in first.records[entry["name"]] if r["site_id"] == site_id]
    second_rows = [r for r in second.records[entry["name"]] if r["site_id"] == site_id]
    assert first_rows[0]["date"] == first_day
    assert first_rows[-1]["period_end"] == "2026-11-10"
    assert second_rows[-1]["period_end"] == "2026-11-12"
    assert second_rows[-1]["date"] == first_rows[-1]["date"]
    assert len({r["date"] for r in second_rows}) == len(second_rows)
