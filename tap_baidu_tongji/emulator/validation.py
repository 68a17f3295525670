"""Parameter checks of report/getData, mapped to Baidu's generic OpenAPI error codes.

NOTE: Tongji-specific error codes were never seen in a public source. An unknown method
returns 3 and any other invalid parameter returns 100; both are guesses.
"""

from __future__ import annotations

import datetime as dt

from tap_baidu_tongji.emulator.data import SiteInfo
from tap_baidu_tongji.emulator.results import DataRequest
from tap_baidu_tongji.reports import REPORTS_BY_METHOD, Layout

INVALID_PARAMETER = 100
UNSUPPORTED_METHOD = 3
NO_PERMISSION = 6

# Metrics used when `metrics` is empty: a real source/all/a call without metrics returned
# the first five standard metrics, so every method falls back to its first five.
DEFAULT_METRIC_COUNT = 5


class DataCallError(Exception):
    """A data call rejected with an OpenAPI `error_code`."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def parse_date(value: str, name: str) -> dt.date:
    """Parse `YYYYMMDD`, or leniently `YYYY-MM-DD`, as real clients send both."""
    text = value.strip()
    for pattern in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise DataCallError(INVALID_PARAMETER, f"invalid {name} {value!r}: expected YYYYMMDD")


def parse_count(params: dict[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    if not text.isdigit():
        raise DataCallError(INVALID_PARAMETER, f"invalid {name} {text!r}: expected an integer >= 0")
    return int(text)


def parse_data_request(
    params: dict[str, str],
    sites: dict[int, SiteInfo],
    today: dt.date,
    page_size_default: int,
) -> DataRequest:
    """Validate a getData request in the order: method, site, metrics, dates, filters, paging."""
    method = params.get("method", "")
    report = REPORTS_BY_METHOD.get(method)
    if report is None:
        raise DataCallError(UNSUPPORTED_METHOD, f"unknown method {method!r}")

    site_text = params.get("site_id", "")
    if not site_text.isdigit():
        raise DataCallError(INVALID_PARAMETER, f"invalid site_id {site_text!r}")
    site = sites.get(int(site_text))
    if site is None:
        raise DataCallError(NO_PERMISSION, f"site {site_text} is not owned by this token")

    allowed = set(report.metrics) | set(report.extra_columns)
    requested = [m.strip() for m in params.get("metrics", "").split(",") if m.strip()]
    unknown = [m for m in requested if m not in allowed]
    if unknown:
        raise DataCallError(INVALID_PARAMETER, f"metrics {unknown} not allowed for {method}")
    if len(set(requested)) != len(requested):
        raise DataCallError(INVALID_PARAMETER, f"duplicate metrics in {requested}")
    if not requested and report.layout is not Layout.KEYED_SUBREPORTS:
        requested = list(report.metrics[:DEFAULT_METRIC_COUNT])

    if report.layout is Layout.REALTIME:
        start = end = today
    else:
        if not params.get("start_date") or not params.get("end_date"):
            raise DataCallError(INVALID_PARAMETER, "missing start_date or end_date")
        start = parse_date(params["start_date"], "start_date")
        end = parse_date(params["end_date"], "end_date")
        if start > end:
            raise DataCallError(INVALID_PARAMETER, f"start_date {start} is after end_date {end}")
        # A future end date is clamped to the server's today, as Tongji does in `timeSpan`.
        end = min(end, today)
        if start > end:
            raise DataCallError(INVALID_PARAMETER, f"start_date {start} is after today {today}")

    for item in report.filters:
        value = params.get(item.name)
        if value and item.allowed_values and value not in item.allowed_values:
            raise DataCallError(
                INVALID_PARAMETER,
                f"invalid {item.name} {value!r}: expected one of {item.allowed_values}",
            )

    start_index = parse_count(params, "start_index") or 0
    max_results = parse_count(params, "max_results")
    if max_results is None:
        max_results = page_size_default
    page_size = None if max_results == 0 else max_results

    return DataRequest(
        report=report,
        site=site,
        start=start,
        end=end,
        metrics=requested,
        params=params,
        start_index=start_index,
        max_results=page_size,
        today=today,
    )
