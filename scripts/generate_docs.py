"""Regenerate the settings, streams and metrics tables of README.md and README.zh-CN.md.

Each table sits between two marker comments, for example `<!-- settings-table:start -->`
and `<!-- settings-table:end -->`; text outside the markers is never touched. The sources:

- settings: `tap-baidu-tongji --about --format=json`, so a setting added to the tap's
  CONFIG_SCHEMA appears after one rerun. The settings the Singer SDK adds to every tap are
  only named below the table;
- streams: the tap's discovered streams (primary keys, replication key, default selection)
  and the report table in `tap_baidu_tongji/reports.py` (method, Chinese report name, metrics);
- metrics: the report table's METRICS.

Usage, from the repository root:

    .venv/bin/python scripts/generate_docs.py           rewrite the tables in place
    .venv/bin/python scripts/generate_docs.py --check   exit 1 when a table is out of date

The Chinese README takes setting descriptions from SETTING_DESCRIPTIONS_ZH below. A setting
without one, or whose English description changed since it was translated, shows the
English text and the script prints a warning, so a rerun never fails for a missing
translation.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
README_PATHS = (REPO_ROOT / "README.md", REPO_ROOT / "README.zh-CN.md")

ENGLISH = "en"
CHINESE = "zh"

# Import the package from this checkout even when the script runs with another interpreter.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tap_baidu_tongji.reports import (  # noqa: E402
    METRICS,
    PAID_EDITION,
    PROMOTION_ACCOUNT,
    REPORTS,
    Layout,
    Report,
)
from tap_baidu_tongji.settings import check_settings  # noqa: E402

SETTING_DESCRIPTIONS_ZH: dict[str, tuple[str, str]] = {
    # name: (English description it translates, Chinese description)
    "client_id": (
        "API Key from Tongji 管理 → 数据导出服务 (Baidu OAuth client_id).",
        "百度统计“管理 → 数据导出服务”页面上的 API Key（即百度 OAuth 的 client_id）。",
    ),
    "client_secret": (
        "Secret Key from Tongji 管理 → 数据导出服务 (Baidu OAuth client_secret).",
        "同一页面上的 Secret Key（即 client_secret）。",
    ),
    "refresh_token": (
        "Refresh token that starts the token chain. Optional once tap-baidu-tongji-auth "
        "has written the token store. Setting a new one starts the chain over.",
        "令牌链的起点刷新令牌。tap-baidu-tongji-auth 写好令牌存储文件后可以不设。"
        "设置一个新值会让令牌链从该值重新开始。",
    ),
    "access_token": (
        "Optional current access token, used until the API rejects it.",
        "可选的当前访问令牌，一直使用到接口拒绝它为止。",
    ),
    "token_store_path": (
        "JSON file that keeps the latest token pair between runs (mode 0600). Baidu "
        "refresh tokens are single-use, so this file must persist between runs.",
        "在两次运行之间保存最新令牌对的 JSON 文件（权限 0600）。百度的刷新令牌只能用一次，"
        "所以这个文件必须在两次运行之间保留。",
    ),
    "token_store_url": (
        "PostgreSQL token store shared by every process that uses this API Key, such as "
        "postgresql://tap@db.example.com:5432/etl?table=tap_baidu_tongji_tokens (one row per "
        "client_id). When set, token_store_path is not used. Needs tap-baidu-tongji[postgres].",
        "存放令牌的 PostgreSQL 表，供使用同一 API Key 的所有进程共用，例如 "
        "postgresql://tap@db.example.com:5432/etl?table=tap_baidu_tongji_tokens"
        "（每个 client_id 一行）。设置后不再使用 token_store_path。"
        "需要安装 tap-baidu-tongji[postgres]。",
    ),
    "token_store_password": (
        "Password for token_store_url. Default: libpq's PGPASSWORD or ~/.pgpass, or a "
        "password in the URL.",
        "token_store_url 的密码。默认使用 libpq 的 PGPASSWORD 或 ~/.pgpass，或 URL 中的密码。",
    ),
    "shard_count": (
        "Number of tap processes that split the sites between them. Set it with "
        "shard_index; each site goes to the shard sha256(site id) mod shard_count.",
        "分摊站点的 tap 进程数，与 shard_index 一起设置；"
        "每个站点归入编号为 sha256(站点 ID) mod shard_count 的分片。",
    ),
    "shard_index": (
        "This process's shard, from 0 to shard_count - 1. Set it with shard_count.",
        "本进程负责的分片编号，取值 0 到 shard_count - 1，与 shard_count 一起设置。",
    ),
    "custom_reports": (
        "Extra streams, each a report/getData method with its own metrics and filters "
        "(gran, source, clientDevice, visitor, area, viewType, domainType, flag), read "
        "incrementally like the built-in reports.",
        "自定义报告：每一项是一个 report/getData 方法，配上自己的指标和筛选条件"
        "（gran、source、clientDevice、visitor、area、viewType、domainType、flag），"
        "生成一个独立的流，和内置报告一样按天增量同步。",
    ),
    "max_requests_per_second": (
        "Request budget shared by all streams, in requests per second. Baidu does not "
        "publish the limit; error 4 or HTTP 429 halves the rate for the rest of the run.",
        "所有流共用的请求速率上限，单位为每秒请求数。百度没有公布限额；"
        "遇到错误 4 或 HTTP 429 后，本次运行余下的时间速率减半。",
    ),
    "max_concurrent_requests": (
        "Requests in flight at once. Days of one site and report are fetched ahead in "
        "parallel and still emitted in date order; 1 reads one request at a time.",
        "同时进行的请求数。同一站点同一报告的多天数据并行预取，但仍按日期顺序输出；"
        "设为 1 时逐个请求。",
    ),
    "token_refresh_margin_hours": (
        "Refresh the access token when it expires within this many hours.",
        "访问令牌在这么多小时内到期时就刷新。",
    ),
    "site_ids": (
        "Site ids to read (integers as config/getSiteList returns them; numeric strings "
        "accepted). Default: every site of the account.",
        "要读取的站点 ID（config/getSiteList 返回的整数，也接受数字字符串）。"
        "默认读取账号下的全部站点。",
    ),
    "start_date": (
        "First day to read, YYYY-MM-DD (Beijing time). Default: 30 days before today.",
        "读取的第一天，格式 YYYY-MM-DD（北京时间）。默认为今天往前 30 天。",
    ),
    "end_date": (
        "Last day to read, YYYY-MM-DD. Default: yesterday (see include_today).",
        "读取的最后一天，格式 YYYY-MM-DD。默认为昨天（见 include_today）。",
    ),
    "include_today": (
        "Also read today (Asia/Shanghai). Off by default because today's numbers are "
        "partial; later runs re-read it through lookback_days.",
        "同时读取今天（北京时间）。默认关闭，因为今天的数据还不完整；"
        "之后的运行会通过 lookback_days 重新读取这一天。",
    ),
    "lookback_days": (
        "Days before each bookmark that every run reads again, because Tongji revises recent days.",
        "每次运行从书签往前重新读取的天数，因为百度统计会修正最近几天的数据。",
    ),
    "page_size": (
        "Rows requested per page (max_results) for paged reports.",
        "分页报告每页请求的行数（max_results）。",
    ),
    "api_url": (
        "Base URL of both /oauth/2.0/token and /rest/2.0/tongji/...; point it at the "
        "bundled emulator for tests and the demo.",
        "/oauth/2.0/token 与 /rest/2.0/tongji/... 的基础地址；测试和演示时指向自带的模拟器。",
    ),
    "request_timeout_seconds": (
        "Timeout of one HTTP request, in seconds.",
        "单个 HTTP 请求的超时时间，单位为秒。",
    ),
    "retry_max_tries": (
        "Attempts per request before a transient error fails the run.",
        "临时错误导致运行失败之前，每个请求最多尝试的次数。",
    ),
    "retry_initial_wait_seconds": (
        "Wait before the first retry, in seconds; doubles on each further retry.",
        "第一次重试前的等待时间，单位为秒；之后每次重试翻倍。",
    ),
}

ACCOUNT_REQUIREMENTS_ZH = {
    PROMOTION_ACCOUNT: "百度商业推广账号",
    PAID_EDITION: "带“指定广告跟踪”功能的百度统计版本（免费版已移除该功能）",
}

# Chinese unit notes, recognised by the wording of the English metric descriptions.
METRIC_UNITS_ZH = (
    ("in percent", "百分数，17.92 表示 17.92%"),
    ("in seconds", "秒"),
    ("in yuan", "元"),
    ("(count)", "计数"),
)

SITES_METHOD = "config/getSiteList"
SITES_CHINESE_NAME = "站点列表"
SITES_DESCRIPTION = "The sites of the account; the parent of every report stream."

HEADERS: dict[str, dict[str, tuple[str, ...]]] = {
    "settings": {
        ENGLISH: ("Setting", "Type", "Required", "Default", "Description"),
        CHINESE: ("设置项", "类型", "必填", "默认值", "说明"),
    },
    "streams": {
        ENGLISH: (
            "Stream",
            "Method",
            "Tongji report",
            "Primary key",
            "Replication key",
            "Selected by default",
            "Metrics",
        ),
        CHINESE: ("流", "接口方法", "百度统计报告", "主键", "增量字段", "默认选中", "指标"),
    },
    "metrics": {
        ENGLISH: ("Metric", "Console name", "Type", "Meaning"),
        CHINESE: ("指标", "控制台名称", "类型", "单位"),
    },
}

WORDS: dict[str, dict[str, str]] = {
    "yes": {ENGLISH: "yes", CHINESE: "是"},
    "no": {ENGLISH: "no", CHINESE: "否"},
    "needs": {ENGLISH: "no, needs {}", CHINESE: "否，需要{}"},
    "none": {ENGLISH: "none", CHINESE: "无"},
    "sdk_settings": {
        ENGLISH: (
            "The Singer SDK adds these settings to every tap built with it: {}. See "
            "`tap-baidu-tongji --about` for their descriptions."
        ),
        CHINESE: (
            "Singer SDK 为基于它的每个 tap 都加上了这些设置：{}。"
            "说明见 `tap-baidu-tongji --about`。"
        ),
    },
}

MARKER_PATTERN = r"(<!-- {name}:start -->\n)(.*?)(<!-- {name}:end -->)"


class MarkerError(ValueError):
    """A README lacks a marker pair, or has it more than once."""


@cache
def about_info() -> dict[str, Any]:
    """Return the tap's `--about --format=json` output, run once per process."""
    completed = subprocess.run(
        [sys.executable, "-m", "tap_baidu_tongji", "--about", "--format=json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        message = (
            f"tap-baidu-tongji --about --format=json failed with exit status "
            f"{completed.returncode}:\n{completed.stderr}"
        )
        raise RuntimeError(message)
    info: dict[str, Any] = json.loads(completed.stdout)
    return info


def sdk_setting_names() -> set[str]:
    """Return the names of the settings that the Singer SDK adds to the tap's own.

    The tap's CONFIG_SCHEMA cannot tell them apart: the SDK adds them to that very dict
    when a tap is instantiated. So they are added here to an empty schema instead.
    """
    from tap_baidu_tongji.tap import TapBaiduTongji

    schema: dict[str, Any] = {"type": "object", "properties": {}}
    TapBaiduTongji.append_builtin_config(schema)
    return set(schema["properties"])


def tap_setting_names() -> list[str]:
    """Return the names of the tap's own settings, in `--about` order."""
    builtin = sdk_setting_names()
    return [name for name in about_info()["settings"]["properties"] if name not in builtin]


def runtime_required_settings() -> set[str]:
    """Return the settings the tap rejects as missing when the configuration is empty.

    The JSON schema marks no setting as required, so that discovery works without one, but
    the tap's own checks stop a sync without client_id and client_secret.
    """
    required = set()
    for message in check_settings({}):
        match = re.match(r"Missing (\w+)", message)
        if match:
            required.add(match.group(1))
    return required


def escape_cell(text: str) -> str:
    """Make text safe for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def code(text: str) -> str:
    """Format text as inline code."""
    return f"`{text}`"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Render a Markdown table."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines.extend("| " + " | ".join(escape_cell(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines) + "\n"


def json_type(schema: Mapping[str, Any]) -> str:
    """Describe a setting's JSON schema type: its type without null, plus a date format."""
    types = schema.get("type", [])
    if isinstance(types, str):
        types = [types]
    names = [name for name in types if name != "null"] or ["any"]
    text = " or ".join(names)
    if schema.get("format") == "date":
        text = "date"
    return text


def format_default(value: Any) -> str:
    """Render a default value as inline code, or an empty cell when there is none."""
    if value is None:
        return ""
    if isinstance(value, str):
        return code(value)
    return code(json.dumps(value))


def chinese_setting_description(name: str, english: str, warnings: list[str]) -> str:
    """Return the Chinese description of a setting, or the English one with a warning."""
    translation = SETTING_DESCRIPTIONS_ZH.get(name)
    if translation is not None and translation[0] == english:
        return translation[1]
    problem = "has no Chinese description" if translation is None else "changed its description"
    warnings.append(
        f"setting {name} {problem}, so README.zh-CN.md shows the English text. Add the "
        "English and Chinese text to SETTING_DESCRIPTIONS_ZH in scripts/generate_docs.py."
    )
    return english


def render_settings(language: str, warnings: list[str]) -> str:
    """Render the settings table and the list of SDK settings."""
    properties = about_info()["settings"]["properties"]
    schema_required = set(about_info()["settings"].get("required", []))
    required = schema_required | runtime_required_settings()
    own = [name for name in tap_setting_names() if name in properties]
    sdk = [name for name in properties if name not in own]

    rows = []
    for name in own:
        setting = properties[name]
        description = setting.get("description", "")
        if language == CHINESE:
            description = chinese_setting_description(name, description, warnings)
        rows.append(
            (
                code(name),
                json_type(setting),
                WORDS["yes" if name in required else "no"][language],
                format_default(setting.get("default")),
                description,
            )
        )
    text = table(HEADERS["settings"][language], rows)
    if sdk:
        listing = ", ".join(code(name) for name in sdk)
        text += "\n" + WORDS["sdk_settings"][language].format(listing) + "\n"
    return text


def selection_text(report: Report | None, selected: bool, language: str) -> str:
    """Say whether a stream is selected by default, and what a deselected one needs."""
    if selected:
        return WORDS["yes"][language]
    if report is None or not report.account_requirement:
        return WORDS["no"][language]
    requirement = report.account_requirement
    if language == CHINESE:
        requirement = ACCOUNT_REQUIREMENTS_ZH.get(requirement, requirement)
    return WORDS["needs"][language].format(requirement)


def metric_columns(report: Report, schema: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    """Return the metric columns of a report stream.

    The real-time report has visit fields instead of metrics, under the names its schema
    gives them, so its columns come from the schema.
    """
    if report.layout is Layout.REALTIME:
        return [name for name in schema["properties"] if name not in keys]
    return list(report.columns)


@cache
def discovered_streams() -> dict[str, Any]:
    """Return the tap's streams, discovered offline with an empty configuration."""
    from tap_baidu_tongji.tap import TapBaiduTongji

    tap = TapBaiduTongji(config={}, validate_config=False)
    return dict(tap.streams)


def render_streams(language: str, warnings: list[str]) -> str:
    """Render the streams table: the site list first, then the reports in table order."""
    streams = discovered_streams()
    reports = {report.stream_name: report for report in REPORTS}
    order = ["sites", *reports]
    order += sorted(name for name in streams if name not in order)

    rows = []
    for name in order:
        stream = streams.get(name)
        if stream is None:
            warnings.append(f"stream {name} is in the report table, but the tap does not build it.")
            continue
        report = reports.get(name)
        keys = list(stream.primary_keys or [])
        if report is None:
            method = SITES_METHOD if name == "sites" else ""
            chinese = SITES_CHINESE_NAME if name == "sites" else ""
            english = SITES_DESCRIPTION if name == "sites" else ""
            metrics: list[str] = []
        else:
            method = report.method
            chinese = report.chinese_name
            english = report.description
            metrics = metric_columns(report, stream.schema, keys)
        title = chinese if language == CHINESE else f"{chinese}: {english}"
        rows.append(
            (
                code(name),
                code(method) if method else "",
                title,
                ", ".join(code(key) for key in keys),
                code(stream.replication_key) if stream.replication_key else WORDS["none"][language],
                selection_text(report, bool(stream.selected_by_default), language),
                ", ".join(code(metric) for metric in metrics),
            )
        )
    return table(HEADERS["streams"][language], rows)


def metric_unit_zh(description: str) -> str:
    """Return the Chinese unit note for a metric description, or "" when none applies."""
    for english, chinese in METRIC_UNITS_ZH:
        if english in description:
            return chinese
    return ""


def render_metrics(language: str, warnings: list[str]) -> str:
    """Render the metric glossary: API name, console name, JSON type and meaning or unit."""
    rows = []
    for metric in METRICS.values():
        meaning = metric_unit_zh(metric.description) if language == CHINESE else metric.description
        rows.append((code(metric.name), metric.chinese_name, metric.kind.value, meaning))
    return table(HEADERS["metrics"][language], rows)


BLOCKS: dict[str, Callable[[str, list[str]], str]] = {
    "settings-table": render_settings,
    "streams-table": render_streams,
    "metrics-table": render_metrics,
}


def language_of(path: Path) -> str:
    """Return the README's language: Chinese for README.zh-CN.md, else English."""
    return CHINESE if path.name.endswith(".zh-CN.md") else ENGLISH


def render_readme(text: str, language: str, warnings: list[str], source: str = "README") -> str:
    """Return `text` with every marked table replaced by its generated content.

    Raises:
        MarkerError: a marker pair is missing or appears more than once.
    """
    for name, render in BLOCKS.items():
        pattern = re.compile(MARKER_PATTERN.format(name=name), re.DOTALL)
        matches = pattern.findall(text)
        if len(matches) != 1:
            message = (
                f"{source} has {len(matches)} `<!-- {name}:start -->` ... "
                f"`<!-- {name}:end -->` pairs; expected exactly one. Add the two marker "
                "lines where the table belongs."
            )
            raise MarkerError(message)
        content = render(language, warnings)
        match = pattern.search(text)
        assert match is not None  # findall found exactly one
        text = text[: match.start(2)] + content + text[match.end(2) :]
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite or check the READMEs; return 1 when --check finds an outdated table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a README differs from the generated tables",
    )
    parser.add_argument(
        "readmes",
        nargs="*",
        type=Path,
        default=list(README_PATHS),
        help="README files to process (default: README.md and README.zh-CN.md)",
    )
    args = parser.parse_args(argv)

    warnings: list[str] = []
    outdated = []
    for path in args.readmes:
        try:
            old = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            print(f"Error: {path} not found.", file=sys.stderr)
            return 2
        try:
            new = render_readme(old, language_of(path), warnings, source=str(path))
        except MarkerError as error:
            print(f"Error: {error}", file=sys.stderr)
            return 2
        if new == old:
            continue
        outdated.append(path)
        if not args.check:
            path.write_text(new, encoding="utf-8")
            print(f"Updated {path}.")

    for warning in dict.fromkeys(warnings):
        print(f"Warning: {warning}", file=sys.stderr)

    if args.check and outdated:
        names = ", ".join(str(path) for path in outdated)
        print(
            f"Outdated generated tables in {names}. Run `.venv/bin/python "
            "scripts/generate_docs.py` and commit the result.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
