"""End to end: `meltano run tap-baidu-tongji target-postgres` against the local emulator.

One module-scoped pipeline runs twice with every default stream selected: first over a
pinned six-day window, then with an end date two days later. Between the runs the tests
keep the row counts, the bookmarks and the emulator's request log, and then check the
PostgreSQL tables, the second run's requests and meltano's stored state.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tap_baidu_tongji.dates import beijing_today
from tap_baidu_tongji.emulator import Emulator, LoggedRequest
from tap_baidu_tongji.reports import REPORTS_BY_METHOD, Layout
from tap_baidu_tongji.settings import DEFAULT_LOOKBACK_DAYS
from tests.pipeline_helpers import (
    DEFAULT_STREAMS,
    REPORTS_BY_STREAM,
    EmulatorReader,
    MeltanoProject,
    as_stored_timestamp,
    connect_postgres,
    days_between,
    postgres_url,
    require_meltano,
    same_value,
    tap_settings,
)

pytestmark = [pytest.mark.postgres, pytest.mark.meltano]

STATE_ID = "dev:tap-baidu-tongji-to-target-postgres"
GET_DATA_PATH = "/rest/2.0/tongji/report/getData"

# Pinned days, well before today so that neither run is cut short at yesterday. The first
# window is longer than the look-back, so the second run has days it must not request.
TODAY = beijing_today()
START_DATE = TODAY - dt.timedelta(days=14)
FIRST_END_DATE = START_DATE + dt.timedelta(days=5)
SECOND_END_DATE = FIRST_END_DATE + dt.timedelta(days=2)
SECOND_RUN_START = FIRST_END_DATE - dt.timedelta(days=DEFAULT_LOOKBACK_DAYS)

REPORT_STREAMS = sorted(DEFAULT_STREAMS - {"sites"})
DAILY_STREAMS = [
    stream for stream in REPORT_STREAMS if REPORTS_BY_STREAM[stream].layout is not Layout.REALTIME
]


@dataclass
class PipelineRuns:
    """What the two runs left behind, with what was observed between them."""

    connection: psycopg.Connection[Any]
    schema: str
    project: MeltanoProject
    emulator: Emulator
    site_ids: list[int]
    primary_keys: dict[str, list[str]]
    first_counts: dict[str, int]
    first_state: dict[str, Any]
    second_requests: list[LoggedRequest]
    all_requests: list[LoggedRequest]


def table_names(connection: psycopg.Connection[Any], schema: str) -> set[str]:
    rows = connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema]
    ).fetchall()
    return {row[0] for row in rows}


def row_count(connection: psycopg.Connection[Any], schema: str, table: str) -> int:
    query = sql.SQL("SELECT count(*) FROM {}.{}").format(
        sql.Identifier(schema), sql.Identifier(table)
    )
    row = connection.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def distinct_key_count(
    connection: psycopg.Connection[Any], schema: str, table: str, keys: list[str]
) -> int:
    query = sql.SQL("SELECT count(*) FROM (SELECT DISTINCT {} FROM {}.{}) AS keys").format(
        sql.SQL(", ").join(sql.Identifier(key) for key in keys),
        sql.Identifier(schema),
        sql.Identifier(table),
    )
    row = connection.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def fetch_row(
    connection: psycopg.Connection[Any], schema: str, table: str, key: dict[str, Any]
) -> dict[str, Any] | None:
    """Return the row with this primary key.

    Key values are sent untyped, so PostgreSQL casts an ISO date or timestamp string to the
    column's type before comparing.
    """
    condition = sql.SQL(" AND ").join(
        sql.SQL("{} = %s").format(sql.Identifier(column)) for column in key
    )
    query = sql.SQL("SELECT * FROM {}.{} WHERE {}").format(
        sql.Identifier(schema), sql.Identifier(table), condition
    )
    with connection.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        values = [as_stored_timestamp(value) for value in key.values()]
        rows = cursor.execute(query, values).fetchall()
    assert len(rows) <= 1, f"{table} has {len(rows)} rows for primary key {key}"
    return rows[0] if rows else None


def bookmarks(state: dict[str, Any], stream: str) -> dict[int, str]:
    """Return the bookmark of each site of one stream in a meltano state object."""
    partitions = state["singer_state"]["bookmarks"].get(stream, {}).get("partitions", [])
    return {
        int(partition["context"]["site_id"]): partition["replication_key_value"]
        for partition in partitions
    }


def requested_days(request: LoggedRequest) -> list[dt.date]:
    first = dt.datetime.strptime(request.params["start_date"], "%Y%m%d").date()
    last = dt.datetime.strptime(request.params["end_date"], "%Y%m%d").date()
    return days_between(first, last)


def discover_primary_keys(project: MeltanoProject) -> dict[str, list[str]]:
    """Return the key properties of every stream, as the tap's catalog declares them."""
    output = project.run_command("invoke", "tap-baidu-tongji", "--discover").stdout
    catalog = json.loads(output)
    keys = {}
    for stream in catalog["streams"]:
        metadata = next(entry for entry in stream["metadata"] if entry["breadcrumb"] == [])
        keys[stream["tap_stream_id"]] = metadata["metadata"]["table-key-properties"]
    return keys


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineRuns]:
    require_meltano("tap-baidu-tongji", "target-postgres")
    connection = connect_postgres()
    schema = f"tap_baidu_tongji_test_{uuid.uuid4().hex[:12]}"
    work_dir: Path = tmp_path_factory.mktemp("meltano-postgres")

    with Emulator(port=0) as emulator, connection:
        project = MeltanoProject(work_dir=work_dir, environment="dev")
        project.settings = {
            **tap_settings(
                emulator,
                work_dir / "tokens.json",
                start_date=START_DATE.isoformat(),
                end_date=FIRST_END_DATE.isoformat(),
            ),
            # target-postgres requires a password with host/user settings, and the test
            # server trusts 127.0.0.1, so the URL form is used.
            "TARGET_POSTGRES_SQLALCHEMY_URL": postgres_url(connection),
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
        }
        try:
            primary_keys = discover_primary_keys(project)
            project.run_pipeline("tap-baidu-tongji", "target-postgres")
            first_counts = {
                table: row_count(connection, schema, table)
                for table in table_names(connection, schema)
            }
            first_state = project.state(STATE_ID)

            log_length = len(emulator.request_log)
            project.run_pipeline(
                "tap-baidu-tongji",
                "target-postgres",
                settings={"TAP_BAIDU_TONGJI_END_DATE": SECOND_END_DATE.isoformat()},
            )
            all_requests = emulator.request_log
            yield PipelineRuns(
                connection=connection,
                schema=schema,
                project=project,
                emulator=emulator,
                site_ids=[int(str(site["site_id"])) for site in emulator.sites],
                primary_keys=primary_keys,
                first_counts=first_counts,
                first_state=first_state,
                second_requests=all_requests[log_length:],
                all_requests=all_requests,
            )
        finally:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


@pytest.fixture(scope="module")
def expected(pipeline: PipelineRuns) -> dict[str, list[dict[str, Any]]]:
    """Every record the emulator serves for the whole window of both runs."""
    reader = EmulatorReader(pipeline.emulator)
    run_windows = [(START_DATE, FIRST_END_DATE), (SECOND_RUN_START, SECOND_END_DATE)]
    return reader.expected_records(sorted(DEFAULT_STREAMS), pipeline.site_ids, run_windows)


def test_every_request_succeeded(pipeline: PipelineRuns) -> None:
    failed = [
        (request.path, request.status, request.error_code)
        for request in pipeline.all_requests
        if request.status != 200 or request.error_code is not None
    ]
    assert failed == []


def test_first_run_creates_default_tables(pipeline: PipelineRuns) -> None:
    assert set(pipeline.first_counts) == DEFAULT_STREAMS


def test_first_run_counts_match_emulator(
    pipeline: PipelineRuns, expected: dict[str, list[dict[str, Any]]]
) -> None:
    last_day = FIRST_END_DATE.isoformat()
    for stream in sorted(DEFAULT_STREAMS):
        records = [record for record in expected[stream] if record.get("date", "") <= last_day]
        assert len(records) > 0, f"the emulator serves no {stream} rows in the first window"
        assert pipeline.first_counts[stream] == len(records), stream


def test_second_run_counts_match_emulator(
    pipeline: PipelineRuns, expected: dict[str, list[dict[str, Any]]]
) -> None:
    for stream in sorted(DEFAULT_STREAMS):
        count = row_count(pipeline.connection, pipeline.schema, stream)
        assert count == len(expected[stream]), stream


def test_second_run_adds_new_days(pipeline: PipelineRuns) -> None:
    for stream in DAILY_STREAMS:
        count = row_count(pipeline.connection, pipeline.schema, stream)
        assert count > pipeline.first_counts[stream], stream


def test_no_row_is_duplicated(pipeline: PipelineRuns) -> None:
    for stream in sorted(DEFAULT_STREAMS):
        keys = pipeline.primary_keys[stream]
        count = row_count(pipeline.connection, pipeline.schema, stream)
        distinct = distinct_key_count(pipeline.connection, pipeline.schema, stream, keys)
        assert distinct == count, f"{stream} has duplicate rows for key {keys}"


def test_values_match_emulator(
    pipeline: PipelineRuns, expected: dict[str, list[dict[str, Any]]]
) -> None:
    for stream in sorted(DEFAULT_STREAMS - {"sites"}):
        records = expected[stream]
        keys = pipeline.primary_keys[stream]
        # The first, middle and last record cover both runs and every site.
        for record in (records[0], records[len(records) // 2], records[-1]):
            key = {column: record[column] for column in keys}
            row = fetch_row(pipeline.connection, pipeline.schema, stream, key)
            assert row is not None, f"{stream} has no row for {key}"
            compared = [column for column in record if column in row]
            assert len(compared) > len(keys), f"{stream} row {key} has no value columns"
            for column in compared:
                assert same_value(record[column], row[column]), (
                    f"{stream} {key} column {column}: emulator {record[column]!r}, "
                    f"PostgreSQL {row[column]!r}"
                )


def test_sites_match_emulator(pipeline: PipelineRuns) -> None:
    for site in pipeline.emulator.sites:
        row = fetch_row(pipeline.connection, pipeline.schema, "sites", {"site_id": site["site_id"]})
        assert row is not None, f"site {site['site_id']} is missing"
        assert row["domain"] == site["domain"]
        assert row["status"] == site["status"]


def test_first_run_bookmarks_end_date(pipeline: PipelineRuns) -> None:
    for stream in DAILY_STREAMS:
        expected_bookmarks = dict.fromkeys(pipeline.site_ids, FIRST_END_DATE.isoformat())
        assert bookmarks(pipeline.first_state, stream) == expected_bookmarks, stream


def test_state_stored_after_second_run(pipeline: PipelineRuns) -> None:
    state = pipeline.project.state(STATE_ID)
    for stream in DAILY_STREAMS:
        expected_bookmarks = dict.fromkeys(pipeline.site_ids, SECOND_END_DATE.isoformat())
        assert bookmarks(state, stream) == expected_bookmarks, stream


def test_second_run_requests_lookback_only(pipeline: PipelineRuns) -> None:
    data_requests = [r for r in pipeline.second_requests if r.path == GET_DATA_PATH]
    assert data_requests, "the second run sent no report/getData request"

    days_by_stream: dict[tuple[str, int], set[dt.date]] = {}
    for request in data_requests:
        report = REPORTS_BY_METHOD[request.params["method"]]
        if report.layout is Layout.REALTIME:
            continue
        key = (report.stream_name, int(request.params["site_id"]))
        days_by_stream.setdefault(key, set()).update(requested_days(request))

    assert set(days_by_stream) == {
        (stream, site_id) for stream in DAILY_STREAMS for site_id in pipeline.site_ids
    }
    # The first run's bookmark is FIRST_END_DATE, so the second run starts lookback_days
    # before it and reads on to the new end date, never from START_DATE again.
    wanted_days = set(days_between(SECOND_RUN_START, SECOND_END_DATE))
    for (stream, site_id), days in sorted(days_by_stream.items()):
        assert min(days) == SECOND_RUN_START, (stream, site_id)
        assert days == wanted_days, (stream, site_id)
