"""Tests of the file token store: format, modes, locking, crash safety and error messages."""

from __future__ import annotations

import datetime
import json
import logging
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tap_baidu_tongji.auth.token_store import (
    FileTokenStore,
    StoredTokens,
    TokenStoreCorruptError,
    TokenStoreNotWritableError,
    sha256_hex,
)

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def make_tokens(number: int = 1) -> StoredTokens:
    return StoredTokens(
        client_id="client-id-for-tests",
        refresh_token=f"122.refresh-token-{number:06d}",
        access_token=f"121.access-token-{number:06d}",
        expires_at=NOW + datetime.timedelta(days=30),
        obtained_at=NOW,
        seed_sha256=sha256_hex("122.refresh-token-000000"),
    )


def test_store_round_trip(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    tokens = make_tokens(7)

    with store.locked() as session:
        assert session.read() is None
        session.write(tokens)

    with store.locked() as session:
        assert session.read() == tokens


def test_store_file_format(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    with store.locked() as session:
        session.write(make_tokens(3))

    data = json.loads(path.read_text())
    assert data["version"] == 1
    assert data["client_id"] == "client-id-for-tests"
    assert data["refresh_token"] == "122.refresh-token-000003"
    assert data["access_token"] == "121.access-token-000003"
    assert data["expires_at"] == "2026-02-01T03:04:05+00:00"
    assert data["obtained_at"] == "2026-01-02T03:04:05+00:00"
    assert data["seed_sha256"] == sha256_hex("122.refresh-token-000000")


def test_store_modes(tmp_path: Path) -> None:
    path = tmp_path / "new-folder" / "tokens.json"
    store = FileTokenStore(path)
    with store.locked() as session:
        session.write(make_tokens())

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_store_repr_hides_tokens() -> None:
    text = repr(make_tokens(5))
    assert "refresh-token" not in text
    assert "access-token" not in text


def test_store_warns_on_open_permissions(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    with store.locked() as session:
        session.write(make_tokens())
    os.chmod(path, 0o644)

    caplog.set_level(logging.DEBUG)
    with store.locked() as session:
        session.read()

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert str(path) in message
    assert "chmod 600" in message
    assert "refresh-token" not in caplog.text
    assert "access-token" not in caplog.text


def test_store_corrupt_json_message(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text('{"version": 1, "refresh_token": "122.abc')
    store = FileTokenStore(path)

    with pytest.raises(TokenStoreCorruptError) as caught, store.locked() as session:
        session.read()

    message = str(caught.value)
    assert str(path) in message
    assert "is corrupt" in message
    assert "tap-baidu-tongji-auth" in message
    assert "122.abc" not in message


def test_store_missing_fields_message(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"version": 1, "client_id": "x", "refresh_token": "122.secret"}))
    store = FileTokenStore(path)

    with pytest.raises(TokenStoreCorruptError) as caught, store.locked() as session:
        session.read()

    message = str(caught.value)
    assert "access_token" in message
    assert "expires_at" in message
    assert "122.secret" not in message


def test_store_unknown_version_message(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    data = make_tokens().to_json()
    data["version"] = 2
    path.write_text(json.dumps(data))

    store = FileTokenStore(path)
    with (
        pytest.raises(TokenStoreCorruptError, match="version 2 is not supported"),
        store.locked() as session,
    ):
        session.read()


def test_check_writable_creates_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "tokens.json"
    FileTokenStore(path).check_writable()
    assert path.parent.is_dir()
    assert not path.exists()
    assert list(path.parent.iterdir()) == []


def test_check_writable_parent_is_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    store = FileTokenStore(blocker / "tokens.json")

    with pytest.raises(TokenStoreNotWritableError) as caught:
        store.check_writable()

    message = str(caught.value)
    assert "token_store_path" in message
    assert str(blocker / "tokens.json") in message
    assert "writable" in message


def test_check_writable_path_is_folder(tmp_path: Path) -> None:
    with pytest.raises(TokenStoreNotWritableError, match="is a folder"):
        FileTokenStore(tmp_path).check_writable()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_check_writable_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    os.chmod(folder, 0o500)
    try:
        with pytest.raises(TokenStoreNotWritableError, match="token_store_path"):
            FileTokenStore(folder / "tokens.json").check_writable()
    finally:
        os.chmod(folder, 0o700)


WRITER_SCRIPT = textwrap.dedent(
    """
    import datetime, sys
    from tap_baidu_tongji.auth.token_store import FileTokenStore, StoredTokens

    store = FileTokenStore(sys.argv[1])
    now = datetime.datetime.now(datetime.timezone.utc)
    number = int(sys.argv[2])
    padding = "p" * 20000  # a large body widens the window in which a kill lands mid-write
    print("ready", flush=True)
    while True:
        number += 1
        with store.locked() as session:
            session.write(StoredTokens(
                client_id="client-" + padding,
                refresh_token=f"122.refresh-{number}",
                access_token=f"121.access-{number}",
                expires_at=now,
                obtained_at=now,
                seed_sha256="0" * 64,
            ))
    """
)


def test_store_survives_killed_writers(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    randomizer = random.Random(20260102)
    last_number = 0
    kills = 40
    mid_write_kills = 0

    for iteration in range(kills):
        start_number = iteration * 1_000_000
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER_SCRIPT, str(path), str(start_number)],
            stdout=subprocess.PIPE,
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == b"ready"
        time.sleep(randomizer.uniform(0.0, 0.05))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        if any(name.endswith(".tmp") for name in os.listdir(tmp_path)):
            mid_write_kills += 1

        if not path.exists():
            continue
        data = json.loads(path.read_text())
        number = int(data["access_token"].removeprefix("121.access-"))
        assert data["refresh_token"] == f"122.refresh-{number}"
        assert number >= last_number
        last_number = number
        with store.locked() as session:
            assert session.read() is not None

    assert last_number > 0
    # Proves that some kills landed between creating the temporary file and the rename.
    assert mid_write_kills > 0
    # Taking the lock removes temporary files that killed writers left behind.
    with store.locked():
        pass
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
    assert leftovers == []
