"""Faults and open readings of the API, each run through the tap CLI against the emulator.

Every test reads the same window as one fault-free run (the module's baseline) and compares
the records per stream. It also counts the requests the emulator logged, so that a retry
loop without end, or a page read twice, fails the test.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tap_baidu_tongji.dates import beijing_today
from tap_baidu_tongji.emulator import Emulator, Failure, FailureKind
from tests.conftest import TapRun, catalog_selecting, run_tap_cli, tap_config

SITE_ID = 16847648
OTHER_SITE_ID = 16901234
STREAMS = frozenset({"visit_district", "source_link", "overview_time_trend"})
DISTRICT = "visit/district/a"
PAGE_SIZE = 7
"""Small enough that every day of the paged reports spans several pages."""

# Four days well before today, so that no run is cut short at yesterday.
FIRST_DAY = beijing_today() - dt.timedelta(days=20)
DAYS = [FIRST_DAY + dt.timedelta(days=offset) for offset in range(4)]
WINDOW = {"start_date": DAYS[0].isoformat(), "end_date": DAYS[-1].isoformat()}
FAST = {"max_requests_per_second": 1000}
"""Lifts the tap's default request budget, which would make each test take seconds."""

RequestKey = tuple[str, str, str, str]
"""(method, site_id, start_date, start_index) of one data call."""


def api_day(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def data_calls(emu: Emulator) -> Counter[RequestKey]:
    """Count the getSiteList and getData calls the emulator saw, by request."""
    calls: Counter[RequestKey] = Counter()
    for entry in emu.request_log:
        if entry.path.endswith("/config/getSiteList"):
            calls[("config/getSiteList", "", "", "")] += 1
        elif entry.path.endswith("/report/getData"):
            params = entry.params
            key = (
                params.get("method", ""),
                params.get("site_id", ""),
                params.get("start_date", ""),
                params.get("start_index", ""),
            )
            calls[key] += 1
    return calls


def refresh_count(emu: Emulator) -> int:
    return sum(1 for entry in emu.request_log if entry.grant_type == "refresh_token")


def row_text(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def sorted_rows(run: TapRun, *, drop: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Return each stream's records as sorted JSON texts, without the columns in `drop`."""
    rows = {}
    for stream, records in run.records.items():
        texts = [row_text({k: v for k, v in r.items() if k not in drop}) for r in records]
        rows[stream] = sorted(texts)
    return rows


def key_properties(run: TapRun) -> dict[str, list[str]]:
    return {
        message["stream"]: message["key_properties"]
        for message in run.messages
        if message["type"] == "SCHEMA"
    }


def merge_by_key(runs: list[TapRun]) -> dict[str, list[str]]:
    """Load the records of several runs in order by primary key, the last value winning."""
    tables: dict[str, dict[str, str]] = {}
    for run in runs:
        keys = key_properties(run)
        for stream, records in run.records.items():
            table = tables.setdefault(stream, {})
            for record in records:
                key = row_text({name: record.get(name) for name in keys[stream]})
                table[key] = row_text(record)
    return {stream: sorted(table.values()) for stream, table in tables.items()}


def bookmark(state: dict[str, Any], stream: str, site_id: int) -> str | None:
    partitions = state.get("bookmarks", {}).get(stream, {}).get("partitions", [])
    for partition in partitions:
        if partition["context"]["site_id"] == site_id:
            value = partition.get("replication_key_value")
            return None if value is None else str(value)
    return None


def wait_for_quiet_log(emu: Emulator, seconds: float = 3.0) -> None:
    """Wait until the request log stops growing (a timeout fault is logged when it responds)."""
    deadline = time.monotonic() + seconds
    size = len(emu.request_log)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if len(emu.request_log) == size:
            return
        size = len(emu.request_log)


@dataclass
class Baseline:
    catalog: dict[str, Any]
    run: TapRun
    rows: dict[str, list[str]]
    calls: Counter[RequestKey]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Baseline]:
    """One fault-free run over the window, with the catalog every test reuses."""
    folder = tmp_path_factory.mktemp("baseline")
    with Emulator(port=0) as emu:
        config = tap_config(emu, folder, site_ids=[SITE_ID], page_size=PAGE_SIZE, **FAST, **WINDOW)
        catalog = catalog_selecting(folder, config, set(STREAMS))
        run = run_tap_cli(config, folder, catalog=catalog)
        assert run.returncode == 0, run.stderr[-3000:]
        assert set(run.records) == STREAMS | {"sites"}
        yield Baseline(catalog, run, sorted_rows(run), data_calls(emu))


def run_against(
    baseline: Baseline,
    folder: Path,
    arrange: Callable[[Emulator], object],
    **overrides: Any,
) -> tuple[TapRun, Emulator]:
    """Run the baseline's sync on a fresh emulator after `arrange` has set its faults."""
    with Emulator(port=0) as emu:
        arrange(emu)
        settings = {"site_ids": [SITE_ID], "page_size": PAGE_SIZE, **FAST, **WINDOW, **overrides}
        run = run_tap_cli(tap_config(emu, folder, **settings), folder, catalog=baseline.catalog)
        wait_for_quiet_log(emu)
    return run, emu


def first_page_key(day: dt.date) -> RequestKey:
    return (DISTRICT, str(SITE_ID), api_day(day), "0")


def assert_retried_then_equal(
    baseline: Baseline, run: TapRun, emu: Emulator, failure: Failure, retries: int
) -> None:
    """Check the run succeeded with the baseline's rows and exactly `retries` extra calls."""
    assert run.returncode == 0, run.stderr[-3000:]
    assert failure.fired == retries
    assert sorted_rows(run) == baseline.rows
    extra = data_calls(emu)
    extra.subtract(baseline.calls)
    assert +extra == Counter({first_page_key(DAYS[1]): retries})
    assert -extra == Counter()


# --- Transient failures: retried, bounded, records equal ---------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [(1, 200), (2, 200), (4, 200), (1, 500), (2, 503), (4, 502)],
)
def test_transient_error_code_retried(
    baseline: Baseline, tmp_path: Path, code: int, status: int
) -> None:
    failure = Failure(
        FailureKind.ERROR_CODE,
        error_code=code,
        status=status,
        method=DISTRICT,
        start_date=api_day(DAYS[1]),
        first=2,
    )

    run, emu = run_against(baseline, tmp_path, lambda emu: emu.faults.add_failure(failure))

    assert_retried_then_equal(baseline, run, emu, failure, retries=2)
    assert f"Tongji API error {code}" in run.stderr
    assert refresh_count(emu) == 1


@pytest.mark.parametrize("code", [110, 111])
def test_token_error_refreshes_once(baseline: Baseline, tmp_path: Path, code: int) -> None:
    failure = Failure(
        FailureKind.ERROR_CODE,
        error_code=code,
        method=DISTRICT,
        start_date=api_day(DAYS[1]),
        first=1,
    )

    run, emu = run_against(baseline, tmp_path, lambda emu: emu.faults.add_failure(failure))

    assert_retried_then_equal(baseline, run, emu, failure, retries=1)
    # One refresh starts the run from the seed refresh token, the second follows the error.
    assert refresh_count(emu) == 2


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_html_gateway_status_retried(baseline: Baseline, tmp_path: Path, status: int) -> None:
    failure = Failure(
        FailureKind.HTTP_STATUS,
        status=status,
        method=DISTRICT,
        start_date=api_day(DAYS[1]),
        first=2,
    )

    run, emu = run_against(baseline, tmp_path, lambda emu: emu.faults.add_failure(failure))

    assert_retried_then_equal(baseline, run, emu, failure, retries=2)
    assert f"HTTP {status}" in run.stderr


def test_timeout_retried(baseline: Baseline, tmp_path: Path) -> None:
    failure = Failure(
        FailureKind.TIMEOUT,
        delay_seconds=2.0,
        method=DISTRICT,
        start_date=api_day(DAYS[1]),
        first=1,
    )

    run, emu = run_against(
        baseline,
        tmp_path,
        lambda emu: emu.faults.add_failure(failure),
        request_timeout_seconds=1,
    )

    assert_retried_then_equal(baseline, run, emu, failure, retries=1)
    assert "Timeout" in run.stderr


def test_connection_reset_retried(baseline: Baseline, tmp_path: Path) -> None:
    failure = Failure(FailureKind.RESET, method=DISTRICT, start_date=api_day(DAYS[1]), first=2)

    run, emu = run_against(baseline, tmp_path, lambda emu: emu.faults.add_failure(failure))

    assert_retried_then_equal(baseline, run, emu, failure, retries=2)
    assert "ConnectionError" in run.stderr


def test_truncated_json_retried(baseline: Baseline, tmp_path: Path) -> None:
    failure = Failure(FailureKind.TRUNCATED, method=DISTRICT, start_date=api_day(DAYS[1]), first=2)

    run, emu = run_against(baseline, tmp_path, lambda emu: emu.faults.add_failure(failure))

    assert_retried_then_equal(baseline, run, emu, failure, retries=2)
    assert "not JSON" in run.stderr


def test_transient_error_outlasting_retries_fails(baseline: Baseline, tmp_path: Path) -> None:
    failure = Failure(
        FailureKind.ERROR_CODE, error_code=2, method=DISTRICT, start_date=api_day(DAYS[1])
    )

    run, emu = run_against(
        baseline, tmp_path, lambda emu: emu.faults.add_failure(failure), retry_max_tries=3
    )

    assert run.returncode != 0
    assert failure.fired == 3
    assert data_calls(emu)[first_page_key(DAYS[1])] == 3
    assert "Giving up on visit/district/a" in run.stderr
    assert "after 3 attempts" in run.stderr
    assert "the run stopped" in run.stderr
    assert "resume from the last fully read day" in run.stderr
    assert bookmark(run.final_state, "visit_district", SITE_ID) == DAYS[0].isoformat()


# --- Permanent errors: no retry, a message naming the request, a non-zero exit ----------


@pytest.mark.parametrize("code", [3, 100, 6])
def test_permanent_error_fails_run(baseline: Baseline, tmp_path: Path, code: int) -> None:
    failure = Failure(
        FailureKind.ERROR_CODE, error_code=code, method=DISTRICT, start_date=api_day(DAYS[1])
    )

    run, emu = run_against(baseline, tmp_path, lambda emu: emu.faults.add_failure(failure))

    assert run.returncode != 0
    assert failure.fired == 1
    assert data_calls(emu)[first_page_key(DAYS[1])] == 1
    expected_message = {3: "Unsupported openapi method", 100: "Invalid parameter"}.get(
        code, "No permission to access user data"
    )
    line = f"Tongji API error {code} ({expected_message}) for {DISTRICT}, site {SITE_ID}, "
    assert line + f"day {api_day(DAYS[1])}" in run.stderr
    assert "Retrying" not in run.stderr


# --- Open readings of the API: records equal, request counts as the reading implies -----


def paged_calls(calls: Counter[RequestKey], method: str) -> Counter[str]:
    """Count the calls of one paged method per day."""
    per_day: Counter[str] = Counter()
    for (call_method, _, day, _), count in calls.items():
        if call_method == method:
            per_day[day] += count
    return per_day


def test_page_size_cap_below_max_results(baseline: Baseline, tmp_path: Path) -> None:
    def arrange(emu: Emulator) -> None:
        emu.faults.page_size_cap = 3

    run, emu = run_against(baseline, tmp_path, arrange)

    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted_rows(run) == baseline.rows
    calls = data_calls(emu)
    assert max(calls.values()) == 1
    district = [r for r in run.records["visit_district"] if r["date"] == DAYS[0].isoformat()]
    start_indexes = sorted(
        int(key[3]) for key in calls if key[0] == DISTRICT and key[2] == api_day(DAYS[0])
    )
    assert start_indexes == list(range(0, len(district), 3))


def test_all_rows_ignoring_max_results(baseline: Baseline, tmp_path: Path) -> None:
    def arrange(emu: Emulator) -> None:
        emu.faults.ignore_max_results = True

    run, emu = run_against(baseline, tmp_path, arrange)

    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted_rows(run) == baseline.rows
    per_day = paged_calls(data_calls(emu), DISTRICT)
    assert per_day == Counter({api_day(day): 1 for day in DAYS})


def test_metrics_shuffled_in_fields(baseline: Baseline, tmp_path: Path) -> None:
    def arrange(emu: Emulator) -> None:
        emu.faults.shuffle_metrics = True

    run, emu = run_against(baseline, tmp_path, arrange)

    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted_rows(run) == baseline.rows
    assert data_calls(emu) == baseline.calls


def test_extra_cell_keys_kept_apart(baseline: Baseline, tmp_path: Path) -> None:
    def arrange(emu: Emulator) -> None:
        emu.faults.extra_cell_keys = True

    run, emu = run_against(baseline, tmp_path, arrange)

    assert run.returncode == 0, run.stderr[-3000:]
    drop = ("cell_extra",)
    assert sorted_rows(run, drop=drop) == sorted_rows(baseline.run, drop=drop)
    for stream in ("visit_district", "source_link"):
        extras = [record["cell_extra"] for record in run.records[stream]]
        assert extras
        assert all(set(extra) == {"layer", "tip"} for extra in extras)
        assert all(r["cell_extra"] is None for r in baseline.run.records[stream])
    assert data_calls(emu) == baseline.calls


def test_raw_utf8_same_as_escaped(baseline: Baseline, tmp_path: Path) -> None:
    def arrange(emu: Emulator) -> None:
        emu.faults.raw_utf8 = True

    run, _ = run_against(baseline, tmp_path, arrange)

    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted_rows(run) == baseline.rows
    names = {record["name"] for record in run.records["visit_district"]}
    assert "广东" in names


def test_offset_missing(baseline: Baseline, tmp_path: Path) -> None:
    def arrange(emu: Emulator) -> None:
        emu.faults.omit_offset = True

    run, emu = run_against(baseline, tmp_path, arrange)

    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted_rows(run) == baseline.rows
    assert data_calls(emu) == baseline.calls


def test_total_missing(baseline: Baseline, tmp_path: Path) -> None:
    def arrange(emu: Emulator) -> None:
        emu.faults.omit_total = True

    run, emu = run_against(baseline, tmp_path, arrange)

    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted_rows(run) == baseline.rows
    # Without `total` the end of a day shows only as a short or empty page: at most one
    # extra call per day and paged report.
    calls = data_calls(emu)
    for method in (DISTRICT, "source/link/a"):
        extra = paged_calls(calls, method)
        extra.subtract(paged_calls(baseline.calls, method))
        assert all(0 <= count <= 1 for count in extra.values()), extra


def test_sticky_refresh_token(baseline: Baseline, tmp_path: Path) -> None:
    with Emulator(port=0) as emu:
        emu.faults.sticky_refresh_token = True
        config = tap_config(
            emu, tmp_path, site_ids=[SITE_ID], page_size=PAGE_SIZE, **FAST, **WINDOW
        )
        first = run_tap_cli(config, tmp_path, catalog=baseline.catalog)
        stored = json.loads(Path(config["token_store_path"]).read_text())
        emu.expire_access_tokens()
        second = run_tap_cli(config, tmp_path, catalog=baseline.catalog)
        refreshes = refresh_count(emu)

    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    assert stored["refresh_token"] == emu.seed_refresh_token
    assert refreshes == 2
    assert sorted_rows(first) == baseline.rows
    assert sorted_rows(second) == baseline.rows


# --- Reports the account may not use ------------------------------------------------------

RESTRICTED = {
    "pro_product": ("pro/product/a", "promotion"),
    "pro_hour": ("pro/hour/a", "promotion"),
    "custom_media": ("custom/media/a", "指定广告跟踪"),
}


def test_restricted_reports_skipped_with_warning(baseline: Baseline, tmp_path: Path) -> None:
    sites = [SITE_ID, OTHER_SITE_ID]
    with Emulator(port=0) as emu:
        for method, _ in RESTRICTED.values():
            emu.faults.add_failure(Failure(FailureKind.ERROR_CODE, error_code=6, method=method))
        config = tap_config(emu, tmp_path, site_ids=sites, page_size=PAGE_SIZE, **FAST, **WINDOW)
        catalog = catalog_selecting(tmp_path, config, set(STREAMS) | set(RESTRICTED))
        run = run_tap_cli(config, tmp_path, catalog=catalog)
        calls = data_calls(emu)

    assert run.returncode == 0, run.stderr[-3000:]
    for stream, (method, requirement) in RESTRICTED.items():
        warnings = [
            line
            for line in run.stderr.splitlines()
            if "WARNING" in line and f"Skipping {stream} " in line
        ]
        assert len(warnings) == len(sites), warnings
        for site, warning in zip(sites, warnings, strict=True):
            assert f"for site {site}:" in warning
            assert requirement in warning
        assert stream not in run.records
        # Rejected calls are not retried, and no day is requested twice. Days fetched ahead
        # in parallel may each be rejected once before the first rejection stops the site.
        rejected = Counter({key: count for key, count in calls.items() if key[0] == method})
        assert set(rejected.values()) == {1}
        assert {key[1] for key in rejected} == {str(site) for site in sites}
    site_rows = {
        stream: sorted(
            row_text(r) for r in records if r.get("site_id") == SITE_ID or stream == "sites"
        )
        for stream, records in run.records.items()
    }
    site_rows["sites"] = [
        row for row in site_rows["sites"] if json.loads(row)["site_id"] == SITE_ID
    ]
    assert site_rows == baseline.rows


# --- State never passes a day that was not read in full ------------------------------------


def test_failed_day_not_bookmarked_then_resumed(baseline: Baseline, tmp_path: Path) -> None:
    failed_day = DAYS[3]
    failure = Failure(
        FailureKind.ERROR_CODE,
        error_code=100,
        method=DISTRICT,
        start_date=api_day(failed_day),
        nth=2,
    )

    failed, _ = run_against(baseline, tmp_path, lambda emu: emu.faults.add_failure(failure))

    assert failed.returncode != 0
    assert failure.fired == 1
    assert bookmark(failed.final_state, "visit_district", SITE_ID) == DAYS[2].isoformat()
    # Page 1 of the failed day was read, but a day's rows are emitted only once the day is
    # complete, so none of them reached stdout.
    emitted_days = {record["date"] for record in failed.records["visit_district"]}
    assert emitted_days == {day.isoformat() for day in DAYS[:3]}

    resume_folder = tmp_path / "resume"
    resume_folder.mkdir()
    with Emulator(port=0) as emu:
        config = tap_config(
            emu,
            resume_folder,
            site_ids=[SITE_ID],
            page_size=PAGE_SIZE,
            lookback_days=1,
            **FAST,
            **WINDOW,
        )
        resumed = run_tap_cli(
            config, resume_folder, catalog=baseline.catalog, state=failed.final_state
        )
        calls = data_calls(emu)

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    district_days = sorted({key[2] for key in calls if key[0] == DISTRICT})
    assert district_days == [api_day(day) for day in DAYS[1:]]
    assert bookmark(resumed.final_state, "visit_district", SITE_ID) == DAYS[3].isoformat()
    assert merge_by_key([failed, resumed]) == baseline.rows


# --- A backfill stopped by the request limit resumes where it stopped --------------------


def test_rate_limited_backfill_resumes(baseline: Baseline, tmp_path: Path) -> None:
    sites = [SITE_ID, OTHER_SITE_ID]
    streams = {"visit_district", "overview_time_trend"}
    failure = Failure(
        FailureKind.ERROR_CODE,
        error_code=4,
        method=DISTRICT,
        site_id=str(OTHER_SITE_ID),
        start_date=api_day(DAYS[2]),
    )
    with Emulator(port=0) as emu:
        config = tap_config(
            emu,
            tmp_path,
            site_ids=sites,
            page_size=PAGE_SIZE,
            lookback_days=0,
            retry_max_tries=2,
            **FAST,
            **WINDOW,
        )
        catalog = catalog_selecting(tmp_path, config, streams)
        complete = run_tap_cli(config, tmp_path, catalog=catalog)
        emu.faults.add_failure(failure)
        stopped = run_tap_cli(config, tmp_path, catalog=catalog)
        emu.faults.clear_failures()
        emu.clear_request_log()
        resumed = run_tap_cli(config, tmp_path, catalog=catalog, state=stopped.final_state)
        calls = data_calls(emu)

    assert complete.returncode == 0, complete.stderr[-3000:]
    assert stopped.returncode != 0
    assert failure.fired == 2
    assert "Open api request limit reached" in stopped.stderr
    assert "the run stopped" in stopped.stderr
    assert "resume from the last fully read day" in stopped.stderr
    assert bookmark(stopped.final_state, "visit_district", OTHER_SITE_ID) == DAYS[1].isoformat()

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Each site and report starts at its own bookmark (look-back 0 re-reads that day), or
    # at start_date when the stopped run never reached it.
    methods = {"visit_district": DISTRICT, "overview_time_trend": "overview/getTimeTrendRpt"}
    for stream, method in methods.items():
        for site_id in sites:
            mark = bookmark(stopped.final_state, stream, site_id)
            expected_start = dt.date.fromisoformat(mark) if mark else DAYS[0]
            starts = [key[2] for key in calls if key[0] == method and key[1] == str(site_id)]
            assert min(starts) == api_day(expected_start), (stream, site_id)
    resumed_district = {
        key[2] for key in calls if key[0] == DISTRICT and key[1] == str(OTHER_SITE_ID)
    }
    assert api_day(DAYS[0]) not in resumed_district
    assert merge_by_key([stopped, resumed]) == sorted_rows(complete)
