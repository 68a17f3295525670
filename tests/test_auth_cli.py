"""Tests of `tap-baidu-tongji-auth` run as a subprocess against the local emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tap_baidu_tongji.auth import FileTokenStore, StoredTokens
from tap_baidu_tongji.auth.messages import CHINESE, ENGLISH, detect_language
from tap_baidu_tongji.auth.token_store import sha256_hex
from tap_baidu_tongji.emulator import Emulator

SITE_LIST_PATH = "/rest/2.0/tongji/config/getSiteList"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(port=0) as emulator:
        yield emulator


def cli_env(language: str, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"}
        and not key.startswith("TAP_BAIDU_TONGJI_")
    }
    env["LANG"] = "zh_CN.UTF-8" if language == CHINESE else "en_US.UTF-8"
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tap_baidu_tongji.auth.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def read_store(path: Path) -> StoredTokens:
    with FileTokenStore(path).locked() as session:
        tokens = session.read()
    assert tokens is not None
    return tokens


def assert_no_secret(result: subprocess.CompletedProcess[str], secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in result.stdout
        assert secret not in result.stderr


def assert_store_works(emu: Emulator, path: Path) -> None:
    tokens = read_store(path)
    response = requests.get(
        emu.url + SITE_LIST_PATH, params={"access_token": tokens.access_token}, timeout=10
    )
    assert "list" in response.json()


@pytest.mark.parametrize("language", [ENGLISH, CHINESE])
def test_cli_code_option(emu: Emulator, tmp_path: Path, language: str) -> None:
    store_path = tmp_path / "store" / "tokens.json"
    code = emu.issue_authorization_code()
    env = cli_env(language, TAP_BAIDU_TONGJI_CLIENT_SECRET=emu.client_secret)

    result = run_cli(
        "--api-url",
        emu.url,
        "--client-id",
        emu.client_id,
        "--code",
        code,
        "--token-store-path",
        str(store_path),
        env=env,
    )

    assert result.returncode == 0, result.stderr
    tokens = read_store(store_path)
    assert tokens.seed_sha256 == sha256_hex(tokens.refresh_token)
    assert tokens.client_id == emu.client_id
    assert_store_works(emu, store_path)
    assert str(store_path) in result.stdout
    assert f"meltano config set tap-baidu-tongji client_id {emu.client_id}" in result.stdout
    assert f"meltano config set tap-baidu-tongji token_store_path {store_path}" in result.stdout
    assert "meltano config unset tap-baidu-tongji refresh_token" in result.stdout
    if language == ENGLISH:
        assert "Authorization succeeded" in result.stdout
    else:
        assert "授权成功" in result.stdout
        assert "令牌存储文件" in result.stdout
    assert_no_secret(result, [emu.client_secret, code, tokens.refresh_token, tokens.access_token])
    grants = [entry for entry in emu.request_log if entry.grant_type]
    assert [(entry.http_method, entry.grant_type) for entry in grants] == [
        ("POST", "authorization_code")
    ]
    assert grants[0].params["redirect_uri"] == "oob"


@pytest.mark.parametrize("language", [ENGLISH, CHINESE])
def test_cli_prompts(emu: Emulator, tmp_path: Path, language: str) -> None:
    store_path = tmp_path / "tokens.json"
    code = emu.issue_authorization_code()
    stdin = f"{emu.client_id}\n{emu.client_secret}\n{code}\n"

    result = run_cli(
        "--api-url", emu.url, "--token-store-path", str(store_path),
        env=cli_env(language), stdin=stdin,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    expected_url = (
        f"{emu.url}/oauth/2.0/authorize?response_type=code&client_id={emu.client_id}"
        "&redirect_uri=oob&scope=basic&display=popup"
    )
    assert expected_url in result.stdout
    if language == ENGLISH:
        assert "API Key (client_id): " in result.stdout
        assert "Secret Key (client_secret, not shown while typing): " in result.stdout
        assert "Authorization code: " in result.stdout
        assert "owns the Tongji sites" in result.stdout
        assert "valid for 10 minutes and can be used only once" in result.stdout
        assert "Authorization succeeded" in result.stdout
    else:
        assert "API Key（client_id）：" in result.stdout
        assert "授权码：" in result.stdout
        assert "拥有百度统计站点的百度账号" in result.stdout
        assert "授权码 10 分钟内有效，且只能使用一次" in result.stdout
        assert "授权成功" in result.stdout
    tokens = read_store(store_path)
    assert_store_works(emu, store_path)
    assert_no_secret(result, [emu.client_secret, code, tokens.refresh_token, tokens.access_token])


@pytest.mark.parametrize("language", [ENGLISH, CHINESE])
def test_cli_reused_code(emu: Emulator, tmp_path: Path, language: str) -> None:
    code = emu.issue_authorization_code()
    env = cli_env(
        language,
        TAP_BAIDU_TONGJI_CLIENT_ID=emu.client_id,
        TAP_BAIDU_TONGJI_CLIENT_SECRET=emu.client_secret,
    )
    first_path = tmp_path / "first.json"
    second_path = tmp_path / "second.json"
    first = run_cli("--api-url", emu.url, "--code", code, "--token-store-path",
                    str(first_path), env=env)  # fmt: skip
    assert first.returncode == 0, first.stderr

    second = run_cli("--api-url", emu.url, "--code", code, "--token-store-path",
                     str(second_path), env=env)  # fmt: skip

    assert second.returncode == 1
    assert "Traceback" not in second.stderr
    assert "invalid_grant" in second.stderr
    if language == ENGLISH:
        assert "authorization code was rejected" in second.stderr
        assert "valid for 10 minutes and can be used only once" in second.stderr
    else:
        assert "授权码被拒绝" in second.stderr
        assert "授权码 10 分钟内有效，且只能使用一次" in second.stderr
    assert not second_path.exists()
    assert_no_secret(second, [emu.client_secret, code])


@pytest.mark.parametrize("language", [ENGLISH, CHINESE])
def test_cli_wrong_secret(emu: Emulator, tmp_path: Path, language: str) -> None:
    code = emu.issue_authorization_code()
    wrong_secret = "wrong-secret-key-value"
    env = cli_env(
        language,
        TAP_BAIDU_TONGJI_CLIENT_ID=emu.client_id,
        TAP_BAIDU_TONGJI_CLIENT_SECRET=wrong_secret,
    )

    result = run_cli("--api-url", emu.url, "--code", code, "--token-store-path",
                     str(tmp_path / "tokens.json"), env=env)  # fmt: skip

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "invalid_client" in result.stderr
    if language == ENGLISH:
        assert "API Key or Secret Key was rejected" in result.stderr
    else:
        assert "API Key 或 Secret Key 被拒绝" in result.stderr
    assert_no_secret(result, [wrong_secret, emu.client_secret, code])


@pytest.mark.parametrize("language", [ENGLISH, CHINESE])
def test_cli_unwritable_store(emu: Emulator, tmp_path: Path, language: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = emu.issue_authorization_code()
    env = cli_env(
        language,
        TAP_BAIDU_TONGJI_CLIENT_ID=emu.client_id,
        TAP_BAIDU_TONGJI_CLIENT_SECRET=emu.client_secret,
    )

    result = run_cli("--api-url", emu.url, "--code", code, "--token-store-path",
                     str(blocker / "tokens.json"), env=env)  # fmt: skip

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "token_store_path" in result.stderr
    assert [entry for entry in emu.request_log if entry.grant_type] == []


def test_cli_input_ends_at_prompt(tmp_path: Path) -> None:
    result = run_cli("--token-store-path", str(tmp_path / "t.json"), env=cli_env(ENGLISH))

    assert result.returncode == 1
    assert "Cancelled." in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ENGLISH),
        ({"LANG": "zh_CN.UTF-8"}, CHINESE),
        ({"LANG": "zh_TW.UTF-8"}, CHINESE),
        ({"LC_ALL": "en_US.UTF-8", "LANG": "zh_CN.UTF-8"}, ENGLISH),
        ({"LC_ALL": "", "LC_MESSAGES": "zh_CN.UTF-8", "LANG": "C"}, CHINESE),
        ({"LANGUAGE": "zh_CN:en"}, CHINESE),
        ({"LANG": "C.UTF-8", "LANGUAGE": "zh_CN"}, ENGLISH),
    ],
)
def test_language_detection(environ: dict[str, str], expected: str) -> None:
    assert detect_language(environ) == expected
