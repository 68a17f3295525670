"""tap-baidu-tongji.hub.yml and meltano.yml against what the tap reports with --about."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
HUB_DEFINITION = REPO_ROOT / "tap-baidu-tongji.hub.yml"
MELTANO_PROJECT = REPO_ROOT / "meltano.yml"

# Meltano setting kinds for the JSON types of --about. `decimal` is Meltano's kind for
# numbers (meltano 4.4.1 SettingKind.DECIMAL, also in the Hub's setting schema).
KIND_BY_JSON_TYPE = {
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
    "string": "string",
}

# Settings that are sensitive without being marked secret by the tap, and why.
EXTRA_SENSITIVE = {"token_store_url": "a PostgreSQL URL may contain a password"}

# Defaults that differ on purpose from the tap's own.
MELTANO_DEFAULTS = {
    # The tap resolves its default against the working directory; under Meltano the store
    # belongs in the project, whatever folder `meltano` runs from.
    "token_store_path": "${MELTANO_PROJECT_ROOT}/.secrets/tap-baidu-tongji-tokens.json",
}

# Keys that the Hub's schemas allow: schemas/plugin_definitions/extractors.schema.json
# (with hub_metadata.schema.json) and schemas/common/base_setting.schema.json in
# github.com/meltano/hub.
HUB_PLUGIN_KEYS = {
    "name", "pip_url", "variant", "namespace", "label", "description", "executable",
    "settings", "docs", "repo", "logo_url", "hidden", "settings_group_validation",
    "commands", "capabilities", "metadata", "schema", "select", "maintenance_status",
    "domain_url", "keywords", "requires", "definition", "next_steps", "settings_preamble",
    "usage", "prereq", "quality",
}  # fmt: skip
HUB_SETTING_KEYS = {
    "name", "aliases", "label", "value", "placeholder", "kind", "description", "tooltip",
    "documentation", "env", "value_processor", "value_post_processor", "oauth", "options",
    "docs", "hidden", "sensitive",
}  # fmt: skip


@pytest.fixture(scope="module")
def about() -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "tap_baidu_tongji", "--about", "--format=json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    info: dict[str, Any] = json.loads(completed.stdout)
    return info


@pytest.fixture(scope="module")
def about_settings(about: dict[str, Any]) -> dict[str, dict[str, Any]]:
    settings: dict[str, dict[str, Any]] = about["settings"]["properties"]
    return settings


@pytest.fixture(scope="module")
def hub() -> dict[str, Any]:
    definition: dict[str, Any] = yaml.safe_load(HUB_DEFINITION.read_text(encoding="utf-8"))
    return definition


@pytest.fixture(scope="module")
def hub_settings(hub: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {setting["name"]: setting for setting in hub["settings"]}


@pytest.fixture(scope="module")
def own_setting_names(about_settings: dict[str, dict[str, Any]]) -> set[str]:
    """The tap's own settings: --about minus the ones the Singer SDK adds to every tap."""
    from tap_baidu_tongji.tap import TapBaiduTongji

    builtin: dict[str, Any] = {"type": "object", "properties": {}}
    TapBaiduTongji.append_builtin_config(builtin)
    return set(about_settings) - set(builtin["properties"])


def expected_kind(schema: dict[str, Any]) -> str:
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    json_types = [name for name in types if name != "null"]
    assert len(json_types) == 1, f"no single JSON type in {schema}"
    if json_types[0] == "string" and schema.get("format") in {"date", "date-time"}:
        return "date_iso8601"
    return KIND_BY_JSON_TYPE[json_types[0]]


def test_hub_identity_fields(hub: dict[str, Any]) -> None:
    assert hub["name"] == "tap-baidu-tongji"
    assert hub["namespace"] == "tap_baidu_tongji"
    assert hub["executable"] == "tap-baidu-tongji"
    assert hub["pip_url"] == "tap-baidu-tongji"
    assert "meltano_sdk" in hub["keywords"]
    assert hub["maintenance_status"] in {"active", "beta", "development", "inactive", "unknown"}


def test_hub_uses_only_schema_keys(hub: dict[str, Any]) -> None:
    assert set(hub) - HUB_PLUGIN_KEYS == set()
    for setting in hub["settings"]:
        assert set(setting) - HUB_SETTING_KEYS == set(), setting["name"]


def test_hub_setting_names_match_about(
    hub_settings: dict[str, dict[str, Any]], about_settings: dict[str, dict[str, Any]]
) -> None:
    assert set(hub_settings) - set(about_settings) == set(), "unknown to the tap"
    assert set(about_settings) - set(hub_settings) == set(), "missing from the hub definition"


def test_hub_setting_names_unique(hub: dict[str, Any]) -> None:
    names = [setting["name"] for setting in hub["settings"]]

    assert len(names) == len(set(names))


def test_hub_kinds_match_json_types(
    hub_settings: dict[str, dict[str, Any]], about_settings: dict[str, dict[str, Any]]
) -> None:
    for name, schema in about_settings.items():
        assert hub_settings[name]["kind"] == expected_kind(schema), name


def test_hub_secrets_are_sensitive(
    hub_settings: dict[str, dict[str, Any]], about_settings: dict[str, dict[str, Any]]
) -> None:
    for name, schema in about_settings.items():
        sensitive = hub_settings[name].get("sensitive", False)
        if schema.get("secret"):
            assert sensitive is True, f"{name} is secret in the tap"
        elif name not in EXTRA_SENSITIVE:
            assert sensitive is False, f"{name} is not secret in the tap"
    for name in EXTRA_SENSITIVE:
        assert hub_settings[name]["sensitive"] is True, name


def test_hub_settings_have_label_and_description(hub: dict[str, Any]) -> None:
    for setting in hub["settings"]:
        assert setting.get("label"), setting["name"]
        assert setting.get("description"), setting["name"]


def test_hub_defaults_match_about(
    hub_settings: dict[str, dict[str, Any]], about_settings: dict[str, dict[str, Any]]
) -> None:
    for name, schema in about_settings.items():
        expected = MELTANO_DEFAULTS.get(name, schema.get("default"))
        assert hub_settings[name].get("value") == expected, name


def test_hub_capabilities_match_about(hub: dict[str, Any], about: dict[str, Any]) -> None:
    assert sorted(hub["capabilities"]) == sorted(about["capabilities"])


def test_hub_group_validation_names_settings(
    hub: dict[str, Any], hub_settings: dict[str, dict[str, Any]]
) -> None:
    groups = hub["settings_group_validation"]

    assert groups
    for group in groups:
        assert {"client_id", "client_secret"} <= set(group)
        assert set(group) <= set(hub_settings), group


def test_meltano_yml_settings_match_tap(
    own_setting_names: set[str], about_settings: dict[str, dict[str, Any]]
) -> None:
    project = yaml.safe_load(MELTANO_PROJECT.read_text(encoding="utf-8"))
    extractor = next(
        plugin
        for plugin in project["plugins"]["extractors"]
        if plugin["name"] == "tap-baidu-tongji"
    )
    names = {setting["name"] for setting in extractor.get("settings", [])}

    # meltano.yml may also declare the SDK's built-in settings (stream maps, flattening).
    assert own_setting_names - names == set(), "add these settings to meltano.yml"
    assert names - set(about_settings) == set(), "meltano.yml has settings the tap lacks"
