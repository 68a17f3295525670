"""Pure conversion of a getData `result` object into records. No I/O.

Values are mapped to metric names through the response's `fields`, never through the order the
tap requested, and a metric cell may be a number, a numeric string or `"--"` (no data).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from tap_baidu_tongji.dates import (
    parse_beijing_timestamp,
    parse_day_label,
    parse_hour_label,
    parse_period_label,
)
from tap_baidu_tongji.reports import (
    COMMON_TRACK_SUBREPORTS,
    COMMON_TRACK_VISITOR_TYPES,
    METRICS,
    Report,
    ValueKind,
)

NO_DATA = "--"
VISIT_IN_PROGRESS = "正在访问"
"""Realtime `visit_time` while the visitor is still on the site."""

EXTRA_CELL_COLUMN = "cell_extra"
"""Record column that keeps dimension-cell keys the report table does not know yet."""

Record = dict[str, Any]
Label = TypeVar("Label")
Converter = Callable[[Any], Any]


class MalformedResultError(ValueError):
    """The `result` object does not have the shape the method promises."""


def to_integer(value: Any) -> int | None:
    """Convert a count cell: integer, integral float or numeric string; `"--"` is None."""
    if value is None or isinstance(value, bool):
        return None if value is None else int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        msg = f"expected a whole number, got {value!r}"
        raise MalformedResultError(msg)
    text = _clean_numeric_text(value)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        number = _parse_float(text, value)
        if number.is_integer():
            return int(number)
        msg = f"expected a whole number, got {value!r}"
        raise MalformedResultError(msg) from None


def to_number(value: Any) -> float | None:
    """Convert a ratio, duration or amount cell to float; `"--"` is None."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = _clean_numeric_text(value)
    if text is None:
        return None
    return _parse_float(text, value)


def to_text(value: Any) -> str | None:
    """Convert a text cell; `"--"` and empty strings are None."""
    if value is None:
        return None
    text = str(value)
    return None if text in ("", NO_DATA) else text


def _clean_numeric_text(value: Any) -> str | None:
    if not isinstance(value, str):
        msg = f"expected a number, a numeric string or {NO_DATA!r}, got {value!r}"
        raise MalformedResultError(msg)
    text = value.strip()
    if text in ("", NO_DATA):
        return None
    # The console formats thousands with commas and ratios with a percent sign.
    return text.replace(",", "").removesuffix("%")


def _parse_float(text: str, original: Any) -> float:
    try:
        return float(text)
    except ValueError:
        msg = f"expected a number, a numeric string or {NO_DATA!r}, got {original!r}"
        raise MalformedResultError(msg) from None


CONVERTERS: dict[ValueKind, Converter] = {
    ValueKind.INTEGER: to_integer,
    ValueKind.NUMBER: to_number,
    ValueKind.STRING: to_text,
}

UNCHANGED_TYPES: dict[ValueKind, type | None] = {
    ValueKind.INTEGER: int,
    ValueKind.NUMBER: float,
    ValueKind.STRING: None,
}
"""The cell type that each converter returns unchanged, so `apply_plan` may skip the call."""

MetricPlan = list[tuple[int, str, Converter, type | None]]


def metric_plan(fields: Sequence[Any], wanted: Sequence[str]) -> MetricPlan:
    """Plan once per response which value index feeds which metric column, and how.

    `fields[0]` is the dimension; value row index `i` contains `fields[i + 1]`. Fields the
    report does not know are skipped, and wanted metrics absent from `fields` stay null.
    """
    wanted_set = set(wanted)
    plan: MetricPlan = []
    for index, name in enumerate(fields[1:]):
        if name in wanted_set:
            kind = METRICS[name].kind
            plan.append((index, name, CONVERTERS[kind], UNCHANGED_TYPES[kind]))
    return plan


def apply_plan(values: Sequence[Any], plan: MetricPlan, record: Record) -> None:
    """Fill `record` with the converted values of one row, as planned by `metric_plan`."""
    for index, name, convert, unchanged_type in plan:
        value = values[index]
        # Most cells are JSON numbers of the metric's own type; `type(...) is` leaves out bool.
        if type(value) is unchanged_type:
            record[name] = value
            continue
        try:
            record[name] = convert(value)
        except MalformedResultError as error:
            msg = f"metric {name}: {error}"
            raise MalformedResultError(msg) from None


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise MalformedResultError(message)


def _rows(result: Mapping[str, Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """Return `fields`, the dimension cells and the value rows of a list report, checked."""
    fields = result.get("fields")
    items = result.get("items")
    if not isinstance(fields, list) or not fields:
        raise MalformedResultError("`fields` is missing or empty")
    if not isinstance(items, list):
        raise MalformedResultError("`items` is missing or not a list")
    if not items:
        return fields, [], []
    _require(len(items) >= 2, "`items` has no value rows")
    cells, values = items[0], items[1]
    _require(
        isinstance(cells, list) and isinstance(values, list) and len(cells) == len(values),
        f"`items` has {len(cells)} dimension cells but {len(values)} value rows",
    )
    width = len(fields) - 1
    for row in values:
        # A plain `if`, not `_require`, so the message is only formatted for a bad row.
        if not (isinstance(row, list) and len(row) == width):
            raise MalformedResultError(
                f"a value row has {len(row) if isinstance(row, list) else 'no'} values, "
                f"`fields` names {width}"
            )
    return fields, cells, values


def _unwrap_cell(cell: Any) -> Any:
    """Return the dimension cell, which the API wraps in a one-element array."""
    if isinstance(cell, list):
        _require(len(cell) >= 1, "an empty dimension cell")
        return cell[0]
    return cell


class _CellColumns:
    """Flattens the dimension cells of one report, with its cell keys looked up once."""

    def __init__(self, report: Report) -> None:
        self.key_columns = [(key.api_key, key.column) for key in report.cell_keys]
        self.known_keys = frozenset(("name", *(key.api_key for key in report.cell_keys)))

    def columns(self, cell: Any) -> Record:
        if not isinstance(cell, Mapping):
            text = to_text(cell)
            if text is None:
                raise MalformedResultError(f"a dimension cell without a name: {cell!r}")
            return {"name": text, EXTRA_CELL_COLUMN: None}

        name = cell.get("name")
        if name is None or str(name) == "":
            raise MalformedResultError(f"a dimension cell without a name: {cell!r}")
        record: Record = {"name": str(name)}
        for api_key, column in self.key_columns:
            value = cell.get(api_key)
            record[column] = None if value is None else str(value)
        if cell.keys() <= self.known_keys:
            record[EXTRA_CELL_COLUMN] = None
        else:
            extra = {key: value for key, value in cell.items() if key not in self.known_keys}
            record[EXTRA_CELL_COLUMN] = extra
        return record


def dimension_columns(report: Report, cell: Any) -> Record:
    """Flatten one dimension cell into `name`, the known id columns and `cell_extra`."""
    return _CellColumns(report).columns(cell)


def dimension_records(result: Mapping[str, Any], report: Report) -> list[Record]:
    """Convert a list report page (one day) into records without `site_id` and `date`."""
    fields, cells, values = _rows(result)
    plan = metric_plan(fields, report.columns)
    cell_columns = _CellColumns(report)
    empty_metrics = dict.fromkeys(report.columns)
    records = []
    for cell, row in zip(cells, values, strict=True):
        record = cell_columns.columns(_unwrap_cell(cell))
        record.update(empty_metrics)
        apply_plan(row, plan, record)
        records.append(record)
    return records


def _labelled_records(
    result: Mapping[str, Any], report: Report, parse_label: Callable[[str], Label]
) -> list[tuple[Label, Record]]:
    """Convert rows whose dimension cell is a time label into `(parsed label, record)` pairs."""
    fields, cells, values = _rows(result)
    plan = metric_plan(fields, report.columns)
    empty_metrics = dict.fromkeys(report.columns)
    pairs = []
    for cell, row in zip(cells, values, strict=True):
        try:
            label = parse_label(str(_unwrap_cell(cell)))
        except ValueError as error:
            raise MalformedResultError(str(error)) from None
        record = dict(empty_metrics)
        apply_plan(row, plan, record)
        pairs.append((label, record))
    return pairs


def daily_records(result: Mapping[str, Any], report: Report) -> list[tuple[dt.date, Record]]:
    """Convert a report with one row per day into `(day, record)` pairs, oldest day first."""
    pairs = _labelled_records(result, report, parse_day_label)
    pairs.sort(key=lambda pair: pair[0])
    return pairs


def hour_records(result: Mapping[str, Any], report: Report) -> list[Record]:
    """Convert one day of `gran=hour` rows into records with an `hour` column, 0 to 23."""
    pairs = _labelled_records(result, report, parse_hour_label)
    pairs.sort(key=lambda pair: pair[0])
    return [{"hour": hour, **record} for hour, record in pairs]


def period_records(
    result: Mapping[str, Any], report: Report
) -> list[tuple[dt.date, dt.date, Record]]:
    """Convert `gran=week` or `month` rows into `(first day, last day, record)`, oldest first."""
    pairs = _labelled_records(result, report, parse_period_label)
    pairs.sort(key=lambda pair: pair[0][0])
    return [(first, last, record) for (first, last), record in pairs]


def common_track_records(result: Mapping[str, Any], report: Report) -> list[Record]:
    """Convert overview/getCommonTrackRpt's keyed sub-reports into rows with a `sub_report`."""
    records: list[Record] = []
    empty_metrics = dict.fromkeys(report.columns)

    for api_key, sub_report in COMMON_TRACK_SUBREPORTS.items():
        section = result.get(api_key)
        if section is None:
            continue
        _require(isinstance(section, Mapping), f"sub-report {api_key} is not an object")
        fields = section.get("fields") or []
        rows = section.get("items") or []
        _require(isinstance(rows, list), f"sub-report {api_key} has no `items` list")
        plan = metric_plan(fields, report.columns)
        for row in rows:
            _require(
                isinstance(row, list) and len(row) == len(fields) and len(row) >= 1,
                f"sub-report {api_key}: a row does not match its {len(fields)} fields",
            )
            record: Record = {"sub_report": sub_report, "name": to_text(row[0]) or ""}
            record.update(empty_metrics)
            apply_plan(row[1:], plan, record)
            records.append(record)

    visitor_types = result.get("visitType")
    if isinstance(visitor_types, Mapping):
        for api_key, name in COMMON_TRACK_VISITOR_TYPES.items():
            values = visitor_types.get(api_key)
            if not isinstance(values, Mapping):
                continue
            record = {"sub_report": "visitor_type", "name": name}
            record.update(empty_metrics)
            for metric in report.columns:
                if metric in values:
                    convert = CONVERTERS[METRICS[metric].kind]
                    record[metric] = convert(values[metric])
            records.append(record)
    return records


def _realtime_source(value: Any) -> Record | None:
    if isinstance(value, Mapping):
        return dict(value)
    text = to_text(value)
    return None if text is None else {"fromType": text}


def _realtime_visit_time(value: Any) -> tuple[float | None, bool]:
    if value == VISIT_IN_PROGRESS:
        return None, True
    return to_number(value), False


def realtime_records(result: Mapping[str, Any]) -> list[Record]:
    """Convert trend/latest/a visits into records, keeping each visit's `detail` object.

    `fields[0]` is the literal "null" (the detail column); value rows follow `fields[1:]`.
    """
    fields, cells, values = _rows(result)
    position = {name: index for index, name in enumerate(fields[1:])}
    _require("start_time" in position, "`fields` has no start_time")

    def pick(row: Sequence[Any], name: str) -> Any:
        index = position.get(name)
        return None if index is None else row[index]

    records: list[Record] = []
    for cell, row in zip(cells, values, strict=True):
        cell_object = _unwrap_cell(cell)
        detail = cell_object.get("detail") if isinstance(cell_object, Mapping) else None
        start_text = to_text(pick(row, "start_time"))
        _require(start_text is not None, "a visit without start_time")
        try:
            start_time = parse_beijing_timestamp(str(start_text))
        except ValueError as error:
            raise MalformedResultError(str(error)) from None
        visit_time, in_progress = _realtime_visit_time(pick(row, "visit_time"))
        visitor_id = to_text(pick(row, "visitorId"))
        _require(visitor_id is not None, "a visit without visitorId")
        is_ad = pick(row, "is_ad")
        records.append(
            {
                "start_time": start_time.isoformat(),
                "visitor_id": visitor_id,
                "area": to_text(pick(row, "area")),
                "source": _realtime_source(pick(row, "source")),
                "access_page": to_text(pick(row, "access_page")),
                "keyword": to_text(pick(row, "keyword")),
                "searchword": to_text(pick(row, "searchword")),
                "is_ad": None if is_ad is None else str(is_ad),
                "ip": to_text(pick(row, "ip")),
                "visit_time": visit_time,
                "visit_in_progress": in_progress,
                "visit_pages": to_integer(pick(row, "visit_pages")),
                "detail": dict(detail) if isinstance(detail, Mapping) else None,
            },
        )
    records.sort(key=lambda record: str(record["start_time"]))
    return records
