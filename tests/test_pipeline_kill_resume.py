"""A tap killed inside `meltano run ... target-postgres` resumes to exactly the full rows."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tap_baidu_tongji.dates import beijing_today
from tap_baidu_tongji.emulator import Emulator
from tests.pipeline_helpers import (
    MELTANO_BIN,
    MeltanoProject,
    connect_postgres,
    descendant_process_ids,
    postgres_url,
    require_meltano,
    tap_settings,
)

pytestmark = [pytest.mark.postgres, pytest.mark.meltano]

STREAMS = ("visit_district", "overview_time_trend")
START_DATE = beijing_today() - dt.timedelta(days=20)
END_DATE = START_DATE + dt.timedelta(days=9)
KILL_AFTER_DATA_REQUESTS = 16
"""Ten days per site are read one request each, so this kill lands inside the second site."""

TAP_EXECUTABLE = "extractors/tap-baidu-tongji/venv/bin/tap-baidu-tongji"


def pipeline_settings(
    emulator: Emulator, token_store: Path, schema: str, url: str
) -> dict[str, str]:
    selection = json.dumps(["sites.*", *(f"{stream}.*" for stream in STREAMS)])
    return {
        **tap_settings(
            emulator,
            token_store,
            start_date=START_DATE.isoformat(),
            end_date=END_DATE.isoformat(),
            max_concurrent_requests=1,
        ),
        "TAP_BAIDU_TONGJI__SELECT": selection,
        "TARGET_POSTGRES_SQLALCHEMY_URL": url,
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
        # Small batches make the target commit, and pass state on, during the run.
        "TARGET_POSTGRES_BATCH_SIZE_ROWS": "20",
    }


def tap_process_ids(meltano_pid: int) -> list[int]:
    """Return the ids of the tap processes that this `meltano run` started."""
    found = []
    for pid in descendant_process_ids(meltano_pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if TAP_EXECUTABLE in command and "--discover" not in command:
            found.append(pid)
    return found


def data_request_count(emulator: Emulator) -> int:
    return sum(1 for entry in emulator.request_log if entry.path.endswith("/report/getData"))


def run_and_kill_tap(project: MeltanoProject, emulator: Emulator) -> int:
    """Start `meltano run`, SIGKILL the tap after enough data requests, return meltano's exit."""
    command = [str(MELTANO_BIN), "--environment", project.environment, "run"]
    command += ["--refresh-catalog", "tap-baidu-tongji", "target-postgres"]
    log = (project.work_dir / "killed-run.log").open("w")
    process = subprocess.Popen(
        command,
        cwd=project.project_dir,
        env=project.environment_variables(),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    killed = False
    while process.poll() is None and time.monotonic() < deadline:
        if not killed and data_request_count(emulator) >= KILL_AFTER_DATA_REQUESTS:
            for pid in tap_process_ids(process.pid):
                os.kill(pid, signal.SIGKILL)
                killed = True
        time.sleep(0.02)
    exit_code = process.wait(timeout=300)
    log.close()
    output = (project.work_dir / "killed-run.log").read_text()[-4000:]
    assert killed, f"the tap ended before it could be killed; meltano's output:\n{output}"
    return exit_code


def table_rows(connection: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    """Return every row without Singer metadata columns, as sorted text; none without a table."""
    columns = [
        row[0]
        for row in connection.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s AND column_name NOT LIKE %s",
            [schema, table, "\\_sdc\\_%"],
        ).fetchall()
    ]
    if not columns:
        return []
    query = sql.SQL("SELECT {} FROM {}.{}").format(
        sql.SQL(", ").join(sql.Identifier(column) for column in sorted(columns)),
        sql.Identifier(schema),
        sql.Identifier(table),
    )
    return sorted(repr(row) for row in connection.execute(query).fetchall())


def test_killed_pipeline_resumes_to_full_rows(tmp_path: Path) -> None:
    require_meltano("tap-baidu-tongji", "target-postgres")
    connection = connect_postgres()
    suffix = uuid.uuid4().hex[:10]
    full_schema, resumed_schema = f"tongji_full_{suffix}", f"tongji_resumed_{suffix}"

    with connection, Emulator(port=0) as emulator:
        url = postgres_url(connection)
        token_store = tmp_path / "tokens.json"
        try:
            full_dir = tmp_path / "full"
            full_dir.mkdir()
            full = MeltanoProject(work_dir=full_dir)
            # Both projects share one token chain, as two pipelines of one account do.
            full.settings = pipeline_settings(emulator, token_store, full_schema, url)
            full.run_pipeline("tap-baidu-tongji", "target-postgres")

            resumed_dir = tmp_path / "resumed"
            resumed_dir.mkdir()
            emulator.faults.latency_seconds = 0.05
            emulator.clear_request_log()
            resumed = MeltanoProject(work_dir=resumed_dir)
            resumed.settings = pipeline_settings(emulator, token_store, resumed_schema, url)
            exit_code = run_and_kill_tap(resumed, emulator)
            emulator.faults.latency_seconds = 0.0
            assert exit_code != 0

            rows_after_kill = table_rows(connection, resumed_schema, "visit_district")
            emulator.clear_request_log()
            resumed.run_pipeline("tap-baidu-tongji", "target-postgres")
            resumed_days = [
                entry.params["start_date"]
                for entry in emulator.request_log
                if entry.params.get("method") == "visit/district/a"
            ]

            full_rows = table_rows(connection, full_schema, "visit_district")
            assert 0 < len(rows_after_kill) < len(full_rows)
            # Sites finished before the kill resume at their bookmark, not at start_date.
            full_window_requests = len(emulator.sites) * ((END_DATE - START_DATE).days + 1)
            assert len(resumed_days) < full_window_requests
            for table in ("sites", *STREAMS):
                assert table_rows(connection, resumed_schema, table) == table_rows(
                    connection, full_schema, table
                ), table
        finally:
            for schema in (full_schema, resumed_schema):
                connection.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
