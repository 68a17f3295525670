"""Tests of site sharding: the assignment, its settings checks, and a two-shard Meltano fleet.

The fleet test runs `meltano run tap-baidu-tongji target-postgres` twice per shard, both
shards at once, with Meltano's state in PostgreSQL and one PostgreSQL token store. Each
shard gets its own Meltano system folder (plugins linked from the repository's `.meltano/`),
as two machines would have: shards of one extractor name in one folder would share
`.meltano/run/tap-baidu-tongji/` and overwrite each other's state.json and catalog.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tap_baidu_tongji.dates import beijing_today
from tap_baidu_tongji.emulator import Emulator, LoggedRequest
from tap_baidu_tongji.emulator import data as emulator_data
from tap_baidu_tongji.reports import REPORTS_BY_METHOD
from tap_baidu_tongji.settings import DEFAULT_LOOKBACK_DAYS, check_settings
from tap_baidu_tongji.sharding import (
    MAX_SHARD_COUNT,
    Shard,
    check_shard_settings,
    shard_from_config,
    shard_of,
)
from tests.conftest import catalog_selecting, run_tap_cli, tap_config
from tests.pipeline_helpers import (
    REPO_ROOT,
    MeltanoProject,
    connect_postgres,
    postgres_url,
    require_meltano,
    skip_or_fail,
    tap_settings,
)

SITE_IDS = [16847648, 16901234, 17025518, 17100000, 17100001, 17100002, 17100003, 17100004]

# --- Assignment --------------------------------------------------------------------------


def test_assignment_pinned() -> None:
    # These values fix the hash for good: changing it would move sites between shards and
    # make a running fleet read some sites twice and others never.
    assert [shard_of(site_id, 2) for site_id in SITE_IDS] == [0, 0, 1, 1, 1, 0, 0, 1]
    assert [shard_of(site_id, 5) for site_id in SITE_IDS] == [2, 4, 4, 4, 4, 1, 2, 1]
    assert [shard_of(site_id, 8) for site_id in SITE_IDS] == [6, 0, 3, 5, 5, 2, 0, 3]
    assert shard_of(16847648, 1) == 0


def test_assignment_same_in_other_process() -> None:
    script = (
        "import json, sys; from tap_baidu_tongji.sharding import shard_of; "
        "print(json.dumps([shard_of(s, n) for s in json.loads(sys.argv[1]) for n in range(1, 9)]))"
    )
    expected = [shard_of(site_id, count) for site_id in SITE_IDS for count in range(1, 9)]
    for seed in ("0", "1", "random"):
        completed = subprocess.run(
            [sys.executable, "-c", script, json.dumps(SITE_IDS)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(completed.stdout) == expected, seed


@pytest.mark.parametrize("count", range(1, 9))
def test_every_site_in_one_shard(count: int) -> None:
    site_ids = [*SITE_IDS, *range(10_000_000, 10_000_500)]
    for site_id in site_ids:
        owners = [index for index in range(count) if Shard(index, count).contains(site_id)]
        assert owners == [shard_of(site_id, count)], site_id


def test_shards_roughly_even() -> None:
    counts = Counter(shard_of(site_id, 4) for site_id in range(10_000_000, 10_004_000))
    assert sorted(counts) == [0, 1, 2, 3]
    assert all(800 <= counts[index] <= 1200 for index in range(4)), counts


# --- Settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"shard_index": 0}, "shard_index is set but shard_count is not: set shard_count"),
        ({"shard_count": 3}, "shard_count is set but shard_index is not: set shard_index"),
        ({"shard_count": 0, "shard_index": 0}, "Invalid shard_count 0: expected a whole "
         f"number from 1 to {MAX_SHARD_COUNT}"),
        ({"shard_count": True, "shard_index": 0}, "Invalid shard_count True"),
        ({"shard_count": MAX_SHARD_COUNT + 1, "shard_index": 0},
         f"Invalid shard_count {MAX_SHARD_COUNT + 1}"),
        ({"shard_count": 4, "shard_index": 4}, "Invalid shard_index 4: expected a whole "
         "number from 0 to 3, because shard_index counts from 0 and must be less than "
         "shard_count 4."),
        ({"shard_count": 4, "shard_index": -1}, "Invalid shard_index -1: expected a whole "
         "number from 0 to 3"),
        ({"shard_count": 2, "shard_index": "1x"}, "Invalid shard_index '1x'"),
    ],
)  # fmt: skip
def test_invalid_shard_settings(settings: dict[str, Any], expected: str) -> None:
    errors = check_shard_settings(settings)

    assert len(errors) == 1
    assert errors[0].startswith(expected)
    with pytest.raises(ValueError, match="shard_"):
        shard_from_config(settings)


def test_valid_shard_settings() -> None:
    assert check_shard_settings({}) == []
    assert shard_from_config({}) is None
    assert shard_from_config({"shard_count": 4, "shard_index": 3}) == Shard(3, 4)
    assert shard_from_config({"shard_count": "4", "shard_index": "0"}) == Shard(0, 4)


def test_check_settings_reports_shards() -> None:
    config = {"client_id": "id", "client_secret": "secret-value", "shard_count": 2,
              "shard_index": 2}  # fmt: skip

    errors = check_settings(config, today=dt.date(2026, 1, 2))

    assert errors == [
        "Invalid shard_index 2: expected a whole number from 0 to 1, because shard_index "
        "counts from 0 and must be less than shard_count 2."
    ]


# --- The tap's site list -----------------------------------------------------------------


def make_sites(site_ids: list[int]) -> list[dict[str, object]]:
    """Return getSiteList entries: the emulator's three demo sites, then plain extra sites."""
    sites = emulator_data.default_sites()
    known = {int(str(site["site_id"])) for site in sites}
    for site_id in site_ids:
        if site_id not in known:
            sites.append(new_site(site_id))
    return [site for site in sites if int(str(site["site_id"])) in site_ids]


def new_site(site_id: int) -> dict[str, object]:
    return {
        "site_id": site_id,
        "domain": f"site-{site_id}.example.com",
        "status": 0,
        "create_time": "2020-01-01 00:00:00",
        "sub_dir_list": [],
    }


def shard_site_ids(emu: Emulator, folder: Path, **settings: Any) -> list[int]:
    config = tap_config(emu, folder, **settings)
    catalog = catalog_selecting(folder, config, {"sites"})
    run = run_tap_cli(config, folder, catalog=catalog)
    assert run.returncode == 0, run.stderr
    return [record["site_id"] for record in run.records.get("sites", [])]


def test_sites_stream_shards(tmp_path: Path) -> None:
    with Emulator(port=0, sites=make_sites(SITE_IDS)) as emu:
        shards = [
            shard_site_ids(emu, tmp_path, shard_count=3, shard_index=index) for index in range(3)
        ]

    assert sorted(site for shard in shards for site in shard) == sorted(SITE_IDS)
    for index, shard in enumerate(shards):
        assert shard == [site for site in SITE_IDS if shard_of(site, 3) == index]


def test_sites_stream_shards_with_site_ids(tmp_path: Path) -> None:
    wanted = [16847648, 17025518, 17100002, 17100004]
    with Emulator(port=0, sites=make_sites(SITE_IDS)) as emu:
        selected = shard_site_ids(emu, tmp_path, site_ids=wanted, shard_count=2, shard_index=1)

    assert selected == [site for site in wanted if shard_of(site, 2) == 1]
    assert selected == [17025518, 17100004]


# --- Two shards through Meltano ----------------------------------------------------------

STREAMS = ["sites", "trend_time", "source_all", "visit_toppage", "visit_district"]
DAILY_STREAMS = STREAMS[1:]
GET_DATA_PATH = "/rest/2.0/tongji/report/getData"
ADDED_SITE = 17100005
TODAY = beijing_today()
START_DATE = TODAY - dt.timedelta(days=14)
FIRST_END_DATE = START_DATE + dt.timedelta(days=5)
SECOND_END_DATE = FIRST_END_DATE + dt.timedelta(days=2)
SHARD_COUNT = 2
REQUEST_LATENCY_SECONDS = 0.1


@dataclass
class PostgresStateProject(MeltanoProject):
    """The Meltano project with its system database (and so its state) in PostgreSQL."""

    state_database_uri: str = ""
    system_folder: Path | None = None
    """MELTANO_SYS_DIR_ROOT of this job, with the repository's plugins linked into it."""
    wall_seconds: list[float] = field(default_factory=list)

    @property
    def database_uri(self) -> str:
        return self.state_database_uri

    def run_pipeline(self, extractor: str, loader: str, settings: Any = None) -> None:
        started = time.monotonic()
        self.run_command("run", "--refresh-catalog", extractor, loader, settings=settings)
        self.wall_seconds.append(time.monotonic() - started)


def make_project(
    work_dir: Path, state_database_uri: str, settings: dict[str, str], suffix: str
) -> PostgresStateProject:
    system_folder = work_dir / ".meltano"
    system_folder.mkdir(parents=True)
    for kind in ("extractors", "loaders"):
        (system_folder / kind).symlink_to(REPO_ROOT / ".meltano" / kind)
    project = PostgresStateProject(
        work_dir=work_dir, state_database_uri=state_database_uri, system_folder=system_folder
    )
    project.settings = {
        **settings,
        "MELTANO_SYS_DIR_ROOT": str(system_folder),
        "MELTANO_RUN_STATE_ID_SUFFIX": suffix,
    }
    return project


def require_psycopg_in_plugins() -> None:
    """Skip or fail unless meltano and the extractor can import psycopg."""
    pythons = {
        "meltano (for MELTANO_DATABASE_URI=postgresql+psycopg://...)": (
            REPO_ROOT / ".venv-meltano" / "bin" / "python"
        ),
        "the tap-baidu-tongji plugin (for token_store_url)": (
            REPO_ROOT / ".meltano" / "extractors" / "tap-baidu-tongji" / "venv" / "bin" / "python"
        ),
    }
    for user, python in pythons.items():
        completed = subprocess.run(
            [str(python), "-c", "import psycopg"], capture_output=True, check=False
        )
        if completed.returncode != 0:
            skip_or_fail(
                f"psycopg is not installed for {user} ({python}). Install meltano with "
                "`pip install 'meltano[postgres]'` and the extractor with pip_url "
                "`-e .[postgres]`."
            )


def state_bookmarks(state: dict[str, Any], stream: str) -> dict[int, str]:
    partitions = state["singer_state"]["bookmarks"].get(stream, {}).get("partitions", [])
    return {
        int(partition["context"]["site_id"]): partition["replication_key_value"]
        for partition in partitions
    }


@dataclass
class FleetRuns:
    connection: psycopg.Connection[Any]
    schema: str
    baseline_schema: str
    shards: list[PostgresStateProject]
    baseline: PostgresStateProject
    first_requests: list[LoggedRequest]
    second_requests: list[LoggedRequest]
    first_states: list[dict[str, Any]]
    second_states: list[dict[str, Any]]
    sharded_seconds: float
    refresh_count: int


def run_shards_at_once(shards: list[PostgresStateProject], settings: dict[str, str]) -> float:
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(shards)) as pool:
        futures = [
            pool.submit(shard.run_pipeline, "tap-baidu-tongji", "target-postgres", settings)
            for shard in shards
        ]
        for future in futures:
            future.result()
    return time.monotonic() - started


def drop_schemas(connection: psycopg.Connection[Any], *schemas: str) -> None:
    for schema in schemas:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


def copy_tables(connection: psycopg.Connection[Any], source: str, target: str) -> None:
    connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(target)))
    for stream in STREAMS:
        connection.execute(
            sql.SQL("CREATE TABLE {}.{} (LIKE {}.{} INCLUDING ALL)").format(
                sql.Identifier(target),
                sql.Identifier(stream),
                sql.Identifier(source),
                sql.Identifier(stream),
            )
        )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetRuns]:
    require_meltano("tap-baidu-tongji", "target-postgres")
    require_psycopg_in_plugins()
    connection = connect_postgres()
    run_id = uuid.uuid4().hex[:12]
    schema = f"tap_baidu_tongji_shards_{run_id}"
    baseline_schema = f"tap_baidu_tongji_unsharded_{run_id}"
    state_schema = f"tap_baidu_tongji_meltano_{run_id}"
    token_table = f"tap_baidu_tongji_tokens_{run_id}"
    work_dir: Path = tmp_path_factory.mktemp("meltano-shards")
    info = connection.info
    state_database_uri = (
        f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{info.dbname}"
        f"?options=-csearch_path%3D{state_schema}"
    )
    token_store_url = (
        f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}?table={token_table}"
    )

    with Emulator(port=0, sites=make_sites(SITE_IDS)) as emulator, connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(state_schema)))
        common = {
            **tap_settings(
                emulator,
                work_dir / "unused-tokens.json",
                token_store_url=token_store_url,
                start_date=START_DATE.isoformat(),
                end_date=FIRST_END_DATE.isoformat(),
            ),
            "TAP_BAIDU_TONGJI__SELECT": json.dumps([f"{stream}.*" for stream in STREAMS]),
            "TARGET_POSTGRES_SQLALCHEMY_URL": postgres_url(connection),
        }
        baseline = make_project(
            work_dir / "unsharded",
            state_database_uri,
            {**common, "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": baseline_schema},
            "unsharded",
        )
        shards = [
            make_project(
                work_dir / f"shard-{index}",
                state_database_uri,
                {
                    **common,
                    "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
                    "TAP_BAIDU_TONGJI_SHARD_COUNT": str(SHARD_COUNT),
                    "TAP_BAIDU_TONGJI_SHARD_INDEX": str(index),
                },
                f"shard-{index}",
            )
            for index in range(SHARD_COUNT)
        ]
        state_id = "dev:tap-baidu-tongji-to-target-postgres"
        try:
            # Creates Meltano's tables before two jobs race to migrate an empty database.
            baseline.run_command("state", "list")
            # A network-like delay per request, so that the runs spend their time on
            # requests as against Baidu, not only on starting Meltano and the plugins.
            emulator.faults.latency_seconds = REQUEST_LATENCY_SECONDS
            baseline.run_pipeline("tap-baidu-tongji", "target-postgres")
            # Two targets that create one table at once can fail, so the shards' tables are
            # copied from the unsharded run's before the shards start.
            copy_tables(connection, baseline_schema, schema)
            log_length = len(emulator.request_log)
            sharded_seconds = run_shards_at_once(shards, {})
            first_requests = emulator.request_log[log_length:]
            first_states = [
                shard.state(f"{state_id}:shard-{index}") for index, shard in enumerate(shards)
            ]

            emulator.sites.append(new_site(ADDED_SITE))
            # NOTE: the emulator has no public way to add a site after start, so its
            # index is rebuilt here.
            emulator._site_index = emulator_data.site_index(emulator.sites)
            log_length = len(emulator.request_log)
            run_shards_at_once(shards, {"TAP_BAIDU_TONGJI_END_DATE": SECOND_END_DATE.isoformat()})
            second_requests = emulator.request_log[log_length:]
            second_states = [
                shard.state(f"{state_id}:shard-{index}") for index, shard in enumerate(shards)
            ]
            refresh_count = len(
                [entry for entry in emulator.request_log if entry.grant_type == "refresh_token"]
            )
            yield FleetRuns(
                connection=connection,
                schema=schema,
                baseline_schema=baseline_schema,
                shards=shards,
                baseline=baseline,
                first_requests=first_requests,
                second_requests=second_requests,
                first_states=first_states,
                second_states=second_states,
                sharded_seconds=sharded_seconds,
                refresh_count=refresh_count,
            )
        finally:
            drop_schemas(connection, schema, baseline_schema, state_schema)
            connection.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(token_table))
            )


def site_counts(fleet: FleetRuns, schema: str, stream: str) -> Counter[int]:
    query = sql.SQL("SELECT site_id, count(*) FROM {}.{} GROUP BY site_id").format(
        sql.Identifier(schema), sql.Identifier(stream)
    )
    return Counter({int(site): int(count) for site, count in fleet.connection.execute(query)})


def data_requests(requests: list[LoggedRequest]) -> list[LoggedRequest]:
    return [request for request in requests if request.path == GET_DATA_PATH]


@pytest.mark.postgres
@pytest.mark.meltano
def test_fleet_loads_every_site_once(fleet: FleetRuns) -> None:
    assert site_counts(fleet, fleet.schema, "sites") == Counter(dict.fromkeys(
        [*SITE_IDS, ADDED_SITE], 1))  # fmt: skip
    first_run_sites = {int(request.params["site_id"]) for request in
                       data_requests(fleet.first_requests)}  # fmt: skip
    assert first_run_sites == set(SITE_IDS)


@pytest.mark.postgres
@pytest.mark.meltano
def test_fleet_requests_each_day_once(fleet: FleetRuns) -> None:
    for requests in (fleet.first_requests, fleet.second_requests):
        keys = Counter(
            (r.params["method"], r.params["site_id"], r.params.get("start_date"),
             r.params.get("start_index"))
            for r in data_requests(requests)
        )  # fmt: skip
        repeated = {key: count for key, count in keys.items() if count > 1}
        assert repeated == {}


@pytest.mark.postgres
@pytest.mark.meltano
def test_fleet_matches_unsharded_run(fleet: FleetRuns) -> None:
    # The unsharded run read the first window of the first sites only.
    query = sql.SQL("SELECT count(*) FROM {}.{} WHERE date <= %s AND site_id <> %s")
    parameters = [FIRST_END_DATE.isoformat(), ADDED_SITE]
    for stream in DAILY_STREAMS:
        sharded = fleet.connection.execute(
            query.format(sql.Identifier(fleet.schema), sql.Identifier(stream)), parameters
        ).fetchone()
        unsharded = fleet.connection.execute(
            query.format(sql.Identifier(fleet.baseline_schema), sql.Identifier(stream)),
            parameters,
        ).fetchone()
        assert sharded is not None
        assert unsharded is not None
        assert sharded[0] > 0, stream
        assert sharded[0] == unsharded[0], stream


@pytest.mark.postgres
@pytest.mark.meltano
def test_fleet_states_hold_own_sites(fleet: FleetRuns) -> None:
    for index, state in enumerate(fleet.first_states):
        own_sites = {site for site in SITE_IDS if shard_of(site, SHARD_COUNT) == index}
        for stream in DAILY_STREAMS:
            bookmarks = state_bookmarks(state, stream)
            assert bookmarks == dict.fromkeys(own_sites, FIRST_END_DATE.isoformat()), stream


@pytest.mark.postgres
@pytest.mark.meltano
def test_fleet_resumes_from_own_state(fleet: FleetRuns) -> None:
    resume_day = FIRST_END_DATE - dt.timedelta(days=DEFAULT_LOOKBACK_DAYS)
    first_day: dict[tuple[str, int], dt.date] = {}
    for request in data_requests(fleet.second_requests):
        stream = REPORTS_BY_METHOD[request.params["method"]].stream_name
        day = dt.datetime.strptime(request.params["start_date"], "%Y%m%d").date()
        key = (stream, int(request.params["site_id"]))
        first_day[key] = min(day, first_day.get(key, day))

    for stream in DAILY_STREAMS:
        for site in SITE_IDS:
            assert first_day[(stream, site)] == resume_day, (stream, site)
        assert first_day[(stream, ADDED_SITE)] == START_DATE, stream


@pytest.mark.postgres
@pytest.mark.meltano
def test_fleet_added_site_in_one_shard(fleet: FleetRuns) -> None:
    owner = shard_of(ADDED_SITE, SHARD_COUNT)
    for index, state in enumerate(fleet.second_states):
        for stream in DAILY_STREAMS:
            bookmarks = state_bookmarks(state, stream)
            assert (ADDED_SITE in bookmarks) == (index == owner), (index, stream)
            if index == owner:
                assert bookmarks[ADDED_SITE] == SECOND_END_DATE.isoformat()


@pytest.mark.postgres
@pytest.mark.meltano
def test_fleet_shares_one_token_chain(fleet: FleetRuns) -> None:
    # The seed is refreshed once and the pair stays valid for all later runs.
    assert fleet.refresh_count == 1
    report = {
        "unsharded_seconds": round(fleet.baseline.wall_seconds[0], 1),
        "two_shards_seconds": round(fleet.sharded_seconds, 1),
        "per_shard_seconds": [round(shard.wall_seconds[0], 1) for shard in fleet.shards],
        "request_latency_seconds": REQUEST_LATENCY_SECONDS,
        "cpus": os.cpu_count(),
    }
    (fleet.shards[0].work_dir.parent / "timing.json").write_text(json.dumps(report))
    print(f"\nshard timing: {json.dumps(report)}")
