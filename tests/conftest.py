"""Shared fixtures: the emulator on loopback and ways to run the tap against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tap_baidu_tongji.emulator import Emulator

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh emulator on an ephemeral 127.0.0.1 port."""
    with Emulator(port=0) as emu:
        yield emu


def tap_config(emu: Emulator, folder: Path, **overrides: Any) -> dict[str, Any]:
    """Return settings that point the tap at `emu`, with a token store in `folder`."""
    config: dict[str, Any] = {
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "refresh_token": emu.seed_refresh_token,
        "api_url": emu.url,
        "token_store_path": str(folder / "secrets" / "tokens.json"),
        "retry_initial_wait_seconds": 0.01,
    }
    config.update(overrides)
    return config


@dataclass
class TapRun:
    """Output of one tap process: parsed Singer messages and its log."""

    returncode: int
    messages: list[dict[str, Any]]
    stderr: str
    stdout: str = ""
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def final_state(self) -> dict[str, Any]:
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return states[-1] if states else {}


def run_tap_cli(
    config: Mapping[str, Any],
    folder: Path,
    *,
    state: Mapping[str, Any] | None = None,
    catalog: Mapping[str, Any] | None = None,
    extra_args: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> TapRun:
    """Run `tap-baidu-tongji` as a real process and collect what it wrote."""
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(config))
    args = [sys.executable, "-m", "tap_baidu_tongji", "--config", str(config_path)]
    if state is not None:
        state_path = folder / "state.json"
        state_path.write_text(json.dumps(state))
        args += ["--state", str(state_path)]
    if catalog is not None:
        catalog_path = folder / "catalog.json"
        catalog_path.write_text(json.dumps(catalog))
        args += ["--catalog", str(catalog_path)]
    args += extra_args or []

    process_env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_BAIDU_TONGJI_")}
    process_env.update(env or {})
    completed = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=process_env,
        cwd=folder,
        check=False,
    )
    is_discovery = "--discover" in (extra_args or [])
    lines = [] if is_discovery else completed.stdout.splitlines()
    messages = [json.loads(line) for line in lines if line.startswith("{")]
    records: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        if message["type"] == "RECORD":
            records.setdefault(message["stream"], []).append(message["record"])
    return TapRun(completed.returncode, messages, completed.stderr, completed.stdout, records)


def catalog_selecting(folder: Path, config: Mapping[str, Any], streams: set[str]) -> dict[str, Any]:
    """Discover the catalog and select only `streams` (and their parent `sites`)."""
    run = run_tap_cli(config, folder, extra_args=["--discover"])
    assert run.returncode == 0, run.stderr
    catalog = json.loads(run.stdout)
    for entry in catalog["streams"]:
        selected = entry["tap_stream_id"] in streams | {"sites"}
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = selected
    return catalog
