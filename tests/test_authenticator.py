"""Tests of BaiduAuthenticator against the local emulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tap_baidu_tongji.auth import (
    AuthorizationRequired,
    BaiduAuthenticator,
    FileTokenStore,
    StoredTokens,
    build_authenticator,
)
from tap_baidu_tongji.auth.cli import exchange_code
from tap_baidu_tongji.auth.messages import ENGLISH
from tap_baidu_tongji.auth.token_store import RefreshMarker, TokenStoreError, sha256_hex
from tap_baidu_tongji.emulator import Emulator

SITE_LIST_PATH = "/rest/2.0/tongji/config/getSiteList"
TOKEN_PATH = "/oauth/2.0/token"
LOGGER = logging.getLogger("tests.authenticator")


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(port=0, access_token_ttl_seconds=3600) as emulator:
        yield emulator


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "secrets" / "tokens.json"


def make_authenticator(
    emu: Emulator,
    store_path: Path,
    *,
    seed_refresh_token: str | None = "default",
    seed_access_token: str | None = None,
    refresh_margin: datetime.timedelta = datetime.timedelta(minutes=1),
) -> BaiduAuthenticator:
    if seed_refresh_token == "default":
        seed_refresh_token = emu.seed_refresh_token
    return BaiduAuthenticator(
        token_url=emu.url + TOKEN_PATH,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        seed_refresh_token=seed_refresh_token,
        seed_access_token=seed_access_token,
        store=FileTokenStore(store_path),
        refresh_margin=refresh_margin,
        logger=LOGGER,
    )


def refresh_requests(emu: Emulator) -> list[Any]:
    return [entry for entry in emu.request_log if entry.grant_type == "refresh_token"]


def data_call(emu: Emulator, auth: BaiduAuthenticator) -> dict[str, Any]:
    response = requests.get(emu.url + SITE_LIST_PATH, auth=auth, timeout=10)
    body: dict[str, Any] = response.json()
    return body


def read_store(store_path: Path) -> StoredTokens:
    with FileTokenStore(store_path).locked() as session:
        tokens = session.read()
    assert tokens is not None
    return tokens


def write_store(store_path: Path, tokens: StoredTokens) -> None:
    with FileTokenStore(store_path).locked() as session:
        session.write(tokens)


def age_store(store_path: Path, expires_in: datetime.timedelta) -> StoredTokens:
    """Rewrite the stored pair so that its access token expires after `expires_in`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    # A long lifetime keeps the authenticator's margin at its configured value.
    aged = dataclasses.replace(
        read_store(store_path),
        expires_at=now + expires_in,
        obtained_at=now - datetime.timedelta(days=30),
    )
    write_store(store_path, aged)
    return aged


def test_first_run_refreshes_from_seed(emu: Emulator, store_path: Path) -> None:
    auth = make_authenticator(emu, store_path)

    body = data_call(emu, auth)

    assert "list" in body
    assert len(refresh_requests(emu)) == 1
    stored = read_store(store_path)
    assert stored.seed_sha256 == sha256_hex(emu.seed_refresh_token)
    assert stored.refresh_token != emu.seed_refresh_token
    assert stored.client_id == emu.client_id


def test_valid_stored_token_skips_refresh(emu: Emulator, store_path: Path) -> None:
    data_call(emu, make_authenticator(emu, store_path))
    emu.clear_request_log()

    second = make_authenticator(emu, store_path)
    body = data_call(emu, second)

    assert "list" in body
    assert refresh_requests(emu) == []
    assert [entry.path for entry in emu.request_log] == [SITE_LIST_PATH]


def test_expiring_token_refreshed_once(emu: Emulator, store_path: Path) -> None:
    data_call(emu, make_authenticator(emu, store_path))
    before = age_store(store_path, datetime.timedelta(minutes=30))
    emu.clear_request_log()

    # Snapshot the store whenever a data call reaches the server.
    snapshots: list[StoredTokens] = []
    original_handle = emu.handle

    def recording_handle(http_method: str, path: str, params: dict[str, str]) -> Any:
        if path == SITE_LIST_PATH:
            snapshots.append(read_store(store_path))
        return original_handle(http_method, path, params)

    emu.handle = recording_handle  # type: ignore[method-assign]
    auth = make_authenticator(emu, store_path, refresh_margin=datetime.timedelta(minutes=45))
    first = data_call(emu, auth)
    second = data_call(emu, auth)

    assert "list" in first
    assert "list" in second
    assert len(refresh_requests(emu)) == 1
    assert [entry.path for entry in emu.request_log] == [TOKEN_PATH, SITE_LIST_PATH, SITE_LIST_PATH]
    assert len(snapshots) == 2
    assert snapshots[0].refresh_token != before.refresh_token
    assert snapshots[0].access_token != before.access_token
    assert snapshots[0].seed_sha256 == before.seed_sha256
    assert snapshots[0].expires_at > before.expires_at


def test_rotated_refresh_token_works_next_run(emu: Emulator, store_path: Path) -> None:
    data_call(emu, make_authenticator(emu, store_path))
    age_store(store_path, datetime.timedelta(seconds=-1))
    data_call(emu, make_authenticator(emu, store_path))
    age_store(store_path, datetime.timedelta(seconds=-1))
    emu.clear_request_log()

    body = data_call(emu, make_authenticator(emu, store_path))

    assert "list" in body
    assert [entry.oauth_error for entry in refresh_requests(emu)] == [None]


def test_seed_change_starts_new_chain(emu: Emulator, store_path: Path) -> None:
    data_call(emu, make_authenticator(emu, store_path))
    old_chain = read_store(store_path)
    new_seed = exchange_code(
        api_url=emu.url,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        code=emu.issue_authorization_code(),
        language=ENGLISH,
    ).refresh_token
    emu.clear_request_log()

    auth = make_authenticator(emu, store_path, seed_refresh_token=new_seed)
    body = data_call(emu, auth)

    assert "list" in body
    refreshes = refresh_requests(emu)
    assert len(refreshes) == 1
    assert refreshes[0].params["refresh_token"] == new_seed
    stored = read_store(store_path)
    assert stored.seed_sha256 == sha256_hex(new_seed)
    assert stored.refresh_token != old_chain.refresh_token


def test_store_without_seed_in_config(emu: Emulator, store_path: Path) -> None:
    data_call(emu, make_authenticator(emu, store_path))
    emu.clear_request_log()

    auth = make_authenticator(emu, store_path, seed_refresh_token=None)

    assert "list" in data_call(emu, auth)
    assert refresh_requests(emu) == []


def test_no_store_no_seed_message(emu: Emulator, store_path: Path) -> None:
    auth = make_authenticator(emu, store_path, seed_refresh_token=None)

    with pytest.raises(AuthorizationRequired) as caught:
        auth.access_token()

    assert "contains no token pair" in str(caught.value)
    assert "tap-baidu-tongji-auth" in str(caught.value)
    assert emu.request_log == []


def test_sticky_refresh_token_accepted(emu: Emulator, store_path: Path) -> None:
    emu.faults.sticky_refresh_token = True
    data_call(emu, make_authenticator(emu, store_path))
    first = read_store(store_path)
    assert first.refresh_token == emu.seed_refresh_token

    age_store(store_path, datetime.timedelta(seconds=-1))
    body = data_call(emu, make_authenticator(emu, store_path))

    assert "list" in body
    assert len(refresh_requests(emu)) == 2
    second = read_store(store_path)
    assert second.refresh_token == emu.seed_refresh_token
    assert second.access_token != first.access_token


def test_config_access_token_used_first(emu: Emulator, store_path: Path) -> None:
    data_call(emu, make_authenticator(emu, store_path))
    valid_access_token = read_store(store_path).access_token
    store_path.unlink()
    emu.clear_request_log()

    auth = make_authenticator(emu, store_path, seed_access_token=valid_access_token)

    assert auth.access_token() == valid_access_token
    assert emu.request_log == []
    assert not store_path.exists()


def test_reject_refreshes_once_then_retry(emu: Emulator, store_path: Path) -> None:
    auth = make_authenticator(emu, store_path)
    data_call(emu, auth)
    rejected = auth.access_token()
    emu.expire_access_tokens()
    emu.clear_request_log()

    assert data_call(emu, auth)["error_code"] == 111
    auth.reject(rejected)
    auth.reject(rejected)
    retried = data_call(emu, auth)

    assert "list" in retried
    assert len(refresh_requests(emu)) == 1
    assert auth.access_token() != rejected
    assert read_store(store_path).access_token == auth.access_token()


def test_reject_uses_token_stored_by_other(emu: Emulator, store_path: Path) -> None:
    first = make_authenticator(emu, store_path)
    second = make_authenticator(emu, store_path)
    data_call(emu, first)
    data_call(emu, second)
    shared = first.access_token()
    emu.expire_access_tokens()

    first.reject(shared)
    assert "list" in data_call(emu, first)
    emu.clear_request_log()
    second.reject(shared)
    body = data_call(emu, second)

    assert "list" in body
    assert refresh_requests(emu) == []
    assert second.access_token() == first.access_token()


def test_refreshed_token_rejected_raises(emu: Emulator, store_path: Path) -> None:
    auth = make_authenticator(emu, store_path)
    data_call(emu, auth)
    emu.expire_access_tokens()
    auth.reject(auth.access_token())
    data_call(emu, auth)
    emu.expire_access_tokens()
    auth.reject(auth.access_token())
    emu.clear_request_log()

    with pytest.raises(AuthorizationRequired) as caught:
        auth.access_token()

    assert "replaced a rejected one" in str(caught.value)
    assert "tap-baidu-tongji-auth" in str(caught.value)
    assert refresh_requests(emu) == []


def test_dropped_refresh_not_replayed(emu: Emulator, store_path: Path) -> None:
    data_call(emu, make_authenticator(emu, store_path))
    spent = read_store(store_path).refresh_token
    age_store(store_path, datetime.timedelta(seconds=-1))
    emu.faults.drop_refresh_responses = 1
    emu.clear_request_log()
    auth = make_authenticator(emu, store_path)

    with pytest.raises(AuthorizationRequired) as first:
        auth.access_token()
    with pytest.raises(AuthorizationRequired) as second:
        auth.access_token()

    refreshes = refresh_requests(emu)
    assert len(refreshes) == 1
    assert refreshes[0].params["refresh_token"] == spent
    assert refreshes[0].fault == "drop"
    for caught in (first, second):
        message = str(caught.value)
        assert "token chain may be broken" in message
        assert "tap-baidu-tongji-auth" in message
        assert "refresh_token" in message
        assert spent not in message
    assert read_store(store_path).refresh_token == spent


def test_refresh_5xx_is_uncertain(emu: Emulator, store_path: Path) -> None:
    from tap_baidu_tongji.emulator import Failure, FailureKind

    data_call(emu, make_authenticator(emu, store_path))
    age_store(store_path, datetime.timedelta(seconds=-1))
    emu.faults.add_failure(Failure(kind=FailureKind.HTTP_STATUS, status=502, endpoint="token"))
    emu.clear_request_log()

    with pytest.raises(AuthorizationRequired, match="unknown outcome"):
        make_authenticator(emu, store_path).access_token()
    assert len(refresh_requests(emu)) == 1


def test_spent_refresh_token_message(emu: Emulator, store_path: Path) -> None:
    data_call(emu, make_authenticator(emu, store_path))
    stale = read_store(store_path)
    age_store(store_path, datetime.timedelta(seconds=-1))
    data_call(emu, make_authenticator(emu, store_path))
    write_store(store_path, dataclasses.replace(stale, expires_at=stale.obtained_at))

    with pytest.raises(AuthorizationRequired) as caught:
        make_authenticator(emu, store_path).access_token()

    message = str(caught.value)
    assert "expired_token" in message
    assert "already used" in message
    assert "tap-baidu-tongji-auth" in message
    assert stale.refresh_token not in message


def test_invalid_client_message(emu: Emulator, store_path: Path) -> None:
    auth = BaiduAuthenticator(
        token_url=emu.url + TOKEN_PATH,
        client_id=emu.client_id,
        client_secret="wrong-secret-value",
        seed_refresh_token=emu.seed_refresh_token,
        store=FileTokenStore(store_path),
        logger=LOGGER,
    )

    with pytest.raises(AuthorizationRequired) as caught:
        auth.access_token()

    message = str(caught.value)
    assert "invalid_client" in message
    assert "client_secret" in message
    assert "wrong-secret-value" not in message


def test_connect_failure_keeps_token(tmp_path: Path) -> None:
    from tap_baidu_tongji.auth import TokenEndpointUnavailable

    with Emulator(port=0) as stopped:
        url = stopped.url
    auth = BaiduAuthenticator(
        token_url=url + TOKEN_PATH,
        client_id="client",
        client_secret="secret-value",
        seed_refresh_token="seed-refresh-token",
        store=FileTokenStore(tmp_path / "tokens.json"),
        logger=LOGGER,
        timeout=(1.0, 1.0),
    )

    with pytest.raises(TokenEndpointUnavailable, match="was not sent"):
        auth.access_token()


def test_query_parameter_replaced(emu: Emulator, store_path: Path) -> None:
    auth = make_authenticator(emu, store_path)
    request = requests.Request(
        "GET",
        emu.url + "/rest/2.0/tongji/report/getData",
        params={"method": "trend/time/a", "access_token": "old-value", "site_id": "1"},
    ).prepare()

    auth(request)

    assert request.url is not None
    query = request.url.split("?", 1)[1].split("&")
    assert query[:2] == ["method=trend%2Ftime%2Fa", "site_id=1"]
    assert query[2] == "access_token=" + quote(auth.access_token(), safe="")
    assert len(query) == 3


def test_threads_share_one_refresh(emu: Emulator, store_path: Path) -> None:
    data_call(emu, make_authenticator(emu, store_path))
    age_store(store_path, datetime.timedelta(seconds=-1))
    emu.clear_request_log()
    shared = make_authenticator(emu, store_path)
    separate = [make_authenticator(emu, store_path) for _ in range(4)]
    authenticators = [shared] * 4 + separate
    barrier = threading.Barrier(len(authenticators))
    tokens: list[str] = []
    errors: list[BaseException] = []

    def worker(auth: BaiduAuthenticator) -> None:
        barrier.wait()
        try:
            tokens.append(auth.access_token())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(auth,)) for auth in authenticators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(tokens) == 8
    assert len(set(tokens)) == 1
    assert len(refresh_requests(emu)) == 1
    assert read_store(store_path).access_token == tokens[0]


PROCESS_WORKER = textwrap.dedent(
    """
    import hashlib, json, logging, sys, time
    import requests
    from tap_baidu_tongji.auth import build_authenticator

    config = json.loads(sys.argv[1])
    start_at = float(sys.argv[2])
    auth = build_authenticator(config, logging.getLogger("worker"))
    while time.time() < start_at:
        time.sleep(0.001)
    response = requests.get(config["api_url"] + sys.argv[3], auth=auth, timeout=30)
    token = auth.access_token()
    print(json.dumps({
        "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
        "ok": "list" in response.json(),
    }))
    """
)


@pytest.mark.parametrize("process_count", [2, 8])
def test_processes_share_one_refresh(emu: Emulator, store_path: Path, process_count: int) -> None:
    data_call(emu, make_authenticator(emu, store_path))
    age_store(store_path, datetime.timedelta(seconds=-1))
    emu.clear_request_log()
    config = {
        "api_url": emu.url,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "refresh_token": emu.seed_refresh_token,
        "token_store_path": str(store_path),
    }
    start_at = time.time() + 3.0
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                PROCESS_WORKER,
                json.dumps(config),
                str(start_at),
                SITE_LIST_PATH,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(process_count)
    ]
    results = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr
        results.append(json.loads(stdout))

    assert all(result["ok"] for result in results)
    assert len({result["token_sha256"] for result in results}) == 1
    assert len(refresh_requests(emu)) == 1
    stored = read_store(store_path)
    assert sha256_hex(stored.access_token) == results[0]["token_sha256"]
    # The stored refresh token is the newest one: it still refreshes.
    age_store(store_path, datetime.timedelta(seconds=-1))
    assert "list" in data_call(emu, make_authenticator(emu, store_path))


def test_build_authenticator_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    auth = build_authenticator(
        {"client_id": "id", "client_secret": "secret-value", "refresh_token": "refresh-value"},
        LOGGER,
    )

    assert auth.token_url == "https://openapi.baidu.com/oauth/2.0/token"
    assert auth.refresh_margin == datetime.timedelta(hours=24)
    assert auth.store.location == str(tmp_path / ".secrets" / "tap-baidu-tongji-tokens.json")


def test_no_secret_in_logs_or_errors(
    emu: Emulator, store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = {emu.client_secret, emu.seed_refresh_token}
    texts: list[str] = []

    auth = make_authenticator(emu, store_path)
    auth.access_token()
    secrets |= {read_store(store_path).refresh_token, read_store(store_path).access_token}
    emu.expire_access_tokens()
    auth.reject(auth.access_token())
    auth.access_token()
    secrets |= {read_store(store_path).refresh_token, read_store(store_path).access_token}
    emu.expire_access_tokens()
    auth.reject(auth.access_token())
    with pytest.raises(AuthorizationRequired) as rejected_twice:
        auth.access_token()
    texts.append(str(rejected_twice.value))

    age_store(store_path, datetime.timedelta(seconds=-1))
    emu.faults.drop_refresh_responses = 1
    with pytest.raises(AuthorizationRequired) as dropped:
        make_authenticator(emu, store_path).access_token()
    texts.append(str(dropped.value))
    with pytest.raises(AuthorizationRequired) as spent:
        make_authenticator(emu, store_path).access_token()
    texts.append(str(spent.value))
    secrets |= {entry.params.get("refresh_token", "") for entry in emu.request_log} - {""}

    texts.append(caplog.text)
    texts.extend(record.getMessage() for record in caplog.records)
    assert len(secrets) >= 5
    for text in texts:
        for secret in secrets:
            assert secret not in text
    assert "Refreshed the access token" in caplog.text
    assert "from the token store" in caplog.text or "refreshed" in caplog.text


class UnwritableStore:
    """A token store whose writes fail, as on a full disk."""

    def __init__(self, path: Path) -> None:
        self._inner = FileTokenStore(path)
        self.location = self._inner.location

    @contextlib.contextmanager
    def locked(self) -> Iterator[Any]:
        with self._inner.locked():
            yield self

    def read(self) -> StoredTokens | None:
        return None

    def write(self, tokens: StoredTokens) -> None:
        raise TokenStoreError("Cannot write the token store (No space left on device).")

    def read_refresh_marker(self) -> RefreshMarker | None:
        return None

    def write_refresh_marker(self, marker: RefreshMarker) -> None:
        return None

    def clear_refresh_marker(self) -> None:
        return None

    def check_writable(self) -> None:
        return None

    def refresh_marker_removal(self) -> str:
        return "delete the refresh marker"


def test_failed_store_write_stops(emu: Emulator, store_path: Path) -> None:
    auth = BaiduAuthenticator(
        token_url=emu.url + TOKEN_PATH,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        seed_refresh_token=emu.seed_refresh_token,
        store=UnwritableStore(store_path),
        logger=LOGGER,
    )

    with pytest.raises(AuthorizationRequired) as caught:
        auth.access_token()

    message = str(caught.value)
    assert "saving the new token pair failed" in message
    assert "No space left on device" in message
    assert "tap-baidu-tongji-auth" in message
    assert len(refresh_requests(emu)) == 1


def test_short_lifetime_renews_at_half(store_path: Path) -> None:
    with Emulator(port=0, access_token_ttl_seconds=4) as emu:
        auth = make_authenticator(emu, store_path, refresh_margin=datetime.timedelta(days=1))
        first = auth.access_token()
        assert auth.access_token() == first
        assert len(refresh_requests(emu)) == 1

        time.sleep(2.5)
        second = auth.access_token()

        assert second != first
        assert len(refresh_requests(emu)) == 2
        assert "list" in data_call(emu, auth)
