"""No secret in any output of `meltano run` along every error path, with the tap at DEBUG.

Meltano 4 hands the tap a logging configuration at Meltano's own log level, which wins over
TAP_BAIDU_TONGJI_LOGLEVEL, so every command runs with `meltano --log-level=debug` as well.

Each path runs `meltano run tap-baidu-tongji target-duckdb` against its own emulator, whose
client_secret and seed refresh token are unique to the test, so a hit can only come from
that test's runs. The scan covers meltano's stdout and stderr, every file under the
repository's `.meltano/logs/` and `.meltano/run/`, the job logs that Meltano 4 writes under
XDG_STATE_HOME (set per test), and the Meltano system database. It looks for the
client_secret, the configured refresh and access tokens, every access and refresh token
the emulator issued and every authorization code it issued.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tap_baidu_tongji.dates import beijing_today
from tap_baidu_tongji.emulator import Emulator, Failure, FailureKind
from tests.pipeline_helpers import (
    MELTANO_BIN,
    PLUGIN_DIR,
    REPO_ROOT,
    MeltanoProject,
    clean_environment,
    require_meltano,
    tap_settings,
)

pytestmark = [pytest.mark.meltano]

DAY = beijing_today() - dt.timedelta(days=3)
MELTANO_TIMEOUT_SECONDS = 300
SCANNED_FOLDERS = (PLUGIN_DIR / "logs", PLUGIN_DIR / "run")
MARKER_MESSAGE = "An earlier run started a refresh of the access token"


@dataclass
class LeakScan:
    """One path's emulator, Meltano project and everything its runs wrote."""

    emulator: Emulator
    project: MeltanoProject
    settings: dict[str, str]
    secrets: dict[str, str] = field(default_factory=dict)
    """Label -> secret value. Labels, never values, go into failure messages."""
    outputs: dict[str, str] = field(default_factory=dict)
    """Label -> text of one output: a run's stdout or stderr."""

    def meltano(
        self, *args: str, settings: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `meltano --log-level=debug --environment dev ARGS`, keeping output and failures."""
        env = clean_environment()
        env.update(self.settings)
        env.update(settings or {})
        env["MELTANO_DATABASE_URI"] = self.project.database_uri
        env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        env["XDG_STATE_HOME"] = str(self.state_home)
        completed = subprocess.run(
            [str(MELTANO_BIN), "--log-level=debug", "--environment", "dev", *args],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MELTANO_TIMEOUT_SECONDS,
            check=False,
        )
        label = f"meltano {' '.join(args)} #{len(self.outputs) // 2 + 1}"
        self.outputs[f"{label} stdout"] = completed.stdout
        self.outputs[f"{label} stderr"] = completed.stderr
        return completed

    @property
    def state_home(self) -> Path:
        """XDG_STATE_HOME of the runs, where Meltano 4 keeps job logs (`meltano/log/`)."""
        return self.project.work_dir / "state"

    def run_pipeline(self) -> subprocess.CompletedProcess[str]:
        return self.meltano("run", "tap-baidu-tongji", "target-duckdb")

    def collect_emulator_secrets(self) -> None:
        """Add every token and authorization code the emulator issued."""
        # The emulator's own bookkeeping, because its request log never shows issued tokens.
        tokens = self.emulator.tokens
        for index, token in enumerate(tokens._refresh_tokens):
            self.secrets[f"issued refresh token {index}"] = token
        for index, token in enumerate(tokens._access_tokens):
            self.secrets[f"issued access token {index}"] = token
        for index, code in enumerate(tokens._codes):
            self.secrets[f"authorization code {index}"] = code

    def hits(self) -> list[str]:
        """Return 'secret label in source' for every secret found in any output or file."""
        self.collect_emulator_secrets()
        sources: dict[str, bytes] = {
            label: text.encode("utf-8") for label, text in self.outputs.items()
        }
        for folder in (*SCANNED_FOLDERS, self.state_home):
            if not folder.is_dir():
                continue
            for path in folder.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    sources[str(path)] = path.read_bytes()
        database = self.project.work_dir / "meltano.db"
        if database.exists():
            sources["Meltano system database"] = database.read_bytes()

        found = []
        for source, content in sources.items():
            for label, secret in self.secrets.items():
                count = content.count(secret.encode("utf-8"))
                if count:
                    found.append(f"{label} in {source} ({count} times)")
        return found


@pytest.fixture
def leak_scan(tmp_path: Path) -> Iterator[LeakScan]:
    require_meltano("tap-baidu-tongji", "target-duckdb")
    unique = uuid.uuid4().hex
    with Emulator(
        port=0,
        client_secret=f"leak-scan-client-secret-{unique}",
        seed_refresh_token=f"leak-scan-seed-refresh-token-{unique}",
    ) as emulator:
        settings = tap_settings(
            emulator,
            tmp_path / "tokens.json",
            start_date=DAY.isoformat(),
            end_date=DAY.isoformat(),
            retry_max_tries=2,
            request_timeout_seconds=1,
        )
        settings["TAP_BAIDU_TONGJI_LOGLEVEL"] = "DEBUG"
        settings["TARGET_DUCKDB_FILEPATH"] = str(tmp_path / "warehouse.duckdb")
        scan = LeakScan(emulator, MeltanoProject(work_dir=tmp_path), settings)
        scan.secrets["client_secret"] = emulator.client_secret
        scan.secrets["seed refresh token"] = emulator.seed_refresh_token
        yield scan


def closed_port_url() -> str:
    """Return the URL of a 127.0.0.1 port on which nothing listens any more."""
    with Emulator(port=0) as stopped:
        return stopped.url


@dataclass(frozen=True)
class ErrorPath:
    name: str
    prepare: Callable[[LeakScan], None]
    expected: str
    """Text in the failed run's output that proves the path was taken."""
    next_run_expected: str | None = None
    """Text in a second run's output, for paths whose next run stops differently."""


def fail_data_calls(kind: FailureKind, **selection: Any) -> Callable[[LeakScan], None]:
    """Fail every getSiteList and getData call, but no token request."""

    def prepare(scan: LeakScan) -> None:
        for endpoint in DATA_ENDPOINTS:
            scan.emulator.faults.add_failure(Failure(kind, endpoint=endpoint, **selection))

    return prepare


def point_at_closed_port(scan: LeakScan) -> None:
    # A configured access token is used without a refresh, so the data call itself is
    # refused, and its URL, access token included, reaches the exception text.
    access_token = f"leak-scan-access-token-{uuid.uuid4().hex}"
    scan.secrets["configured access token"] = access_token
    scan.settings["TAP_BAIDU_TONGJI_API_URL"] = closed_port_url()
    scan.settings["TAP_BAIDU_TONGJI_ACCESS_TOKEN"] = access_token


def refuse_token_endpoint(scan: LeakScan) -> None:
    scan.settings["TAP_BAIDU_TONGJI_API_URL"] = closed_port_url()


def use_unknown_refresh_token(scan: LeakScan) -> None:
    unknown = f"leak-scan-unknown-refresh-token-{uuid.uuid4().hex}"
    scan.secrets["unknown refresh token"] = unknown
    scan.settings["TAP_BAIDU_TONGJI_REFRESH_TOKEN"] = unknown


def fail_token_requests(scan: LeakScan) -> None:
    scan.emulator.faults.add_failure(Failure(FailureKind.HTTP_STATUS, status=502, endpoint="token"))


def drop_refresh_response(scan: LeakScan) -> None:
    scan.emulator.faults.drop_refresh_responses = 1


DATA_ENDPOINTS = ("getSiteList", "getData")
ERROR_PATHS = [
    ErrorPath(
        "bad token 110",
        fail_data_calls(FailureKind.ERROR_CODE, error_code=110),
        "Tongji API error 110",
    ),
    ErrorPath(
        "expired token 111",
        fail_data_calls(FailureKind.ERROR_CODE, error_code=111),
        "Tongji API error 111",
    ),
    ErrorPath("data call refused", point_at_closed_port, "Connection refused"),
    ErrorPath("token endpoint refused", refuse_token_endpoint, "Cannot connect to the token"),
    ErrorPath(
        "timeout",
        fail_data_calls(FailureKind.TIMEOUT, delay_seconds=3),
        "timed out",
    ),
    ErrorPath(
        "server error 500",
        fail_data_calls(FailureKind.ERROR_CODE, error_code=2, status=500),
        "Tongji API error 2",
    ),
    ErrorPath(
        "HTML body",
        fail_data_calls(FailureKind.HTTP_STATUS, status=502),
        "not JSON (HTTP 502)",
    ),
    ErrorPath("truncated JSON", fail_data_calls(FailureKind.TRUNCATED), "not JSON"),
    ErrorPath("invalid_grant", use_unknown_refresh_token, "invalid_grant"),
    ErrorPath(
        "token endpoint 502",
        fail_token_requests,
        "unknown outcome",
        next_run_expected=MARKER_MESSAGE,
    ),
    ErrorPath(
        "dropped refresh response",
        drop_refresh_response,
        "unknown outcome",
        next_run_expected=MARKER_MESSAGE,
    ),
]


@pytest.mark.parametrize("path", ERROR_PATHS, ids=[path.name for path in ERROR_PATHS])
def test_error_path_leaks_nothing(leak_scan: LeakScan, path: ErrorPath) -> None:
    path.prepare(leak_scan)

    failed = leak_scan.run_pipeline()

    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, output[-3000:]
    assert path.expected in output, output[-3000:]
    assert "[debug" in output
    if path.next_run_expected is not None:
        next_run = leak_scan.run_pipeline()
        next_output = next_run.stdout + next_run.stderr
        assert next_run.returncode != 0
        assert path.next_run_expected in next_output, next_output[-3000:]
    assert leak_scan.hits() == []


def test_successful_run_leaks_nothing(leak_scan: LeakScan) -> None:
    # A first run refreshes from the seed, and the second refreshes again after the
    # emulator expired every access token, so two pairs pass through the logs.
    first = leak_scan.run_pipeline()
    leak_scan.emulator.expire_access_tokens()
    second = leak_scan.run_pipeline()

    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(leak_scan.emulator.tokens._access_tokens) == 2
    assert leak_scan.hits() == []

    # The scan finds a token that does appear in an output.
    leak_scan.outputs["control"] = f"access_token {leak_scan.secrets['issued access token 1']}"
    assert leak_scan.hits() == ["issued access token 1 in control (1 times)"]


def test_authorized_store_leaks_nothing(leak_scan: LeakScan, tmp_path: Path) -> None:
    store_path = tmp_path / "authorized-tokens.json"
    code = leak_scan.emulator.issue_authorization_code()
    command = [sys.executable, "-m", "tap_baidu_tongji.auth.cli", "--api-url"]
    command += [leak_scan.emulator.url, "--client-id", leak_scan.emulator.client_id]
    command += ["--code", code, "--token-store-path", str(store_path)]
    env = clean_environment()
    env["TAP_BAIDU_TONGJI_CLIENT_SECRET"] = leak_scan.emulator.client_secret
    for attempt in ("first", "reused code"):
        completed = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=60, check=False
        )
        leak_scan.outputs[f"auth CLI, {attempt}, stdout"] = completed.stdout
        leak_scan.outputs[f"auth CLI, {attempt}, stderr"] = completed.stderr
    assert store_path.exists()
    assert "invalid_grant" in leak_scan.outputs["auth CLI, reused code, stderr"]

    # The pipeline starts from the store that the authorization wrote.
    leak_scan.settings.pop("TAP_BAIDU_TONGJI_REFRESH_TOKEN")
    leak_scan.settings["TAP_BAIDU_TONGJI_TOKEN_STORE_PATH"] = str(store_path)
    leak_scan.emulator.expire_access_tokens()
    run = leak_scan.run_pipeline()

    assert run.returncode == 0, run.stderr[-3000:]
    assert leak_scan.hits() == []


def test_about_and_invalid_settings_leak_nothing(leak_scan: LeakScan) -> None:
    about = leak_scan.meltano("invoke", "tap-baidu-tongji", "--about")
    about_json = leak_scan.meltano("invoke", "tap-baidu-tongji", "--about", "--format", "json")
    own_rule = leak_scan.meltano(
        "run", "tap-baidu-tongji", "target-duckdb", settings={"TAP_BAIDU_TONGJI_SHARD_INDEX": "2"}
    )
    schema_rule = leak_scan.meltano(
        "run",
        "tap-baidu-tongji",
        "target-duckdb",
        settings={"TAP_BAIDU_TONGJI_PAGE_SIZE": "-5", "TAP_BAIDU_TONGJI_CLIENT_ID": ""},
    )

    assert about.returncode == 0, about.stderr[-3000:]
    assert "client_secret" in about.stdout
    assert about_json.returncode == 0, about_json.stderr[-3000:]
    for invalid in (own_rule, schema_rule):
        assert invalid.returncode != 0
        assert "Config validation failed" in invalid.stdout + invalid.stderr
    assert leak_scan.hits() == []


def test_el_job_log_leaks_nothing(leak_scan: LeakScan) -> None:
    # `meltano el` writes a job log with the tap's output, which the scan must cover.
    state_id = f"leak-scan-{uuid.uuid4().hex}"
    leak_scan.emulator.expire_access_tokens()
    fail_data_calls(FailureKind.ERROR_CODE, error_code=111)(leak_scan)

    failed = leak_scan.meltano("el", "tap-baidu-tongji", "target-duckdb", "--state-id", state_id)

    assert failed.returncode != 0
    job_logs = list((leak_scan.state_home / "meltano" / "log" / "elt" / state_id).rglob("*.log"))
    assert job_logs, "meltano el wrote no job log"
    assert any(b"Tongji API error 111" in log.read_bytes() for log in job_logs)
    assert leak_scan.hits() == []
