"""meltano.yml against the tap and the emulator, and the demo pipeline into DuckDB.

The first tests read meltano.yml and need no meltano CLI: they keep the plugin definition in
step with the tap's settings schema, its default stream selection and the emulator's demo
credentials. The last test runs the demo environment through the real meltano CLI.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tap_baidu_tongji.custom_reports import check_custom_reports
from tap_baidu_tongji.dates import beijing_today
from tap_baidu_tongji.emulator import Emulator
from tests.pipeline_helpers import (
    DEFAULT_STREAMS,
    PLUGIN_DIR,
    REPO_ROOT,
    MeltanoProject,
    require_meltano,
    tap_settings,
)

# Setting kinds of Meltano 4.4.1 (`meltano.core.setting_definition.SettingKind`), without
# `password`, `oauth` and `hidden`, which it keeps only as deprecated aliases.
MELTANO_SETTING_KINDS = {
    "string",
    "integer",
    "boolean",
    "decimal",
    "date_iso8601",
    "email",
    "file",
    "array",
    "object",
    "options",
}
JSON_SCHEMA_KINDS = {
    "string": {"string", "date_iso8601", "email", "file", "options"},
    "integer": {"integer"},
    "number": {"decimal"},
    "boolean": {"boolean"},
    "array": {"array"},
    "object": {"object"},
}
# Defaults that meltano.yml sets on purpose to another value than the tap's own.
PROJECT_DEFAULTS = {"token_store_path"}

ROW_COUNT_SCRIPT = REPO_ROOT / "scripts" / "duckdb_row_counts.py"
DUCKDB_PYTHON = PLUGIN_DIR / "loaders/target-duckdb/venv/bin/python"


@pytest.fixture(scope="module")
def tap_settings_schema() -> dict[str, Any]:
    """Return the settings that `tap-baidu-tongji --about` lists, SDK built-ins included."""
    executable = Path(sys.executable).parent / "tap-baidu-tongji"
    output = subprocess.run(
        [str(executable), "--about", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    properties: dict[str, Any] = json.loads(output)["settings"]["properties"]
    return properties


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    with (REPO_ROOT / "meltano.yml").open(encoding="utf-8") as file:
        loaded: dict[str, Any] = yaml.safe_load(file)
    return loaded


def plugin(project: dict[str, Any], plugin_type: str, name: str) -> dict[str, Any]:
    matches = [entry for entry in project["plugins"][plugin_type] if entry["name"] == name]
    assert len(matches) == 1, f"meltano.yml defines {len(matches)} {plugin_type} named {name}"
    return matches[0]


def environment_config(
    project: dict[str, Any], environment: str, plugin_type: str, name: str
) -> dict[str, Any]:
    entry = next(env for env in project["environments"] if env["name"] == environment)
    plugins = entry["config"]["plugins"][plugin_type]
    config: dict[str, Any] = next(item for item in plugins if item["name"] == name)["config"]
    return config


def json_types(schema: dict[str, Any]) -> set[str]:
    declared = schema.get("type", [])
    types = {declared} if isinstance(declared, str) else set(declared)
    return types - {"null"}


def test_default_environment_is_defined(project: dict[str, Any]) -> None:
    names = {entry["name"] for entry in project["environments"]}
    assert project["default_environment"] in names
    assert {"dev", "demo"} <= names


def test_every_plugin_has_pip_url(project: dict[str, Any]) -> None:
    for plugin_type, entries in project["plugins"].items():
        for entry in entries:
            assert entry.get("pip_url"), f"{plugin_type} {entry['name']} has no pip_url"
            assert entry.get("namespace"), f"{plugin_type} {entry['name']} has no namespace"


def test_settings_match_tap_schema(
    project: dict[str, Any], tap_settings_schema: dict[str, Any]
) -> None:
    settings = plugin(project, "extractors", "tap-baidu-tongji")["settings"]
    names = [setting["name"] for setting in settings]
    assert len(names) == len(set(names))
    assert set(names) == set(tap_settings_schema)


def test_settings_are_described(project: dict[str, Any]) -> None:
    for setting in plugin(project, "extractors", "tap-baidu-tongji")["settings"]:
        assert setting.get("label"), setting["name"]
        assert setting.get("description"), setting["name"]
        assert setting.get("kind") in MELTANO_SETTING_KINDS, setting["name"]


def test_setting_kinds_match_tap_types(
    project: dict[str, Any], tap_settings_schema: dict[str, Any]
) -> None:
    for setting in plugin(project, "extractors", "tap-baidu-tongji")["settings"]:
        schema = tap_settings_schema[setting["name"]]
        allowed = set().union(*(JSON_SCHEMA_KINDS[kind] for kind in json_types(schema)))
        assert setting["kind"] in allowed, setting["name"]


def test_secret_settings_are_sensitive(
    project: dict[str, Any], tap_settings_schema: dict[str, Any]
) -> None:
    for setting in plugin(project, "extractors", "tap-baidu-tongji")["settings"]:
        schema = tap_settings_schema[setting["name"]]
        if schema.get("secret"):
            assert setting.get("sensitive") is True, setting["name"]


def test_setting_defaults_match_tap(
    project: dict[str, Any], tap_settings_schema: dict[str, Any]
) -> None:
    for setting in plugin(project, "extractors", "tap-baidu-tongji")["settings"]:
        if setting["name"] in PROJECT_DEFAULTS:
            continue
        schema = tap_settings_schema[setting["name"]]
        assert setting.get("value") == schema.get("default"), setting["name"]


def test_select_names_default_streams(project: dict[str, Any]) -> None:
    patterns = plugin(project, "extractors", "tap-baidu-tongji")["select"]
    assert all(pattern.endswith(".*") for pattern in patterns)
    assert {pattern.removesuffix(".*") for pattern in patterns} == DEFAULT_STREAMS


def test_demo_selects_its_custom_reports(project: dict[str, Any]) -> None:
    demo = next(env for env in project["environments"] if env["name"] == "demo")
    plugins = demo["config"]["plugins"]["extractors"]
    (extractor,) = [entry for entry in plugins if entry["name"] == "tap-baidu-tongji"]
    custom_streams = {entry["name"] for entry in extractor["config"]["custom_reports"]}
    patterns = {pattern.removesuffix(".*") for pattern in extractor["select"]}
    assert patterns == DEFAULT_STREAMS | custom_streams


def test_demo_custom_reports_are_valid(project: dict[str, Any]) -> None:
    demo = environment_config(project, "demo", "extractors", "tap-baidu-tongji")
    assert check_custom_reports(demo["custom_reports"]) == []
    assert len(demo["custom_reports"]) == 2


def test_demo_uses_emulator_credentials(project: dict[str, Any]) -> None:
    config = environment_config(project, "demo", "extractors", "tap-baidu-tongji")
    emulator = Emulator()
    assert config["client_id"] == emulator.client_id
    assert config["client_secret"] == emulator.client_secret
    assert config["refresh_token"] == emulator.seed_refresh_token
    assert config["api_url"] == "http://127.0.0.1:8765"


def test_demo_writes_under_output(project: dict[str, Any]) -> None:
    tap_config = environment_config(project, "demo", "extractors", "tap-baidu-tongji")
    loader_config = environment_config(project, "demo", "loaders", "target-duckdb")
    assert tap_config["token_store_path"].startswith("${MELTANO_PROJECT_ROOT}/output/")
    assert loader_config["filepath"] == "${MELTANO_PROJECT_ROOT}/output/demo.duckdb"


@pytest.mark.meltano
def test_demo_pipeline_loads_duckdb(tmp_path: Path) -> None:
    require_meltano("tap-baidu-tongji", "target-duckdb")
    database = tmp_path / "demo.duckdb"
    last_day = beijing_today() - dt.timedelta(days=2)
    streams = ["sites", "trend_time", "source_engine"]

    with Emulator(port=0) as emulator:
        project = MeltanoProject(work_dir=tmp_path, environment="demo")
        project.settings = {
            **tap_settings(
                emulator,
                tmp_path / "tokens.json",
                start_date=(last_day - dt.timedelta(days=1)).isoformat(),
                end_date=last_day.isoformat(),
            ),
            "TAP_BAIDU_TONGJI__SELECT": json.dumps([f"{stream}.*" for stream in streams]),
            "TARGET_DUCKDB_FILEPATH": str(database),
        }
        project.run_pipeline("tap-baidu-tongji", "target-duckdb")

    counts = subprocess.run(
        [str(DUCKDB_PYTHON), str(ROW_COUNT_SCRIPT), str(database), "tap_baidu_tongji"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {
        line.split()[0]: int(line.split()[1]) for line in counts.splitlines()[1:] if line.strip()
    }
    site_count = len(emulator.sites)
    assert rows["sites"] == site_count
    assert rows["trend_time"] == 2 * site_count
    assert rows["source_engine"] > 0
    assert rows["total"] == sum(rows[stream] for stream in streams)
