"""User-defined report streams: a method of the report table with chosen metrics and filters.

Every entry is checked offline against the report table before any request, and a wrong
method, metric, filter or value is reported with the values that are allowed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from singer_sdk import typing as th

from tap_baidu_tongji.reports import (
    REPORTS_BY_METHOD,
    REPORTS_BY_STREAM,
    Layout,
    Report,
)

FILTER_NAMES = (
    "gran",
    "source",
    "clientDevice",
    "visitor",
    "area",
    "viewType",
    "domainType",
    "flag",
)
STREAM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RESERVED_NAMES = frozenset({"sites", *REPORTS_BY_STREAM})

CUSTOM_REPORT_SCHEMA = th.ObjectType(
    th.Property(
        "name",
        th.StringType,
        required=True,
        description="Stream name: lower-case letters, digits and underscores.",
    ),
    th.Property(
        "method",
        th.StringType,
        required=True,
        description="report/getData method, for example visit/district/a.",
    ),
    th.Property(
        "metrics",
        th.ArrayType(th.StringType),
        description="Metrics to read. Default: every metric of the method.",
    ),
    *(
        th.Property(name, th.StringType, description=f"Optional {name} parameter.")
        for name in FILTER_NAMES
    ),
    additional_properties=False,
)


def _entry_label(index: int, entry: Mapping[str, Any]) -> str:
    name = entry.get("name")
    return f"custom_reports[{index}]" + (f" ({name})" if name else "")


def _check_method(label: str, entry: Mapping[str, Any]) -> tuple[Report | None, list[str]]:
    method = entry.get("method")
    report = REPORTS_BY_METHOD.get(str(method))
    if report is None:
        allowed = ", ".join(sorted(REPORTS_BY_METHOD))
        return None, [f"Invalid {label} method {method!r}: use one of {allowed}."]
    if report.layout is Layout.REALTIME:
        return None, [
            f"Invalid {label} method {method!r}: real-time visits have no date filters; use "
            "the trend_latest stream."
        ]
    return report, []


def _check_name(label: str, entry: Mapping[str, Any], seen: set[str]) -> list[str]:
    name = str(entry.get("name") or "")
    if not name:
        return [f"Missing {label} name: give the stream a name such as district_mobile."]
    if not STREAM_NAME.match(name):
        return [
            f"Invalid {label} name {name!r}: use lower-case letters, digits and underscores, "
            "starting with a letter, for example district_mobile."
        ]
    if name in RESERVED_NAMES or name in seen:
        return [f"Invalid {label} name {name!r}: a stream of that name exists; choose another."]
    seen.add(name)
    return []


def _check_metrics(label: str, entry: Mapping[str, Any], report: Report) -> list[str]:
    metrics = entry.get("metrics")
    if metrics is None:
        return []
    allowed = report.metrics
    if not isinstance(metrics, list) or not metrics:
        return [f"Invalid {label} metrics {metrics!r}: give a list such as [{allowed[0]!r}]."]
    unknown = [metric for metric in metrics if metric not in allowed]
    if unknown:
        return [
            f"Invalid {label} metrics {', '.join(map(repr, unknown))} for {report.method}: "
            f"use any of {', '.join(allowed)}."
        ]
    return []


def _check_filters(label: str, entry: Mapping[str, Any], report: Report) -> list[str]:
    errors = []
    allowed_filters = {flt.name: flt for flt in report.filters}
    for name in FILTER_NAMES:
        if entry.get(name) is None:
            continue
        value = str(entry[name])
        flt = allowed_filters.get(name)
        if flt is None:
            names = ", ".join(allowed_filters) or "none"
            errors.append(
                f"Invalid {label} filter {name} for {report.method}: the method accepts {names}."
            )
        elif flt.allowed_values and value not in flt.allowed_values:
            errors.append(
                f"Invalid {label} {name} {value!r}: use one of {', '.join(flt.allowed_values)}."
            )
    unknown_keys = sorted(set(entry) - {"name", "method", "metrics", *FILTER_NAMES})
    if unknown_keys:
        errors.append(
            f"Invalid {label} key {', '.join(unknown_keys)}: use name, method, metrics and the "
            f"filters {', '.join(FILTER_NAMES)}."
        )
    return errors


def check_custom_reports(value: Any) -> list[str]:
    """Return one line per invalid custom report entry, naming the entry, value and fix."""
    if value is None:
        return []
    if not isinstance(value, list):
        return ["Invalid custom_reports: give a list of objects with name and method."]
    errors: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(value):
        label = _entry_label(index, entry if isinstance(entry, Mapping) else {})
        if not isinstance(entry, Mapping):
            errors.append(f"Invalid {label}: give an object with name and method.")
            continue
        errors.extend(_check_name(label, entry, seen))
        report, method_errors = _check_method(label, entry)
        errors.extend(method_errors)
        if report is not None:
            errors.extend(_check_metrics(label, entry, report))
            errors.extend(_check_filters(label, entry, report))
    return errors


def build_custom_reports(value: Any) -> list[Report]:
    """Turn valid `custom_reports` entries into report table entries of their own.

    Entries that fail `check_custom_reports` are skipped here, because discovery runs
    without validating settings; a sync validates them first and stops.
    """
    if not isinstance(value, list) or check_custom_reports(value):
        return []
    reports = []
    for entry in value:
        base = REPORTS_BY_METHOD[entry["method"]]
        metrics = tuple(entry.get("metrics") or base.metrics)
        params = dict(base.fixed_params)
        params.update({name: str(entry[name]) for name in FILTER_NAMES if entry.get(name)})
        reports.append(
            dataclasses.replace(
                base,
                stream_name=entry["name"],
                metrics=metrics,
                extra_columns=tuple(c for c in base.extra_columns if c not in metrics),
                fixed_params=tuple(sorted(params.items())),
                description=f"Custom report on {base.method}: {base.description}",
            )
        )
    return reports
