"""The READMEs: generated tables up to date, both languages with the same sections and commands."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
GENERATOR = REPO_ROOT / "scripts" / "generate_docs.py"
ENGLISH = REPO_ROOT / "README.md"
CHINESE = REPO_ROOT / "README.zh-CN.md"

# Pages that another change adds; a link to one of them may point nowhere until then.
PENDING_PAGES = {"docs/benchmarks.md"}

KEY_COMMANDS = (
    "make demo",
    "make test",
    "tap-baidu-tongji-auth --token-store-path",
    "meltano config set tap-baidu-tongji client_id",
    "meltano run tap-baidu-tongji target-postgres",
    "meltano run --full-refresh tap-baidu-tongji target-postgres",
    "meltano config unset tap-baidu-tongji refresh_token",
    ".venv/bin/python scripts/generate_docs.py",
)


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_docs", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_generator()


def h2_headings(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, flags=re.MULTILINE)


def commands_in(text: str) -> set[str]:
    """Return the shell commands of the README: code block lines and inline code spans."""
    commands = set()
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.DOTALL):
        commands.update(line.strip() for line in block.splitlines() if line.strip())
    for span in re.findall(r"`([^`\n]+)`", text):
        if span.startswith(("make ", "meltano ", "tap-baidu-tongji", ".venv/bin/")):
            commands.add(span)
    return commands


@pytest.mark.parametrize("readme", [ENGLISH, CHINESE], ids=["en", "zh-CN"])
def test_readme_tables_match_generator(generator: ModuleType, readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    expected = generator.render_readme(text, generator.language_of(readme), [], str(readme))

    assert text == expected, (
        f"{readme.name} is out of date; run `.venv/bin/python scripts/generate_docs.py`."
    )


def test_generator_check_passes_on_repository() -> None:
    completed = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr


def test_generator_check_fails_on_stale_table(tmp_path: Path) -> None:
    for readme in (ENGLISH, CHINESE):
        shutil.copy(readme, tmp_path / readme.name)
    stale = tmp_path / ENGLISH.name
    stale.write_text(
        stale.read_text(encoding="utf-8").replace("| `client_id` |", "| `client_key` |"),
        encoding="utf-8",
    )
    paths = [str(tmp_path / ENGLISH.name), str(tmp_path / CHINESE.name)]

    check = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", *paths],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 1
    assert "README.md" in check.stderr

    rewrite = subprocess.run(
        [sys.executable, str(GENERATOR), *paths], capture_output=True, text=True, check=False
    )
    assert rewrite.returncode == 0
    assert stale.read_text(encoding="utf-8") == ENGLISH.read_text(encoding="utf-8")


def test_generator_rejects_missing_markers(generator: ModuleType) -> None:
    text = "# Title\n\n<!-- settings-table:start -->\n<!-- settings-table:end -->\n"

    with pytest.raises(generator.MarkerError, match="streams-table"):
        generator.render_readme(text, generator.ENGLISH, [], "README.md")


def test_settings_table_lists_every_tap_setting(generator: ModuleType) -> None:
    text = ENGLISH.read_text(encoding="utf-8")

    for name in generator.tap_setting_names():
        assert f"| `{name}` |" in text, f"setting {name} is missing from README.md"


def test_settings_table_leaves_out_sdk_settings(generator: ModuleType) -> None:
    settings = generator.render_settings(generator.ENGLISH, [])
    rows = [line for line in settings.splitlines() if line.startswith("| `")]

    for name in generator.sdk_setting_names():
        assert not any(row.startswith(f"| `{name}` |") for row in rows), name
        assert f"`{name}`" in settings


def test_streams_table_lists_every_stream(generator: ModuleType) -> None:
    streams = generator.discovered_streams()
    text = CHINESE.read_text(encoding="utf-8")

    for name in streams:
        assert f"| `{name}` |" in text, f"stream {name} is missing from README.zh-CN.md"


def test_chinese_setting_translations_not_stale(generator: ModuleType) -> None:
    warnings: list[str] = []
    generator.render_settings(generator.CHINESE, warnings)
    untranslated = [w for w in warnings if "changed its description" in w]

    assert untranslated == [], "\n".join(untranslated)


def test_readmes_have_same_sections() -> None:
    english = h2_headings(ENGLISH.read_text(encoding="utf-8"))
    chinese = h2_headings(CHINESE.read_text(encoding="utf-8"))

    assert len(english) == len(chinese), (english, chinese)


def test_readmes_name_same_commands() -> None:
    english = commands_in(ENGLISH.read_text(encoding="utf-8"))
    chinese = commands_in(CHINESE.read_text(encoding="utf-8"))

    assert english - chinese == set(), "commands only in README.md"
    assert chinese - english == set(), "commands only in README.zh-CN.md"


@pytest.mark.parametrize("command", KEY_COMMANDS)
@pytest.mark.parametrize("readme", [ENGLISH, CHINESE], ids=["en", "zh-CN"])
def test_readme_names_key_command(readme: Path, command: str) -> None:
    assert command in readme.read_text(encoding="utf-8")


@pytest.mark.parametrize("readme", [ENGLISH, CHINESE], ids=["en", "zh-CN"])
def test_readme_relative_links_exist(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)

    assert "docs/emulator.md" in targets
    assert "docs/benchmarks.md" in targets
    for target in targets:
        if target in PENDING_PAGES and not (REPO_ROOT / target).exists():
            continue
        assert (REPO_ROOT / target).exists(), f"{readme.name} links to missing {target}"


@pytest.mark.parametrize("readme", [ENGLISH, CHINESE], ids=["en", "zh-CN"])
def test_readme_has_no_template_leftovers(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")

    for leftover in ("TODO", "TBD", "FIXME", "lorem", "<your"):
        assert leftover.lower() not in text.lower(), leftover
