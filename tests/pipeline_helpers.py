"""Helpers for tests that drive the real `meltano` CLI: the project, PostgreSQL, the emulator.

The meltano CLI comes from `.venv-meltano` (created by `make meltano`), and its plugins from
`meltano install` (run by `make test`). When a tool or the PostgreSQL server is missing, a
test skips on a developer machine and fails when `CI=true`, so CI never hides a broken setup
as a skip.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import pytest
import requests

from tap_baidu_tongji.dates import to_api_date
from tap_baidu_tongji.emulator import Emulator
from tap_baidu_tongji.records import (
    common_track_records,
    daily_records,
    dimension_records,
    realtime_records,
)
from tap_baidu_tongji.reports import REPORTS, Layout, Report

REPO_ROOT = Path(__file__).resolve().parent.parent
MELTANO_BIN = Path(os.environ.get("MELTANO_BIN", REPO_ROOT / ".venv-meltano" / "bin" / "meltano"))
PLUGIN_DIR = REPO_ROOT / ".meltano"
PLUGIN_EXECUTABLES = {
    "tap-baidu-tongji": PLUGIN_DIR / "extractors/tap-baidu-tongji/venv/bin/tap-baidu-tongji",
    "target-postgres": PLUGIN_DIR / "loaders/target-postgres/venv/bin/target-postgres",
    "target-duckdb": PLUGIN_DIR / "loaders/target-duckdb/venv/bin/target-duckdb",
}

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_DATABASE = "test"
# The server must trust connections from 127.0.0.1. PGUSER picks another role.
POSTGRES_USERS = (os.environ["PGUSER"],) if os.environ.get("PGUSER") else ("root", "postgres")

# Variables of the calling shell that would change what the tests configure.
INHERITED_PREFIXES = ("TAP_BAIDU_TONGJI", "TARGET_POSTGRES", "TARGET_DUCKDB", "MELTANO_")

MELTANO_TIMEOUT_SECONDS = 900
REPORTS_BY_STREAM = {report.stream_name: report for report in REPORTS}
DEFAULT_STREAMS = frozenset(
    {"sites"} | {report.stream_name for report in REPORTS if report.selected_by_default}
)
"""Streams the tap selects by default, which meltano.yml's `select` list must name."""


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test on a developer machine, but fail it in CI, where the setup is required."""
    if running_in_ci():
        pytest.fail(f"{reason} (CI=true, so this is a failure instead of a skip)")
    pytest.skip(reason)


def require_meltano(*plugins: str) -> None:
    """Skip or fail unless the meltano CLI and the given plugins are installed."""
    if not MELTANO_BIN.exists():
        skip_or_fail(f"meltano CLI not found at {MELTANO_BIN}: run `make meltano`")
    for plugin in plugins:
        if not PLUGIN_EXECUTABLES[plugin].exists():
            skip_or_fail(
                f"Meltano plugin {plugin} is not installed: run `make test`, or "
                f"`{MELTANO_BIN} install {plugin}`"
            )


def connect_postgres() -> psycopg.Connection[Any]:
    """Connect to database `test` on 127.0.0.1:5432 in autocommit mode, or skip or fail."""
    errors = []
    for user in POSTGRES_USERS:
        try:
            return psycopg.connect(
                host=POSTGRES_HOST,
                port=POSTGRES_PORT,
                dbname=POSTGRES_DATABASE,
                user=user,
                connect_timeout=5,
                autocommit=True,
            )
        except psycopg.OperationalError as error:
            errors.append(f"{user}: {str(error).strip()}")
    skip_or_fail(
        f"No PostgreSQL server accepts connections to database {POSTGRES_DATABASE} on "
        f"{POSTGRES_HOST}:{POSTGRES_PORT} ({'; '.join(errors)}). Start one, for example with "
        "`pg_ctlcluster --skip-systemctl-redirect <version> main start`."
    )


def postgres_url(connection: psycopg.Connection[Any]) -> str:
    """Return the SQLAlchemy URL of the server and role that `connection` uses."""
    info = connection.info
    return f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{info.dbname}"


def clean_environment() -> dict[str, str]:
    """Return os.environ without the variables that would override the test's settings."""
    return {
        name: value for name, value in os.environ.items() if not name.startswith(INHERITED_PREFIXES)
    }


@dataclass
class MeltanoProject:
    """A private copy of the repository's Meltano project, with its own state and run files.

    `project_dir` contains a copy of meltano.yml and a `.meltano/` whose extractors and loaders
    link to the plugin venvs that `make test` installed in the repository. Catalog and config
    files (`.meltano/run/`) and the system database (state and run history) are private, so
    tests that run at the same time, and a developer's own runs, never share them.
    """

    work_dir: Path
    environment: str = "dev"
    settings: dict[str, str] = field(default_factory=dict)
    """Environment variables such as TAP_BAIDU_TONGJI_START_DATE that configure the plugins."""

    def __post_init__(self) -> None:
        system_dir = self.project_dir / ".meltano"
        system_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / "meltano.yml", self.project_dir / "meltano.yml")
        for plugin_type in ("extractors", "loaders"):
            link = system_dir / plugin_type
            if not link.exists():
                link.symlink_to(PLUGIN_DIR / plugin_type, target_is_directory=True)

    @property
    def project_dir(self) -> Path:
        return self.work_dir / "project"

    @property
    def database_uri(self) -> str:
        return f"sqlite:///{self.work_dir / 'meltano.db'}"

    def environment_variables(self, settings: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return the environment for a meltano command: clean, with the plugin settings."""
        env = clean_environment()
        env.update(self.settings)
        env.update(settings or {})
        env["MELTANO_DATABASE_URI"] = self.database_uri
        env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        # The plugin venvs are shared links, so meltano must never reinstall into them.
        env["MELTANO_AUTO_INSTALL"] = "false"
        return env

    def run_command(
        self, *args: str, settings: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `meltano --environment <env> ARGS` in the project and fail the test if it fails."""
        command = [str(MELTANO_BIN), "--environment", self.environment, *args]
        completed = subprocess.run(
            command,
            cwd=self.project_dir,
            env=self.environment_variables(settings),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MELTANO_TIMEOUT_SECONDS,
            check=False,
        )
        with (self.work_dir / "meltano.log").open("a") as log:
            log.write(f"$ {' '.join(command)}\n{completed.stdout}{completed.stderr}\n")
        if completed.returncode != 0:
            output = (completed.stdout + completed.stderr)[-6000:]
            pytest.fail(
                f"`{' '.join(command[1:])}` failed with exit status {completed.returncode}. "
                f"Last output:\n{output}"
            )
        return completed

    def run_pipeline(
        self, extractor: str, loader: str, settings: Mapping[str, str] | None = None
    ) -> None:
        self.run_command("run", "--refresh-catalog", extractor, loader, settings=settings)

    def state(self, state_id: str) -> dict[str, Any]:
        """Return the state that meltano stored under `state_id`."""
        output = self.run_command("state", "get", state_id).stdout
        return json.loads(output)


def descendant_process_ids(root_pid: int) -> list[int]:
    """Return the ids of the running processes below `root_pid`, read from /proc (Linux only).

    Tests that stop a plugin inside `meltano run` use this to find their own tap, instead of
    matching command lines that other test runs share.
    """
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in brackets may contain spaces, so fields are read after it.
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)] = int(fields[1])

    found: list[int] = []
    frontier = [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def tap_settings(emulator: Emulator, token_store: Path, **settings: Any) -> dict[str, str]:
    """Return TAP_BAIDU_TONGJI_* variables that point the tap at the emulator."""
    values: dict[str, Any] = {
        "api_url": emulator.url,
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
        "refresh_token": emulator.seed_refresh_token,
        "token_store_path": str(token_store),
        **settings,
    }
    env = {}
    for name, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value)
        env[f"TAP_BAIDU_TONGJI_{name.upper()}"] = text
    return env


# --- What the emulator serves ------------------------------------------------------------


class EmulatorReader:
    """Read reports from the emulator over HTTP with a token of its own.

    The token comes from an authorization code, so the seed refresh token that the tap
    starts from is never consumed here.
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.session = requests.Session()
        code = emulator.issue_authorization_code()
        response = self.session.post(
            f"{emulator.url}/oauth/2.0/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": emulator.client_id,
                "client_secret": emulator.client_secret,
                "redirect_uri": "oob",
            },
            timeout=30,
        )
        response.raise_for_status()
        self.access_token = response.json()["access_token"]

    def get_data(self, report: Report, site_id: int, **params: Any) -> dict[str, Any]:
        """Return the `result` of one report/getData call, all rows on one page."""
        query = {
            "access_token": self.access_token,
            "site_id": site_id,
            "method": report.method,
            "metrics": ",".join(report.metrics),
            **dict(report.fixed_params),
            **params,
        }
        if report.paged:
            query.update(start_index=0, max_results=10_000)
        response = self.session.get(
            f"{self.emulator.url}/rest/2.0/tongji/report/getData", params=query, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        assert "result" in body, f"emulator returned an error for {report.method}: {body}"
        result: dict[str, Any] = body["result"]
        if report.paged:
            rows = len(result["items"][0]) if result.get("items") else 0
            assert rows == result.get("total", rows), f"{report.method} did not fit on one page"
        return result

    def range_records(
        self, report: Report, site_id: int, first: dt.date, last: dt.date
    ) -> list[dict[str, Any]]:
        """Return the records of one report and site for the days `first` to `last`.

        For a DAILY_ROWS report this is one range request, as the tap sends it, because
        share-of-total metrics such as pv_ratio depend on the requested range. Other
        reports are requested one day at a time, as the tap does.
        """
        if report.layout is Layout.DAILY_ROWS:
            result = self.get_data(
                report, site_id, start_date=to_api_date(first), end_date=to_api_date(last)
            )
            records = []
            for day, record in daily_records(result, report):
                if first <= day <= last:
                    record["date"] = day.isoformat()
                    records.append(record)
        else:
            records = []
            for day in days_between(first, last):
                api_day = to_api_date(day)
                result = self.get_data(report, site_id, start_date=api_day, end_date=api_day)
                if report.layout is Layout.KEYED_SUBREPORTS:
                    day_records = common_track_records(result, report)
                else:
                    day_records = dimension_records(result, report)
                for record in day_records:
                    record["date"] = day.isoformat()
                records.extend(day_records)
        for record in records:
            record["site_id"] = site_id
        return records

    def latest_visits(self, report: Report, site_id: int) -> list[dict[str, Any]]:
        records = realtime_records(self.get_data(report, site_id))
        for record in records:
            record["site_id"] = site_id
        return records

    def expected_records(
        self,
        streams: Iterable[str],
        site_ids: Sequence[int],
        run_windows: Sequence[tuple[dt.date, dt.date]],
    ) -> dict[str, list[dict[str, Any]]]:
        """Return, per stream, every record the tap should have loaded after these runs.

        `run_windows` lists the first and last day each run read, oldest run first. A day
        read again by a later run takes that run's values, as the target upserts it.
        """
        expected: dict[str, list[dict[str, Any]]] = {}
        for stream in streams:
            if stream == "sites":
                expected[stream] = [{"site_id": site_id} for site_id in site_ids]
                continue
            report = REPORTS_BY_STREAM[stream]
            records: list[dict[str, Any]] = []
            for site_id in site_ids:
                if report.layout is Layout.REALTIME:
                    records.extend(self.latest_visits(report, site_id))
                    continue
                by_day: dict[str, list[dict[str, Any]]] = {}
                for first, last in run_windows:
                    run_records = self.range_records(report, site_id, first, last)
                    for day in days_between(first, last):
                        by_day[day.isoformat()] = []
                    for record in run_records:
                        by_day[record["date"]].append(record)
                for day_text in sorted(by_day):
                    records.extend(by_day[day_text])
            expected[stream] = records
        return expected


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]


# --- Comparing values --------------------------------------------------------------------


def as_stored_timestamp(value: Any) -> Any:
    """Convert an ISO timestamp with an offset to the naive UTC value target-postgres stores.

    target-postgres 0.8.1 creates `date-time` columns as `timestamp without time zone` and
    writes the instant in UTC. Other values are returned unchanged.
    """
    if not isinstance(value, str) or "T" not in value:
        return value
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        return parsed
    return parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)


def same_value(expected: Any, actual: Any) -> bool:
    """Compare a record value with the value PostgreSQL returned for it."""
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(actual, dt.datetime):
        return bool(actual == as_stored_timestamp(str(expected)))
    if isinstance(actual, dt.date):
        return actual.isoformat() == str(expected)
    if isinstance(expected, bool):
        return bool(actual) == expected
    if isinstance(expected, (int, float)):
        return math.isclose(float(actual), float(expected), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, (dict, list)):
        loaded = json.loads(actual) if isinstance(actual, str) else actual
        return bool(loaded == expected)
    return str(actual) == str(expected)
