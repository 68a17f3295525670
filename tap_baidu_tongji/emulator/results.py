"""Build the `result` object of report/getData for every layout of the report table.

Metric values are derived from the additive quantities of `data.py`. A value that has no
meaning (a ratio over zero visits, a day without traffic) is the string `"--"`, as Tongji
sends it, and some counts are sent as numeric strings, so clients meet every value form.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tap_baidu_tongji.emulator import data
from tap_baidu_tongji.emulator.data import Member, Quantities, SiteInfo
from tap_baidu_tongji.emulator.faults import FaultPlan
from tap_baidu_tongji.reports import (
    COMMON_TRACK_SUBREPORTS,
    COMMON_TRACK_VISITOR_TYPES,
    METRICS,
    Layout,
    Report,
    ValueKind,
)

EMPTY = "--"

# Metrics whose zero Tongji shows as "--" (nothing converted, no money recorded).
DASH_WHEN_ZERO = frozenset(
    {"trans_count", "trans_ratio", "avg_trans_cost", "income", "profit", "roi"}
)

# Parameters that choose another catalogue or bucket size instead of narrowing the traffic.
NON_SCALING_FILTERS = frozenset({"gran", "viewType", "flag"})

# Dimension field of each overview/getCommonTrackRpt row-list sub-report, and the catalogue
# its rows come from.
COMMON_TRACK_FIELDS: dict[str, tuple[str, str, dict[str, str]]] = {
    "sourceSite": ("simple_link_title", "source/all/a", {"viewType": "site"}),
    "visitPage": ("simple_visitpage_title", "visit/toppage/a", {}),
    "landingPage": ("simple_landingpage_title", "visit/landingpage/a", {}),
    "word": ("simple_searchword_title", "source/searchword/a", {}),
}
COMMON_TRACK_TOP_ROWS = 10

# Sub-reports whose pv_count cells are numeric strings, as in the one real sample.
COMMON_TRACK_STRING_COUNTS = frozenset({"visitPage", "landingPage"})


@dataclass
class DataRequest:
    """A validated report/getData request."""

    report: Report
    site: SiteInfo
    start: dt.date
    end: dt.date
    metrics: list[str]
    params: dict[str, str]
    start_index: int
    max_results: int | None
    """Rows per page; None returns every row."""
    today: dt.date


# --- Metric values -----------------------------------------------------------------------


def _ratio(numerator: float, denominator: float, scale: float = 100.0) -> float | None:
    if not denominator:
        return None
    return round(numerator * scale / denominator, 2)


def _average(numerator: float, denominator: float) -> int | None:
    if not denominator:
        return None
    return int(numerator // denominator)


MetricFormula = Callable[[Quantities, int], "int | float | None"]

FORMULAS: dict[str, MetricFormula] = {
    "pv_count": lambda q, t: q["pv"],
    "pv_ratio": lambda q, t: _ratio(q["pv"], t),
    "visit_count": lambda q, t: q["visits"],
    "visitor_count": lambda q, t: q["visitors"],
    "new_visitor_count": lambda q, t: q["new_visitors"],
    "new_visitor_ratio": lambda q, t: _ratio(q["new_visitors"], q["visitors"]),
    "ip_count": lambda q, t: q["ips"],
    "bounce_ratio": lambda q, t: _ratio(q["bounces"], q["visits"]),
    "avg_visit_time": lambda q, t: _average(q["visit_seconds"], q["visits"]),
    "avg_visit_pages": lambda q, t: _ratio(q["pv"], q["visits"], 1.0),
    "trans_count": lambda q, t: q["conversions"],
    "trans_ratio": lambda q, t: _ratio(q["conversions"], q["visits"]),
    "avg_trans_cost": lambda q, t: _ratio(q["cost_fen"], q["conversions"], 0.01),
    "income": lambda q, t: round(q["income_fen"] / 100, 2),
    "profit": lambda q, t: round((q["income_fen"] - q["cost_fen"]) / 100, 2),
    "roi": lambda q, t: _ratio(q["income_fen"] - q["cost_fen"], q["cost_fen"]),
    "visit1_count": lambda q, t: q["entries"],
    "outward_count": lambda q, t: q["outward"],
    "exit_count": lambda q, t: q["exits"],
    "exit_ratio": lambda q, t: _ratio(q["exits"], q["pv"]),
    "average_stay_time": lambda q, t: _average(q["stay_seconds"], q["pv"]),
    "out_pv_count": lambda q, t: q["out_pv"],
    "show_count": lambda q, t: q["shows"],
    "clk_count": lambda q, t: q["clicks"],
    "cost_count": lambda q, t: round(q["cost_fen"] / 100, 2),
    "ctr": lambda q, t: _ratio(q["clicks"], q["shows"]),
    "cpm": lambda q, t: _ratio(q["cost_fen"], q["shows"], 10.0),
    "in_visit_count": lambda q, t: q["ad_visits"],
    "arrival_ratio": lambda q, t: _ratio(q["ad_visits"], q["clicks"]),
    "ratio": lambda q, t: _ratio(q["pv"], t),
}


def metric_value(metric: str, quantities: Quantities | None, pv_total: int) -> object:
    """Return a metric as Tongji sends it: a number, or `"--"` when it has no value.

    `pv_total` is the page views of the whole result, the base of `pv_ratio` and `ratio`.
    """
    if quantities is None or quantities["pv"] == 0:
        return EMPTY
    value = FORMULAS[metric](quantities, pv_total)
    if value is None or (metric in DASH_WHEN_ZERO and value == 0):
        return EMPTY
    if isinstance(value, float) and value.is_integer() and METRICS[metric].kind is ValueKind.NUMBER:
        # Tongji drops ".0" from whole ratios (`"ratio":2`).
        return int(value)
    return value


def present(value: object, *seed: object) -> object:
    """Send about one number in twelve as a numeric string, fixed by `seed`."""
    if isinstance(value, int | float) and data.stable_fraction("string", *seed) < 1 / 12:
        return str(value)
    return value


def metric_row(
    metrics: Sequence[str], quantities: Quantities | None, pv_total: int, *seed: object
) -> list[object]:
    return [present(metric_value(m, quantities, pv_total), *seed, m) for m in metrics]


def sum_row(metrics: Sequence[str], rows: Sequence[Quantities | None]) -> list[object]:
    """Totals row: counts summed, ratios and averages computed over all rows together."""
    present_rows = [q for q in rows if q is not None]
    total = data.sum_quantities(present_rows)
    return [metric_value(m, total if present_rows else None, total["pv"]) for m in metrics]


# --- Shared helpers ----------------------------------------------------------------------


def time_span(start: dt.date, end: dt.date) -> list[str]:
    if start == end:
        return [start.strftime("%Y/%m/%d")]
    return [f"{start:%Y/%m/%d} - {end:%Y/%m/%d}"]


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def response_fields(request: DataRequest, faults: FaultPlan) -> list[str]:
    """Metric names in the order the server lists them: requested, then unrequested extras."""
    names = list(request.metrics)
    names += [c for c in request.report.extra_columns if c not in names]
    if faults.shuffle_metrics and len(names) > 1:
        names = names[1:] + names[:1]
        names.reverse()
    return names


def filter_factor(report: Report, params: dict[str, str]) -> float:
    """Fixed share of traffic that the filter parameters keep, so filtered data is smaller."""
    factor = 1.0
    for item in report.filters:
        value = params.get(item.name)
        if value and item.name not in NON_SCALING_FILTERS:
            factor *= 0.15 + 0.7 * data.stable_fraction("filter", item.name, value)
    return factor


def page_bounds(total: int, request: DataRequest, faults: FaultPlan) -> tuple[int, int]:
    """Return the [begin, end) row slice of the requested page, after the paging switches."""
    begin = min(request.start_index, total)
    if faults.ignore_max_results or request.max_results is None:
        size = total - begin
    else:
        size = request.max_results
    cap = faults.page_size_cap
    if cap is not None and cap > 0:
        size = min(size, cap)
    return begin, min(begin + size, total)


def sort_key_for(request: DataRequest) -> tuple[str, bool] | None:
    """Return (metric, descending) named by the `order` parameter when it names a metric."""
    order = request.params.get("order", "")
    name, _, direction = order.partition(",")
    if name in FORMULAS:
        return name, direction.strip().lower() != "asc"
    return None


def _numeric(value: object) -> float:
    if isinstance(value, int | float):
        return float(value)
    return -1.0


def paged_result(
    request: DataRequest,
    faults: FaultPlan,
    fields: list[str],
    cells: list[object],
    quantities: list[Quantities | None],
    pv_total: int,
    with_offset: bool,
) -> dict[str, object]:
    """Assemble a paged list result (offset, timeSpan, fields, total, sum, pageSum, items)."""
    metrics = fields[1:]
    begin, end = page_bounds(len(cells), request, faults)
    page_cells = cells[begin:end]
    page_quantities = quantities[begin:end]
    rows = [
        metric_row(metrics, q, pv_total, request.site.site_id, request.start, cell_seed(c))
        for c, q in zip(page_cells, page_quantities, strict=True)
    ]
    result: dict[str, object] = {}
    if with_offset and not faults.omit_offset:
        result["offset"] = request.start_index
    result["timeSpan"] = time_span(request.start, request.end)
    result["fields"] = fields
    if not faults.omit_total:
        result["total"] = len(cells)
    result["sum"] = [sum_row(metrics, quantities), []]
    result["pageSum"] = [sum_row(metrics, page_quantities), [], []]
    result["items"] = [[[c] for c in page_cells], rows, [], []]
    return result


def cell_seed(cell: object) -> str:
    if isinstance(cell, dict):
        return str(cell.get("name"))
    return str(cell)


# --- DIMENSION ---------------------------------------------------------------------------


def dimension_cell(report: Report, member: Member, rank: int, faults: FaultPlan) -> object:
    """Build a dimension cell with exactly the report table's cell keys (plus `name`)."""
    attributes = dict(member.attributes)
    cell: dict[str, object] = {"name": member.name}
    for key in report.cell_keys:
        if key.api_key in attributes:
            cell[key.api_key] = attributes[key.api_key]
        elif key.api_key == "pageId":
            cell[key.api_key] = data.stable_id("page", member.name)
        elif key.api_key == "domainId":
            # The same host has the same id on every site, as on Tongji.
            host = member.name.split("://", 1)[-1].split("/", 1)[0]
            cell[key.api_key] = data.stable_id("domain", host)
        else:
            cell[key.api_key] = None
    if faults.extra_cell_keys:
        cell["layer"] = rank
        cell["tip"] = "额外字段"
    return cell


def build_dimension(request: DataRequest, faults: FaultPlan) -> dict[str, object]:
    report = request.report
    merged: dict[str, tuple[Member, Quantities]] = {}
    for day in days_between(request.start, request.end):
        for member, quantities in data.dimension_day_rows(
            report.method, request.site, day, request.params
        ):
            if member.key in merged:
                data.add_quantities(merged[member.key][1], quantities)
            else:
                merged[member.key] = (member, dict(quantities))

    factor = filter_factor(report, request.params)
    rows = [(m, data.scale_quantities(q, factor)) for m, q in merged.values()]
    rows = [(m, q) for m, q in rows if q["pv"] > 0]
    pv_total = sum(q["pv"] for _, q in rows)

    ordering = sort_key_for(request)
    if ordering is None:
        rows.sort(key=lambda r: (-r[1]["pv"], r[0].name))
    else:
        metric, descending = ordering
        rows.sort(key=lambda r: (_numeric(metric_value(metric, r[1], pv_total)), r[0].name))
        if descending:
            rows.reverse()

    fields = [report.dimension_field, *response_fields(request, faults)]
    if not report.paged:
        # overview/getDistrictRpt: plain-name cells, every row, only `fields` and `items`.
        metrics = fields[1:]
        return {
            "fields": fields,
            "items": [
                [[m.name] for m, _ in rows],
                [[metric_value(x, q, pv_total) for x in metrics] for _, q in rows],
                [],
                [],
            ],
        }

    cells = [dimension_cell(report, m, i + 1, faults) for i, (m, _) in enumerate(rows)]
    # Real source/* responses carry no `offset`, the other paged reports do.
    with_offset = not report.method.startswith("source/")
    return paged_result(request, faults, fields, cells, [q for _, q in rows], pv_total, with_offset)


# --- DAILY_ROWS --------------------------------------------------------------------------


def _bucket_quantities(site: SiteInfo, days: Sequence[dt.date]) -> Quantities | None:
    parts = [data.day_quantities(site, day) for day in days]
    present_parts = [p for p in parts if p is not None]
    return data.sum_quantities(present_parts) if present_parts else None


def time_buckets(request: DataRequest) -> list[tuple[str, Quantities | None]]:
    """Rows of trend/time/a in ascending time order, as (label, quantities)."""
    site = request.site
    days = days_between(request.start, request.end)
    gran = request.params.get("gran") or "day"
    if gran == "hour":
        # Over several days each row is one hour of the day summed over the range, as a real
        # multi-day hour request returned. One day gives that day's 24 hours.
        totals: list[Quantities | None] = [None] * 24
        for day in days:
            hours = data.hour_quantities(site, day)
            if hours is None:
                continue
            for hour, quantities in enumerate(hours):
                current = totals[hour]
                if current is None:
                    totals[hour] = dict(quantities)
                else:
                    data.add_quantities(current, quantities)
        return [(data.hour_label(h), totals[h]) for h in range(24)]
    if gran in ("week", "month"):
        groups: dict[tuple[int, int], list[dt.date]] = {}
        for day in days:
            if gran == "week":
                iso = day.isocalendar()
                group = (iso[0], iso[1])
            else:
                group = (day.year, day.month)
            groups.setdefault(group, []).append(day)
        # Buckets are clipped to the range at both ends, as real month labels are.
        return [
            (f"{group[0]:%Y/%m/%d} - {group[-1]:%Y/%m/%d}", _bucket_quantities(site, group))
            for group in groups.values()
        ]
    return [(f"{day:%Y/%m/%d}", data.day_quantities(site, day)) for day in days]


def build_time_trend_overview(request: DataRequest, faults: FaultPlan) -> dict[str, object]:
    """overview/getTimeTrendRpt: every day, oldest first, no paging keys."""
    metrics = response_fields(request, faults)
    days = days_between(request.start, request.end)
    factor = filter_factor(request.report, request.params)
    quantities = [data.day_quantities(request.site, day) for day in days]
    scaled = [None if q is None else data.scale_quantities(q, factor) for q in quantities]
    pv_total = sum(q["pv"] for q in scaled if q is not None)
    return {
        "timeSpan": time_span(request.start, request.end),
        "fields": [request.report.dimension_field, *metrics],
        "items": [
            [[f"{day:%Y/%m/%d}"] for day in days],
            [
                metric_row(metrics, q, pv_total, request.site.site_id, day)
                for day, q in zip(days, scaled, strict=True)
            ],
            [],
            [],
        ],
    }


def build_trend_time(request: DataRequest, faults: FaultPlan) -> dict[str, object]:
    """trend/time/a: buckets of the chosen grain, paged, newest first by default."""
    factor = filter_factor(request.report, request.params)
    buckets = [
        (label, None if q is None else data.scale_quantities(q, factor))
        for label, q in time_buckets(request)
    ]
    order = request.params.get("order", "")
    if not order.lower().endswith(",asc"):
        buckets.reverse()
    pv_total = sum(q["pv"] for _, q in buckets if q is not None)
    fields = [request.report.dimension_field, *response_fields(request, faults)]
    cells: list[object] = [label for label, _ in buckets]
    return paged_result(
        request, faults, fields, cells, [q for _, q in buckets], pv_total, with_offset=True
    )


# --- KEYED_SUBREPORTS --------------------------------------------------------------------


def build_common_track(request: DataRequest, faults: FaultPlan) -> dict[str, object]:
    """overview/getCommonTrackRpt: top-10 row lists and the new/returning visitor split."""
    result: dict[str, object] = {}
    for key in COMMON_TRACK_SUBREPORTS:
        field_name, method, extra_params = COMMON_TRACK_FIELDS[key]
        params = {**request.params, **extra_params}
        merged: dict[str, Quantities] = {}
        for day in days_between(request.start, request.end):
            for member, quantities in data.dimension_day_rows(method, request.site, day, params):
                if member.name in merged:
                    data.add_quantities(merged[member.name], quantities)
                else:
                    merged[member.name] = dict(quantities)
        ranked = sorted(merged.items(), key=lambda item: (-item[1]["pv"], item[0]))
        pv_total = sum(q["pv"] for q in merged.values())
        rows = []
        for name, quantities in ranked[:COMMON_TRACK_TOP_ROWS]:
            pv: object = quantities["pv"]
            if key in COMMON_TRACK_STRING_COUNTS:
                pv = str(pv)
            rows.append([name, pv, metric_value("ratio", quantities, pv_total)])
        result[key] = {"fields": [field_name, "pv_count", "ratio"], "items": rows}

    total = _bucket_quantities(request.site, days_between(request.start, request.end))
    # The visitor-type objects carry the report's columns with `ratio` last, as in real data.
    columns = [c for c in request.report.columns if c != "ratio"] + ["ratio"]
    visitor_types: dict[str, object] = {}
    for key in ("oldVisitor", "newVisitor"):
        assert key in COMMON_TRACK_VISITOR_TYPES
        part = _visitor_type_share(total, new=(key == "newVisitor"))
        values: dict[str, object] = {}
        for column in columns:
            if column == "ratio":
                share = metric_value("ratio", part, total["pv"] if total else 0)
                values[column] = 0 if share == EMPTY else share
            else:
                values[column] = metric_value(column, part, 0)
        visitor_types[key] = values
    result["visitType"] = visitor_types
    return result


def _visitor_type_share(total: Quantities | None, new: bool) -> Quantities | None:
    """Split a range's traffic between new and returning visitors by their visitor counts."""
    if total is None or total["visitors"] == 0:
        return None
    share = total["new_visitors"] / total["visitors"]
    return data.scale_quantities(total, share if new else 1 - share)


# --- REALTIME ----------------------------------------------------------------------------


def build_realtime(request: DataRequest, faults: FaultPlan) -> dict[str, object]:
    """trend/latest/a: visit details and rows, newest first unless `order` requests asc."""
    visits = data.latest_visits(request.site, request.today, request.params)
    if request.params.get("order", "").lower().endswith(",asc"):
        visits.reverse()
    metrics = response_fields(request, faults)
    begin, end = page_bounds(len(visits), request, faults)
    page = visits[begin:end]
    result: dict[str, object] = {
        "fields": ["null", *metrics],
        "items": [
            [[{"detail": visit.detail}] for visit in page],
            [[visit.row[m] for m in metrics] for visit in page],
        ],
    }
    if not faults.omit_total:
        result["total"] = len(visits)
    return result


BUILDERS: dict[Layout, Callable[[DataRequest, FaultPlan], dict[str, object]]] = {
    Layout.DIMENSION: build_dimension,
    Layout.KEYED_SUBREPORTS: build_common_track,
    Layout.REALTIME: build_realtime,
}


def build_result(request: DataRequest, faults: FaultPlan) -> dict[str, object]:
    """Build the `result` object for a validated request."""
    layout = request.report.layout
    if layout is Layout.DAILY_ROWS:
        if request.report.paged:
            return build_trend_time(request, faults)
        return build_time_trend_overview(request, faults)
    return BUILDERS[layout](request, faults)
