"""A tap process SIGKILLed at each point around a token refresh, then a normal next run.

Each test first runs the tap once so the store contains a pair, expires that pair's access
token in the emulator, and runs the tap through tests/kill_point_tap.py, which kills it at
one point of the refresh that follows. The next run is a plain `python -m
tap_baidu_tongji`. It either continues (exit 0, records loaded) or, when Baidu may have
spent the refresh token in flight, stops with the re-authorization message. It never
sends that refresh token a second time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tap_baidu_tongji.auth.token_store import MARKER_SUFFIX, StoredTokens
from tap_baidu_tongji.dates import beijing_today
from tap_baidu_tongji.emulator import Emulator, Failure, FailureKind
from tests.conftest import TapRun, catalog_selecting, run_tap_cli, tap_config

WRAPPER = Path(__file__).with_name("kill_point_tap.py")
STREAMS = {"overview_time_trend"}
FIRST_DAY = beijing_today() - dt.timedelta(days=3)
WINDOW = {
    "start_date": FIRST_DAY.isoformat(),
    "end_date": (FIRST_DAY + dt.timedelta(1)).isoformat(),
}
MARKER_MESSAGE = "An earlier run started a refresh of the access token"


@dataclass
class Scenario:
    """A tap folder whose store contains a pair with an expired access token."""

    emu: Emulator
    folder: Path
    config: dict[str, Any]
    catalog: dict[str, Any]
    store_path: Path
    before_kill: StoredTokens
    """The stored pair whose refresh token the killed run sends."""

    @property
    def marker_path(self) -> Path:
        return self.store_path.with_name(self.store_path.name + MARKER_SUFFIX)

    def run_next(self) -> TapRun:
        return run_tap_cli(self.config, self.folder, catalog=self.catalog)

    def run_killed(self, point: str) -> subprocess.CompletedProcess[str]:
        """Run the tap through the wrapper and check that it died at `point`."""
        args = [sys.executable, str(WRAPPER), point, "--config", str(self.folder / "config.json")]
        args += ["--catalog", str(self.folder / "catalog.json")]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_BAIDU_TONGJI_")}
        completed = subprocess.run(
            args, capture_output=True, text=True, cwd=self.folder, env=env, timeout=120, check=False
        )
        assert completed.returncode == -signal.SIGKILL, completed.stderr[-3000:]
        return completed


@pytest.fixture
def scenario(emulator: Emulator, tmp_path: Path) -> Scenario:
    config = tap_config(emulator, tmp_path, **WINDOW)
    catalog = catalog_selecting(tmp_path, config, STREAMS)
    warm_up = run_tap_cli(config, tmp_path, catalog=catalog)
    assert warm_up.returncode == 0, warm_up.stderr
    store_path = Path(config["token_store_path"])
    before_kill = read_store(store_path)
    emulator.expire_access_tokens()
    emulator.clear_request_log()
    return Scenario(emulator, tmp_path, config, catalog, store_path, before_kill)


def read_store(store_path: Path) -> StoredTokens:
    """Parse the store file as the tap does; a half-written file fails here."""
    assert stat.S_IMODE(store_path.stat().st_mode) == 0o600
    return StoredTokens.from_json(json.loads(store_path.read_text()))


def refresh_requests(emu: Emulator) -> list[Any]:
    return [entry for entry in emu.request_log if entry.grant_type == "refresh_token"]


def is_unused(emu: Emulator, refresh_token: str) -> bool:
    """Return whether the emulator would still accept `refresh_token`."""
    # The emulator's own bookkeeping, because its request log may mask token values.
    unused: bool = emu.tokens._refresh_tokens[refresh_token]
    return unused


def temp_files(scenario: Scenario) -> list[Path]:
    return sorted(scenario.store_path.parent.glob(f".{scenario.store_path.name}.*.tmp"))


def wait_for_refresh_requests(emu: Emulator, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(refresh_requests(emu)) < count:
        assert time.monotonic() < deadline, f"the emulator logged no {count} refresh requests"
        time.sleep(0.05)


def assert_continues(run: TapRun) -> None:
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert run.records.get("sites")
    assert run.records.get("overview_time_trend")


def assert_stops_with_marker_message(run: TapRun, scenario: Scenario) -> None:
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert MARKER_MESSAGE in run.stderr
    assert "tap-baidu-tongji-auth" in run.stderr
    assert f"rm {scenario.marker_path}" in run.stderr
    assert scenario.before_kill.refresh_token not in run.stderr
    assert run.records.get("overview_time_trend") is None


# --- (a) Before the refresh request is sent ---------------------------------------------


def test_kill_before_marker(scenario: Scenario) -> None:
    scenario.run_killed("before-marker")

    assert not scenario.marker_path.exists()
    assert read_store(scenario.store_path) == scenario.before_kill
    assert refresh_requests(scenario.emu) == []

    next_run = scenario.run_next()

    assert_continues(next_run)
    assert len(refresh_requests(scenario.emu)) == 1
    assert not is_unused(scenario.emu, scenario.before_kill.refresh_token)
    assert read_store(scenario.store_path).refresh_token != scenario.before_kill.refresh_token
    assert not scenario.marker_path.exists()


def test_kill_after_marker_before_request(scenario: Scenario) -> None:
    scenario.run_killed("before-request")

    assert scenario.marker_path.exists()
    assert stat.S_IMODE(scenario.marker_path.stat().st_mode) == 0o600
    assert read_store(scenario.store_path) == scenario.before_kill
    assert refresh_requests(scenario.emu) == []

    # The marker cannot tell that the request never left, so the next run stops.
    stopped = scenario.run_next()

    assert_stops_with_marker_message(stopped, scenario)
    assert refresh_requests(scenario.emu) == []
    assert is_unused(scenario.emu, scenario.before_kill.refresh_token)

    # The message allows deleting the marker when the request never left, as here.
    scenario.marker_path.unlink()
    next_run = scenario.run_next()

    assert_continues(next_run)
    assert len(refresh_requests(scenario.emu)) == 1
    assert not scenario.marker_path.exists()


# --- (b) After the request was sent, before the response ---------------------------------


def test_kill_in_flight_token_consumed(scenario: Scenario) -> None:
    # The emulator sleeps 3 s before it runs the grant, and the tap dies 1 s after sending.
    # The emulator then consumes the refresh token of a dead process, so the pair is lost.
    scenario.emu.faults.add_failure(
        Failure(FailureKind.TIMEOUT, endpoint="token", delay_seconds=3, first=1)
    )

    scenario.run_killed("in-flight")
    wait_for_refresh_requests(scenario.emu, 1)

    assert not is_unused(scenario.emu, scenario.before_kill.refresh_token)
    assert scenario.marker_path.exists()
    assert read_store(scenario.store_path) == scenario.before_kill

    next_run = scenario.run_next()

    assert_stops_with_marker_message(next_run, scenario)
    assert len(refresh_requests(scenario.emu)) == 1
    assert read_store(scenario.store_path) == scenario.before_kill


def test_kill_in_flight_token_not_consumed(scenario: Scenario) -> None:
    # The emulator is still asleep in the killed request when the next run starts, so the
    # token is unused, but the next run cannot know that and stops all the same.
    scenario.emu.faults.add_failure(
        Failure(FailureKind.TIMEOUT, endpoint="token", delay_seconds=60, first=1)
    )

    scenario.run_killed("in-flight")
    next_run = scenario.run_next()

    assert_stops_with_marker_message(next_run, scenario)
    assert is_unused(scenario.emu, scenario.before_kill.refresh_token)
    assert refresh_requests(scenario.emu) == []
    assert read_store(scenario.store_path) == scenario.before_kill


# --- (c) After the response arrived, before the store write ------------------------------


def test_kill_after_response(scenario: Scenario) -> None:
    scenario.run_killed("after-response")

    assert len(refresh_requests(scenario.emu)) == 1
    assert not is_unused(scenario.emu, scenario.before_kill.refresh_token)
    assert scenario.marker_path.exists()
    assert read_store(scenario.store_path) == scenario.before_kill

    next_run = scenario.run_next()

    assert_stops_with_marker_message(next_run, scenario)
    assert len(refresh_requests(scenario.emu)) == 1


# --- (d) During the store write ----------------------------------------------------------


@pytest.mark.parametrize("point", ["mid-write", "before-rename"])
def test_kill_during_store_write(scenario: Scenario, point: str) -> None:
    scenario.run_killed(point)

    # The new pair only reached a temporary file, so the store still contains the old one.
    assert len(temp_files(scenario)) == 1
    assert read_store(scenario.store_path) == scenario.before_kill
    assert scenario.marker_path.exists()
    assert len(refresh_requests(scenario.emu)) == 1

    next_run = scenario.run_next()

    assert_stops_with_marker_message(next_run, scenario)
    assert len(refresh_requests(scenario.emu)) == 1
    assert read_store(scenario.store_path) == scenario.before_kill
    # The next lock holder deletes the leftover file, which contains the lost tokens.
    assert temp_files(scenario) == []


# --- (e) After the store write -----------------------------------------------------------


def test_kill_after_write_before_marker_removal(scenario: Scenario) -> None:
    scenario.run_killed("before-marker-removal")

    stored = read_store(scenario.store_path)
    assert stored.refresh_token != scenario.before_kill.refresh_token
    assert scenario.marker_path.exists()
    assert len(refresh_requests(scenario.emu)) == 1

    # The stored access token is valid, so the next run needs no refresh.
    next_run = scenario.run_next()

    assert_continues(next_run)
    assert len(refresh_requests(scenario.emu)) == 1

    # The marker names the previous refresh token, so the next refresh removes it.
    scenario.emu.expire_access_tokens()
    refreshing_run = scenario.run_next()

    assert_continues(refreshing_run)
    assert len(refresh_requests(scenario.emu)) == 2
    assert refresh_requests(scenario.emu)[-1].oauth_error is None
    assert not is_unused(scenario.emu, stored.refresh_token)
    assert not scenario.marker_path.exists()


def test_kill_after_write(scenario: Scenario) -> None:
    scenario.run_killed("after-write")

    stored = read_store(scenario.store_path)
    assert stored.refresh_token != scenario.before_kill.refresh_token
    assert is_unused(scenario.emu, stored.refresh_token)
    assert not scenario.marker_path.exists()
    assert len(refresh_requests(scenario.emu)) == 1

    next_run = scenario.run_next()

    assert_continues(next_run)
    assert len(refresh_requests(scenario.emu)) == 1
    assert read_store(scenario.store_path) == stored
