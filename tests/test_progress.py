"""Progress lines: start, periodic and final lines per stream and site, free of secrets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tap_baidu_tongji.emulator import Emulator
from tap_baidu_tongji.progress import SiteProgress
from tests.conftest import catalog_selecting, run_tap_cli, tap_config


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_follow_interval(caplog: pytest.LogCaptureFixture):
    clock = FakeClock()
    requests = iter(range(1000))
    progress = SiteProgress(
        logging.getLogger("progress-test"),
        16847648,
        10,
        lambda: next(requests),
        interval_seconds=15.0,
        clock=clock,
    )
    caplog.set_level(logging.INFO, logger="progress-test")

    progress.start("2026-11-01", "2026-11-10")
    clock.now += 5
    progress.days_done(20)
    clock.now += 15
    progress.days_done(30, day_count=3)
    clock.now += 1
    progress.days_done(10, day_count=6)
    progress.finish()

    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "Site 16847648: reading 10 days, 2026-11-01 to 2026-11-10."
    assert lines[1].startswith("Site 16847648: 4 of 10 days read,")
    assert "about 30 s left" in lines[1]
    assert lines[2].startswith("Site 16847648: done, 10 days,")
    assert "60 records" in lines[2]
    assert len(lines) == 3


def test_cli_logs_progress_without_secrets(emulator: Emulator, tmp_path: Path):
    config = tap_config(emulator, tmp_path, start_date="2026-11-01", end_date="2026-11-05")
    config["custom_reports"] = [{"name": "trend_weekly", "method": "trend/time/a", "gran": "week"}]
    catalog = catalog_selecting(tmp_path, config, {"visit_district", "trend_weekly"})

    run = run_tap_cli(config, tmp_path, catalog=catalog)

    assert run.returncode == 0, run.stderr[-3000:]
    site_ids = [int(str(site["site_id"])) for site in emulator.sites]
    for site_id in site_ids:
        assert f"Site {site_id}: reading 5 days, 2026-11-01 to 2026-11-05." in run.stderr
        assert f"Site {site_id}: done, 5 days," in run.stderr
    stored = json.loads(Path(config["token_store_path"]).read_text())
    for secret in (emulator.client_secret, stored["access_token"], stored["refresh_token"]):
        assert secret not in run.stderr
