"""Run the tap as a real process against an emulator and measure it from outside."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tap_baidu_tongji.dates import beijing_today
from tap_baidu_tongji.emulator import Emulator

GET_DATA_PATH = "/rest/2.0/tongji/report/getData"
SITE_LIST_PATH = "/rest/2.0/tongji/config/getSiteList"
TOKEN_PATH = "/oauth/2.0/token"
TAP_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class TapProcessResult:
    """Outcome and resource use of one tap process, from `os.wait4`."""

    returncode: int
    wall_seconds: float
    cpu_seconds: float
    """User plus system CPU time of the process."""
    peak_rss_mib: float
    """Maximum resident set size (`ru_maxrss`)."""
    stderr_path: Path


class TapFailedError(RuntimeError):
    """The tap process exited with a non-zero status."""


def window_days(day_count: int) -> tuple[dt.date, dt.date]:
    """Return (first, last) day of a backfill of `day_count` days that ends yesterday."""
    last = beijing_today() - dt.timedelta(days=1)
    return last - dt.timedelta(days=day_count - 1), last


def tap_config(emu_url: str, emu: Emulator, folder: Path, **overrides: Any) -> dict[str, Any]:
    """Return tap settings that point at `emu_url`, with a token store in `folder`."""
    config: dict[str, Any] = {
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "refresh_token": emu.seed_refresh_token,
        "api_url": emu_url,
        "token_store_path": str(folder / "tokens.json"),
        "retry_initial_wait_seconds": 0.01,
    }
    config.update(overrides)
    return config


def discover_catalog(
    config: Mapping[str, Any], folder: Path, streams: Iterable[str] | None
) -> dict[str, Any]:
    """Run `--discover` and select `streams` (every stream when None) plus `sites`."""
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(config))
    completed = subprocess.run(
        [sys.executable, "-m", "tap_baidu_tongji", "--config", str(config_path), "--discover"],
        capture_output=True,
        text=True,
        timeout=TAP_TIMEOUT_SECONDS,
        check=False,
        cwd=folder,
    )
    if completed.returncode != 0:
        raise TapFailedError(f"tap --discover failed:\n{completed.stderr[-3000:]}")
    catalog: dict[str, Any] = json.loads(completed.stdout)
    selected_streams = None if streams is None else {*streams, "sites"}
    for entry in catalog["streams"]:
        selected = selected_streams is None or entry["tap_stream_id"] in selected_streams
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = selected
    return catalog


def run_tap(
    config: Mapping[str, Any], catalog: Mapping[str, Any], folder: Path, label: str
) -> TapProcessResult:
    """Run one sync with stdout to /dev/null and return its time, CPU and peak RSS.

    `os.wait4` reports the resource use of exactly this child, so runs do not mix.
    """
    config_path = folder / f"{label}-config.json"
    catalog_path = folder / f"{label}-catalog.json"
    stderr_path = folder / f"{label}-stderr.log"
    config_path.write_text(json.dumps(config))
    catalog_path.write_text(json.dumps(catalog))
    args = [
        sys.executable,
        "-m",
        "tap_baidu_tongji",
        "--config",
        str(config_path),
        "--catalog",
        str(catalog_path),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_BAIDU_TONGJI_")}
    with stderr_path.open("wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=folder
        )
        deadline = started + TAP_TIMEOUT_SECONDS
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid != 0:
                break
            if time.perf_counter() > deadline:
                process.kill()
            time.sleep(0.01)
        wall = time.perf_counter() - started
    # Tell Popen the child is reaped, so it does not wait for it again.
    process.returncode = os.waitstatus_to_exitcode(status)
    result = TapProcessResult(
        returncode=process.returncode,
        wall_seconds=wall,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=usage.ru_maxrss / 1024,
        stderr_path=stderr_path,
    )
    if result.returncode != 0:
        tail = stderr_path.read_text(errors="replace")[-3000:]
        raise TapFailedError(f"tap run {label!r} exited with {result.returncode}:\n{tail}")
    return result


def access_token(url: str, emu: Emulator) -> str:
    """Run one refresh grant against `url` and return the new access token."""
    response = requests.post(
        url + TOKEN_PATH,
        data={
            "grant_type": "refresh_token",
            "refresh_token": emu.seed_refresh_token,
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        },
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])
