"""Concurrent fetching: same records and state as a serial run, within the request budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tap_baidu_tongji.emulator import Emulator, Failure, FailureKind
from tests.conftest import catalog_selecting, run_tap_cli, tap_config

STREAMS = {"visit_district", "source_engine", "overview_time_trend"}


def sorted_rows(records: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {
        stream: sorted(repr(sorted(r.items())) for r in rows) for stream, rows in records.items()
    }


def record_order(records: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(r["site_id"], r["date"]) for r in records]


def data_calls(emu: Emulator) -> list[float]:
    return sorted(e.time for e in emu.request_log if e.path.endswith("/report/getData"))


def run_with(tmp_path: Path, name: str, workers: int, *, transient: bool) -> Any:
    folder = tmp_path / name
    folder.mkdir()
    with Emulator(port=0) as emu:
        if transient:
            emu.faults.add_failure(Failure(FailureKind.ERROR_CODE, error_code=2, nth=3))
            emu.faults.add_failure(
                Failure(FailureKind.HTTP_STATUS, status=502, method="visit/district/a", nth=7)
            )
        config = tap_config(
            emu,
            folder,
            start_date="2026-10-20",
            end_date="2026-11-05",
            max_concurrent_requests=workers,
            max_requests_per_second=200,
        )
        catalog = catalog_selecting(folder, config, STREAMS)
        run = run_tap_cli(config, folder, catalog=catalog)
        assert run.returncode == 0, run.stderr[-3000:]
        return run


def test_concurrent_run_equals_serial_run(tmp_path: Path):
    serial = run_with(tmp_path, "serial", 1, transient=False)
    concurrent = run_with(tmp_path, "concurrent", 6, transient=True)

    assert sorted_rows(concurrent.records) == sorted_rows(serial.records)
    assert concurrent.final_state == serial.final_state
    for stream in STREAMS:
        assert record_order(concurrent.records[stream]) == record_order(serial.records[stream])


def test_request_rate_stays_within_budget(tmp_path: Path):
    budget = 8
    with Emulator(port=0) as emu:
        config = tap_config(
            emu,
            tmp_path,
            start_date="2026-10-25",
            end_date="2026-11-05",
            max_concurrent_requests=6,
            max_requests_per_second=budget,
        )
        catalog = catalog_selecting(tmp_path, config, {"visit_district", "source_engine"})
        run = run_tap_cli(config, tmp_path, catalog=catalog)
        assert run.returncode == 0, run.stderr[-3000:]
        times = data_calls(emu)

    assert len(times) >= 3 * budget
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= budget


def test_rate_limit_error_lowers_rate_once(tmp_path: Path):
    with Emulator(port=0) as emu:
        emu.faults.add_failure(Failure(FailureKind.ERROR_CODE, error_code=4, nth=5))
        config = tap_config(
            emu,
            tmp_path,
            start_date="2026-11-01",
            end_date="2026-11-05",
            max_concurrent_requests=4,
            max_requests_per_second=40,
        )
        catalog = catalog_selecting(tmp_path, config, {"visit_district"})
        run = run_tap_cli(config, tmp_path, catalog=catalog)

    assert run.returncode == 0, run.stderr[-3000:]
    lowered = [line for line in run.stderr.splitlines() if "Lowering the request rate" in line]
    assert len(lowered) == 1
    assert "20.00 requests per second" in lowered[0]
