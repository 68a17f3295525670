"""Record schemas and primary keys, built from the report table with `singer_sdk.typing`."""

from __future__ import annotations

from typing import Any

from singer_sdk import typing as th

from tap_baidu_tongji.records import EXTRA_CELL_COLUMN
from tap_baidu_tongji.reports import METRICS, REALTIME_FIELDS, Layout, Report, ValueKind

_TYPES: dict[ValueKind, type[th.JSONTypeHelper[Any]]] = {
    ValueKind.INTEGER: th.IntegerType,
    ValueKind.NUMBER: th.NumberType,
    ValueKind.STRING: th.StringType,
}

SITE_ID = th.Property("site_id", th.IntegerType, required=True, description="Tongji site id.")
DAY = th.Property(
    "date",
    th.DateType,
    required=True,
    description="Beijing (Asia/Shanghai) calendar day the row counts, YYYY-MM-DD.",
)


def metric_property(name: str, report: Report) -> th.Property[Any]:
    """Describe one metric column: its type, its Chinese console label and its unit."""
    metric = METRICS[name]
    description = f"{metric.chinese_name}: {metric.description} Null when the API shows --."
    if name == "pv_ratio" and report.layout is Layout.DAILY_ROWS:
        # NOTE: this is the share of the requested range, as the emulator plays it. No real
        # response showed whether Baidu computes a daily row's pv_ratio over range or day.
        description += (
            " Here the day's share of all page views in the range one request read, so the"
            " same day can show another value after a run with a different window."
        )
    return th.Property(name, _TYPES[metric.kind], description=description)


def primary_keys(report: Report) -> list[str]:
    """Return the record key: site, day and the dimension's identity, never null."""
    if report.layout is Layout.DAILY_ROWS:
        return ["site_id", "date", "hour"] if report.gran == "hour" else ["site_id", "date"]
    if report.layout is Layout.KEYED_SUBREPORTS:
        return ["site_id", "date", "sub_report", "name"]
    if report.layout is Layout.REALTIME:
        return ["site_id", "visitor_id", "start_time"]
    return ["site_id", "date", "name"]


def _dimension_properties(report: Report) -> list[th.Property[Any]]:
    label = report.dimension_field or "dimension"
    properties = [
        th.Property(
            "name",
            th.StringType,
            required=True,
            description=f"Dimension value (the `name` of the API's {label} cell).",
        ),
    ]
    properties.extend(
        th.Property(
            key.column, th.StringType, description=f"{key.description} (API key {key.api_key})."
        )
        for key in report.cell_keys
    )
    properties.append(
        th.Property(
            EXTRA_CELL_COLUMN,
            th.ObjectType(additional_properties=True),
            description="Keys of the dimension cell that have no column of their own.",
        ),
    )
    return properties


def _period_properties(report: Report) -> list[th.Property[Any]]:
    if report.gran == "hour":
        return [
            th.Property(
                "hour",
                th.IntegerType,
                required=True,
                description="Hour of the Beijing day, 0 to 23 (the row counts HH:00 to HH:59).",
            )
        ]
    if report.gran in ("week", "month"):
        return [
            th.Property(
                "period_end",
                th.DateType,
                description=(
                    f"Last day of the {report.gran} that starts on `date`; earlier than the "
                    f"{report.gran}'s end while the {report.gran} is still running."
                ),
            )
        ]
    return []


def _common_track_properties() -> list[th.Property[Any]]:
    return [
        th.Property(
            "sub_report",
            th.StringType,
            required=True,
            allowed_values=[
                "source_site",
                "search_word",
                "landing_page",
                "visit_page",
                "visitor_type",
            ],
            description=(
                "Overview block: source_site 来源网站, search_word 搜索词, landing_page 入口页面, "
                "visit_page 受访页面, visitor_type 新老访客."
            ),
        ),
        th.Property(
            "name",
            th.StringType,
            required=True,
            description="Row name: a site, word or page, or new_visitor / old_visitor.",
        ),
    ]


def _realtime_properties() -> list[th.Property[Any]]:
    def describe(api_field: str) -> str:
        return f"{REALTIME_FIELDS[api_field]} (API field {api_field})"

    return [
        th.Property(
            "start_time", th.DateTimeType, required=True, description=describe("start_time")
        ),
        th.Property("visitor_id", th.StringType, required=True, description=describe("visitorId")),
        th.Property("area", th.StringType, description=describe("area")),
        th.Property(
            "source",
            th.ObjectType(
                th.Property("fromType", th.StringType),
                th.Property("url", th.StringType),
                th.Property("tip", th.StringType),
                additional_properties=True,
            ),
            description=describe("source"),
        ),
        th.Property("access_page", th.StringType, description=describe("access_page")),
        th.Property("keyword", th.StringType, description=describe("keyword")),
        th.Property("searchword", th.StringType, description=describe("searchword")),
        # NOTE: the value format of is_ad was never seen in a real response; kept as text.
        th.Property("is_ad", th.StringType, description=describe("is_ad")),
        th.Property("ip", th.StringType, description=describe("ip")),
        th.Property("visit_time", th.NumberType, description=describe("visit_time")),
        th.Property(
            "visit_in_progress",
            th.BooleanType,
            description="True while the visit is still going on (visit_time shows 正在访问).",
        ),
        th.Property("visit_pages", th.IntegerType, description=describe("visit_pages")),
        th.Property(
            "detail",
            th.ObjectType(additional_properties=True),
            description="Visit detail: browser, os, paths with time on each page, visitor type.",
        ),
    ]


def report_schema(report: Report) -> dict[str, Any]:
    """Build the JSON schema of one report stream's records."""
    properties: list[th.Property[Any]] = [SITE_ID]
    if report.layout is Layout.REALTIME:
        properties.extend(_realtime_properties())
    else:
        properties.append(DAY)
        if report.layout is Layout.DAILY_ROWS:
            properties.extend(_period_properties(report))
        if report.layout is Layout.DIMENSION:
            properties.extend(_dimension_properties(report))
        elif report.layout is Layout.KEYED_SUBREPORTS:
            properties.extend(_common_track_properties())
        properties.extend(metric_property(name, report) for name in report.columns)

    schema = th.PropertiesList(*properties).to_dict()
    schema["description"] = f"{report.chinese_name} ({report.method}): {report.description}"
    return schema


SUB_DIRECTORY = th.ObjectType(
    th.Property("sub_dir_id", th.IntegerType),
    th.Property("name", th.StringType),
    th.Property("status", th.IntegerType),
    th.Property("create_time", th.DateTimeType),
    th.Property("sub_dir_list", th.ArrayType(th.ObjectType(additional_properties=True))),
    additional_properties=True,
)

SITES_SCHEMA = th.PropertiesList(
    th.Property("site_id", th.IntegerType, required=True, description="Tongji site id (应用 ID)."),
    th.Property("domain", th.StringType, description="Site domain, possibly with a path."),
    th.Property("status", th.IntegerType, description="0 正常 (active), 1 暂停 (paused)."),
    th.Property(
        "create_time", th.DateTimeType, description="When the site was added, Beijing time."
    ),
    th.Property(
        "sub_dir_list",
        th.ArrayType(SUB_DIRECTORY),
        description="Sub-directories (子目录) tracked as their own reports.",
    ),
).to_dict()
SITES_SCHEMA["description"] = "站点列表 (config/getSiteList): the sites of the Baidu account."
