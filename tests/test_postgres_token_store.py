"""Tests of the PostgreSQL token store against the local server and the emulator.

Every test uses its own table in database `test` on 127.0.0.1:5432 and drops it afterwards.
Without a server the tests skip on a developer machine and fail when CI=true.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tap_baidu_tongji.auth import (
    BaiduAuthenticator,
    PostgresDriverMissingError,
    PostgresTokenStore,
    StoredTokens,
    build_authenticator,
    build_token_store,
)
from tap_baidu_tongji.auth.postgres_store import parse_token_store_url
from tap_baidu_tongji.auth.token_store import (
    TokenStoreCorruptError,
    TokenStoreError,
    TokenStoreNotWritableError,
    sha256_hex,
)
from tap_baidu_tongji.emulator import Emulator, Failure, FailureKind
from tap_baidu_tongji.emulator.faults import ENDPOINT_TOKEN
from tap_baidu_tongji.settings import check_settings
from tap_baidu_tongji.tap import token_source_problem
from tests.pipeline_helpers import connect_postgres

pytestmark = pytest.mark.postgres

SITE_LIST_PATH = "/rest/2.0/tongji/config/getSiteList"
TOKEN_PATH = "/oauth/2.0/token"
LOGGER = logging.getLogger("tests.postgres_token_store")
NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


@pytest.fixture
def postgres() -> Iterator[psycopg.Connection[Any]]:
    connection = connect_postgres()
    with connection:
        yield connection


@pytest.fixture
def table(postgres: psycopg.Connection[Any]) -> Iterator[str]:
    name = f"tap_baidu_tongji_tokens_test_{uuid.uuid4().hex[:12]}"
    yield name
    postgres.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def store_url(postgres: psycopg.Connection[Any], table: str) -> str:
    info = postgres.info
    return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}?table={table}"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(port=0, access_token_ttl_seconds=3600) as emulator:
        yield emulator


def make_tokens(number: int = 1, client_id: str = "client-id-for-tests") -> StoredTokens:
    return StoredTokens(
        client_id=client_id,
        refresh_token=f"122.refresh-token-{number:06d}",
        access_token=f"121.access-token-{number:06d}",
        expires_at=NOW + datetime.timedelta(days=30),
        obtained_at=NOW,
        seed_sha256=sha256_hex("122.refresh-token-000000"),
    )


def read_row(store: PostgresTokenStore) -> StoredTokens:
    with store.locked() as session:
        tokens = session.read()
    assert tokens is not None
    return tokens


def age_row(postgres: psycopg.Connection[Any], table: str) -> None:
    """Make the stored access token expired, as after 30 days."""
    postgres.execute(
        sql.SQL(
            "UPDATE {} SET expires_at = now() - interval '1 second', "
            "obtained_at = now() - interval '30 days'"
        ).format(sql.Identifier(table))
    )


def tap_store_config(emu: Emulator, store_url: str) -> dict[str, Any]:
    return {
        "api_url": emu.url,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "refresh_token": emu.seed_refresh_token,
        "token_store_url": store_url,
    }


def refresh_requests(emu: Emulator) -> list[Any]:
    return [entry for entry in emu.request_log if entry.grant_type == "refresh_token"]


def row_is_locked(postgres: psycopg.Connection[Any], table: str, client_id: str) -> bool:
    query = sql.SQL("SELECT 1 FROM {} WHERE client_id = %s FOR UPDATE NOWAIT").format(
        sql.Identifier(table)
    )
    try:
        with postgres.transaction():
            postgres.execute(query, [client_id])
    except psycopg.errors.LockNotAvailable:
        return True
    return False


# --- The store on its own ----------------------------------------------------------------


def test_store_round_trip(store_url: str) -> None:
    store = PostgresTokenStore(store_url, client_id="client-id-for-tests")
    tokens = make_tokens(7)

    with store.locked() as session:
        assert session.read() is None
        session.write(tokens)
        assert session.read() == tokens

    assert read_row(store) == tokens
    assert store.contains_tokens()


def test_store_row_columns(store_url: str, postgres: psycopg.Connection[Any], table: str) -> None:
    store = PostgresTokenStore(store_url, client_id="client-id-for-tests")
    with store.locked() as session:
        session.write(make_tokens(3))

    query = sql.SQL(
        "SELECT client_id, format_version, refresh_token, expires_at, seed_sha256 FROM {}"
    ).format(sql.Identifier(table))
    rows = postgres.execute(query).fetchall()
    assert len(rows) == 1
    client_id, version, refresh_token, expires_at, seed_sha256 = rows[0]
    assert client_id == "client-id-for-tests"
    assert version == 1
    assert refresh_token == "122.refresh-token-000003"
    assert expires_at == NOW + datetime.timedelta(days=30)
    assert seed_sha256 == sha256_hex("122.refresh-token-000000")


def test_store_one_row_per_client(store_url: str) -> None:
    first = PostgresTokenStore(store_url, client_id="api-key-one")
    second = PostgresTokenStore(store_url, client_id="api-key-two")
    with first.locked() as session:
        session.write(make_tokens(1, client_id="api-key-one"))

    assert not second.contains_tokens()
    with second.locked() as session:
        assert session.read() is None
        session.write(make_tokens(2, client_id="api-key-two"))

    assert read_row(first).refresh_token == "122.refresh-token-000001"
    assert read_row(second).refresh_token == "122.refresh-token-000002"


def test_store_rejects_other_client(store_url: str) -> None:
    store = PostgresTokenStore(store_url, client_id="api-key-one")
    with pytest.raises(TokenStoreError, match="another client_id"), store.locked() as session:
        session.write(make_tokens(1, client_id="api-key-two"))


def test_write_commits_before_block_ends(store_url: str) -> None:
    store = PostgresTokenStore(store_url, client_id="client-id-for-tests")

    def save_then_fail() -> None:
        with store.locked() as session:
            session.write(make_tokens(4))
            raise RuntimeError("the caller failed after saving the pair")

    with pytest.raises(RuntimeError):
        save_then_fail()

    assert read_row(store) == make_tokens(4)


def test_lock_excludes_other_workers(store_url: str) -> None:
    holder = PostgresTokenStore(store_url, client_id="client-id-for-tests")
    waiter = PostgresTokenStore(store_url, client_id="client-id-for-tests", lock_timeout_seconds=1)

    with holder.locked():
        started = time.monotonic()
        with pytest.raises(TokenStoreError) as caught, waiter.locked():
            pass
        waited = time.monotonic() - started

    assert waited >= 0.9
    message = str(caught.value)
    assert "Timed out after 1 s waiting for the row lock" in message
    assert "token_store_url" in message
    with waiter.locked() as session:
        assert session.read() is None


def test_concurrent_table_creation(store_url: str) -> None:
    stores = [PostgresTokenStore(store_url, client_id=f"api-key-{n}") for n in range(8)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def worker(store: PostgresTokenStore) -> None:
        barrier.wait()
        try:
            with store.locked() as session:
                session.write(make_tokens(1, client_id=store.client_id))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert all(store.contains_tokens() for store in stores)


def test_schema_qualified_table(postgres: psycopg.Connection[Any]) -> None:
    schema = f"tap_baidu_tongji_test_{uuid.uuid4().hex[:12]}"
    postgres.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    info = postgres.info
    url = f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}?table={schema}.tokens"
    try:
        store = PostgresTokenStore(url, client_id="client-id-for-tests")
        with store.locked() as session:
            session.write(make_tokens(5))
        assert read_row(store) == make_tokens(5)
    finally:
        postgres.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_corrupt_row_message(store_url: str, postgres: psycopg.Connection[Any], table: str) -> None:
    store = PostgresTokenStore(store_url, client_id="client-id-for-tests")
    with store.locked() as session:
        session.write(make_tokens(6))
    postgres.execute(sql.SQL("UPDATE {} SET access_token = NULL").format(sql.Identifier(table)))

    with pytest.raises(TokenStoreCorruptError) as caught, store.locked() as session:
        session.read()

    message = str(caught.value)
    assert "missing or empty columns: access_token" in message
    assert "tap-baidu-tongji-auth" in message
    assert "122.refresh-token-000006" not in message


def test_unknown_format_version(
    store_url: str, postgres: psycopg.Connection[Any], table: str
) -> None:
    store = PostgresTokenStore(store_url, client_id="client-id-for-tests")
    with store.locked() as session:
        session.write(make_tokens(6))
    postgres.execute(sql.SQL("UPDATE {} SET format_version = 2").format(sql.Identifier(table)))

    with (
        pytest.raises(TokenStoreCorruptError, match="version 2 is not supported"),
        store.locked() as session,
    ):
        session.read()


def test_check_writable_creates_table(
    store_url: str, postgres: psycopg.Connection[Any], table: str
) -> None:
    store = PostgresTokenStore(store_url, client_id="client-id-for-tests")
    store.check_writable()

    row = postgres.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()
    assert row == (True,)
    assert not store.contains_tokens()


def test_check_writable_missing_database(postgres: psycopg.Connection[Any]) -> None:
    info = postgres.info
    url = f"postgresql://{info.user}@{info.host}:{info.port}/no_such_database_for_tap_tests"
    store = PostgresTokenStore(url, client_id="client-id-for-tests")

    with pytest.raises(TokenStoreNotWritableError) as caught:
        store.check_writable()

    message = str(caught.value)
    assert message.startswith(f"token_store_url {url} is not usable")
    assert "no_such_database_for_tap_tests" in message
    assert "token_store_password" in message


def test_check_writable_no_privilege(
    store_url: str, postgres: psycopg.Connection[Any], table: str
) -> None:
    role = f"tap_baidu_tongji_reader_{uuid.uuid4().hex[:8]}"
    PostgresTokenStore(store_url, client_id="client-id-for-tests").check_writable()
    postgres.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    postgres.execute(
        sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(table), sql.Identifier(role))
    )
    info = postgres.info
    url = f"postgresql://{role}@{info.host}:{info.port}/{info.dbname}?table={table}"
    try:
        with pytest.raises(TokenStoreNotWritableError) as caught:
            PostgresTokenStore(url, client_id="client-id-for-tests").check_writable()
    finally:
        postgres.execute(
            sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), sql.Identifier(role))
        )
        postgres.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

    message = str(caught.value)
    assert "permission denied" in message
    assert "grant SELECT, INSERT and UPDATE" in message


def test_password_never_in_messages(postgres: psycopg.Connection[Any]) -> None:
    password = "pg-password-" + uuid.uuid4().hex
    info = postgres.info
    # Port 1 on loopback refuses connections, so the error comes from libpq.
    url = f"postgresql://{info.user}:{password}@127.0.0.1:1/{info.dbname}?table=tokens"
    store = PostgresTokenStore(url, client_id="client-id-for-tests", password=password)
    texts = [store.location, repr(store)]

    with pytest.raises(TokenStoreNotWritableError) as not_writable:
        store.check_writable()
    texts.append(str(not_writable.value))
    with pytest.raises(TokenStoreError) as not_connected, store.locked():
        pass
    texts.append(str(not_connected.value))

    assert store.location == f"postgresql://{info.user}@127.0.0.1:1/{info.dbname}?table=tokens"
    assert "127.0.0.1:1" in texts[2]
    for text in texts:
        assert password not in text


def test_invalid_conninfo_hides_password() -> None:
    password = "pg-password-" + uuid.uuid4().hex
    url = f"postgresql://user:{password}@127.0.0.1:5432/test?sslmode=not-a-mode&table=tokens"
    store = PostgresTokenStore(url, client_id="client-id-for-tests")

    with pytest.raises(TokenStoreNotWritableError) as caught:
        store.check_writable()

    assert "sslmode" in str(caught.value)
    assert password not in str(caught.value)


def test_driver_missing_message(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    store = PostgresTokenStore(store_url, client_id="client-id-for-tests")

    with pytest.raises(PostgresDriverMissingError) as caught:
        store.check_writable()

    assert "pip install 'tap-baidu-tongji[postgres]'" in str(caught.value)


# --- URL and settings checks (no server needed) --------------------------------------------


@pytest.mark.parametrize(
    ("url", "schema", "table", "conninfo"),
    [
        ("postgresql://tap@db:5432/etl", None, "tap_baidu_tongji_tokens",
         "postgresql://tap@db:5432/etl"),
        ("postgres://tap@db/etl?table=tokens&sslmode=require", None, "tokens",
         "postgresql://tap@db/etl?sslmode=require"),
        ("postgresql+psycopg://tap@db/etl?table=ops.tokens", "ops", "tokens",
         "postgresql://tap@db/etl"),
    ],
)  # fmt: skip
def test_parse_token_store_url(url: str, schema: str | None, table: str, conninfo: str) -> None:
    parsed = parse_token_store_url(url)

    assert parsed.schema == schema
    assert parsed.table == table
    assert parsed.conninfo == conninfo


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://tap@db/etl", "Invalid token_store_url 'mysql://tap@db/etl': expected a "
         "PostgreSQL URL"),
        ("postgresql://tap@db/etl?table=tokens;drop", "Invalid table 'tokens;drop' in "
         "token_store_url"),
        ("postgresql://tap@db/etl?table=a.b.c", "Invalid table 'a.b.c'"),
        ("postgresql://tap@db/etl?table=" + "t" * 64, "at most 63 characters"),
    ],
)  # fmt: skip
def test_invalid_token_store_url(url: str, expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        parse_token_store_url(url)


def test_url_password_hidden_in_check() -> None:
    config = {
        "client_id": "id",
        "client_secret": "secret-value",
        "token_store_url": "mysql://tap:url-password-value@db/etl",
    }

    errors = check_settings(config)

    assert len(errors) == 1
    assert errors[0].startswith("Invalid token_store_url 'mysql://tap@db/etl'")
    assert "url-password-value" not in errors[0]


def test_build_token_store_prefers_url(store_url: str, tmp_path: Path) -> None:
    config = {
        "client_id": "api-key",
        "client_secret": "secret-value",
        "token_store_url": store_url,
        "token_store_path": str(tmp_path / "tokens.json"),
    }

    store = build_token_store(config, LOGGER)

    assert isinstance(store, PostgresTokenStore)
    assert store.client_id == "api-key"
    assert store.location == store_url


def test_token_source_empty_row(store_url: str) -> None:
    config = {"client_id": "api-key", "client_secret": "secret-value", "token_store_url": store_url}

    problem = token_source_problem(config)

    assert problem.startswith(f"Missing refresh_token: the token store {store_url} contains no")
    assert "client_id api-key" in problem


def test_token_source_unusable_url(postgres: psycopg.Connection[Any]) -> None:
    url = f"postgresql://{postgres.info.user}@127.0.0.1:1/test"
    config = {"client_id": "id", "client_secret": "secret-value", "refresh_token": "r" * 10,
              "token_store_url": url}  # fmt: skip

    problem = token_source_problem(config)

    assert problem.startswith(f"token_store_url {url} is not usable")


# --- With the authenticator and the emulator ------------------------------------------------


def make_authenticator(
    emu: Emulator, store_url: str, seed: str | None = None
) -> BaiduAuthenticator:
    return BaiduAuthenticator(
        token_url=emu.url + TOKEN_PATH,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        seed_refresh_token=seed or emu.seed_refresh_token,
        store=PostgresTokenStore(store_url, client_id=emu.client_id),
        refresh_margin=datetime.timedelta(minutes=1),
        logger=LOGGER,
    )


def test_first_refresh_saved(emu: Emulator, store_url: str) -> None:
    token = make_authenticator(emu, store_url).access_token()

    stored = read_row(PostgresTokenStore(store_url, client_id=emu.client_id))
    assert stored.access_token == token
    assert stored.seed_sha256 == sha256_hex(emu.seed_refresh_token)
    assert len(refresh_requests(emu)) == 1
    # A second authenticator reads the saved pair and does not refresh.
    assert make_authenticator(emu, store_url).access_token() == token
    assert len(refresh_requests(emu)) == 1


def test_seed_change_starts_new_chain(emu: Emulator, store_url: str) -> None:
    store = PostgresTokenStore(store_url, client_id=emu.client_id)
    old_chain = make_tokens(9, client_id=emu.client_id)
    with store.locked() as session:
        session.write(old_chain)

    token = make_authenticator(emu, store_url).access_token()

    stored = read_row(store)
    assert stored.access_token == token
    assert stored.seed_sha256 == sha256_hex(emu.seed_refresh_token)
    assert len(refresh_requests(emu)) == 1


def test_no_secret_in_logs(emu: Emulator, store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = build_authenticator(tap_store_config(emu, store_url), LOGGER)
    auth.access_token()
    emu.expire_access_tokens()
    auth.reject(auth.access_token())
    auth.access_token()

    stored = read_row(PostgresTokenStore(store_url, client_id=emu.client_id))
    secrets = {emu.client_secret, emu.seed_refresh_token, stored.refresh_token,
               stored.access_token}  # fmt: skip
    secrets |= {entry.params.get("refresh_token", "") for entry in emu.request_log} - {""}
    assert len(secrets) >= 5
    for secret in secrets:
        assert secret not in caplog.text
    assert f"the pair is saved in {store_url}" in caplog.text


WORKER = textwrap.dedent(
    """
    import hashlib, json, logging, sys, time
    import requests
    from tap_baidu_tongji.auth import AuthorizationRequired, build_authenticator

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    config = json.loads(sys.argv[1])
    start_at = float(sys.argv[2])
    auth = build_authenticator(config, logging.getLogger("worker"))
    while time.time() < start_at:
        time.sleep(0.001)
    try:
        response = requests.get(config["api_url"] + sys.argv[3], auth=auth, timeout=120)
        token = auth.access_token()
    except AuthorizationRequired as error:
        print(json.dumps({"outcome": "authorization_required", "message": str(error)}))
        sys.exit(3)
    print(json.dumps({
        "outcome": "ok",
        "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
        "site_list": "list" in response.json(),
    }))
    """
)


def start_worker(config: dict[str, Any], folder: Path, start_at: float) -> subprocess.Popen[str]:
    """Start one worker process in its own working folder, as on a machine of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps(config), str(start_at), SITE_LIST_PATH],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_worker(worker: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    stdout, stderr = worker.communicate(timeout=180)
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, (stdout, stderr)
    return worker.returncode, json.loads(lines[0]), stderr


@pytest.mark.parametrize("process_count", [2, 8])
def test_processes_share_one_refresh(
    emu: Emulator,
    store_url: str,
    postgres: psycopg.Connection[Any],
    table: str,
    tmp_path: Path,
    process_count: int,
) -> None:
    make_authenticator(emu, store_url).access_token()
    age_row(postgres, table)
    emu.clear_request_log()
    config = tap_store_config(emu, store_url)

    start_at = time.time() + 3.0
    workers = [
        start_worker(config, tmp_path / f"machine-{n}", start_at) for n in range(process_count)
    ]
    results = []
    for worker in workers:
        returncode, result, stderr = finish_worker(worker)
        assert returncode == 0, stderr
        results.append(result)

    assert all(result["outcome"] == "ok" for result in results)
    assert all(result["site_list"] for result in results)
    assert len({result["token_sha256"] for result in results}) == 1
    assert len(refresh_requests(emu)) == 1
    store = PostgresTokenStore(store_url, client_id=emu.client_id)
    assert sha256_hex(read_row(store).access_token) == results[0]["token_sha256"]
    # The stored refresh token is the newest one: it still refreshes.
    age_row(postgres, table)
    make_authenticator(emu, store_url).access_token()
    assert len(refresh_requests(emu)) == 2
    assert emu.request_log[-1].oauth_error is None


def read_stderr_until(worker: subprocess.Popen[str], text: str, timeout: float) -> list[str]:
    """Return the worker's log lines up to the first that contains `text`."""
    assert worker.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = worker.stderr.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    pytest.fail(f"the worker never logged {text!r}; its log: {''.join(lines)}")


def kill_while_refreshing(
    emu: Emulator, store_url: str, postgres: psycopg.Connection[Any], table: str, folder: Path
) -> None:
    """Start a worker, SIGKILL it while it waits for the slow token endpoint, holding the lock."""
    worker = start_worker(tap_store_config(emu, store_url), folder, time.time())
    read_stderr_until(worker, "Refreshing the access token", timeout=60)
    time.sleep(0.3)
    assert worker.poll() is None
    assert row_is_locked(postgres, table, emu.client_id)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    with contextlib.suppress(OSError):
        worker.communicate(timeout=5)

    # The server sees the closed connection, rolls the transaction back and frees the row.
    deadline = time.monotonic() + 30
    while row_is_locked(postgres, table, emu.client_id):
        assert time.monotonic() < deadline, "the killed worker's row lock was never released"
        time.sleep(0.1)


def test_killed_worker_then_marker_cleared(
    emu: Emulator, store_url: str, postgres: psycopg.Connection[Any], table: str, tmp_path: Path
) -> None:
    make_authenticator(emu, store_url).access_token()
    age_row(postgres, table)
    store = PostgresTokenStore(store_url, client_id=emu.client_id)
    old_pair = read_row(store)
    emu.clear_request_log()
    # The killed worker's request sleeps in the emulator for 60 s, so its refresh token is
    # still unused while the next workers run.
    emu.faults.add_failure(
        Failure(FailureKind.TIMEOUT, endpoint=ENDPOINT_TOKEN, delay_seconds=60, first=1)
    )

    kill_while_refreshing(emu, store_url, postgres, table, tmp_path / "killed")

    assert read_row(store) == old_pair
    # The committed refresh marker stops the next worker before it sends the token.
    stopped = start_worker(tap_store_config(emu, store_url), tmp_path / "stopped", time.time())
    returncode, result, stderr = finish_worker(stopped)
    assert returncode == 3, stderr
    assert "An earlier run started a refresh" in result["message"]
    assert refresh_requests(emu) == []
    statement = result["message"].split("`UPDATE ", 1)[1].split("`", 1)[0]
    postgres.execute(f"UPDATE {statement}")

    next_run = start_worker(tap_store_config(emu, store_url), tmp_path / "next", time.time())
    returncode, result, stderr = finish_worker(next_run)
    assert returncode == 0, stderr
    assert result["outcome"] == "ok"
    new_pair = read_row(store)
    assert new_pair.refresh_token != old_pair.refresh_token
    assert sha256_hex(new_pair.access_token) == result["token_sha256"]


def test_killed_worker_then_next_stops(
    emu: Emulator, store_url: str, postgres: psycopg.Connection[Any], table: str, tmp_path: Path
) -> None:
    make_authenticator(emu, store_url).access_token()
    age_row(postgres, table)
    store = PostgresTokenStore(store_url, client_id=emu.client_id)
    old_pair = read_row(store)
    emu.clear_request_log()
    # The emulator answers 2 s after the kill, consuming the refresh token of a dead worker:
    # the new pair is lost, as when a machine dies during a refresh.
    emu.faults.add_failure(
        Failure(FailureKind.TIMEOUT, endpoint=ENDPOINT_TOKEN, delay_seconds=2, first=1)
    )

    kill_while_refreshing(emu, store_url, postgres, table, tmp_path / "killed")
    deadline = time.monotonic() + 30
    while not refresh_requests(emu):
        assert time.monotonic() < deadline, "the emulator never answered the killed refresh"
        time.sleep(0.1)

    assert read_row(store) == old_pair
    next_run = start_worker(tap_store_config(emu, store_url), tmp_path / "next", time.time())
    returncode, result, stderr = finish_worker(next_run)
    assert returncode == 3, stderr
    assert result["outcome"] == "authorization_required"
    assert "An earlier run started a refresh" in result["message"]
    assert "tap-baidu-tongji-auth --token-store-path new-tokens.json" in result["message"]
    assert store_url in result["message"]
    # The table still holds the last pair that was saved, never a half-written one.
    assert read_row(store) == old_pair
    # The refresh marker kept the next worker from replaying the spent refresh token.
    rejected = [entry.oauth_error for entry in refresh_requests(emu)]
    assert rejected == [None]
