"""Property tests of record conversion: any cell form, any metric order, the same record."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tap_baidu_tongji.records import (
    EXTRA_CELL_COLUMN,
    NO_DATA,
    daily_records,
    dimension_records,
    to_integer,
    to_number,
)
from tap_baidu_tongji.reports import METRICS, REPORTS, Layout, Report, ValueKind

DIMENSION_REPORTS = [r for r in REPORTS if r.layout is Layout.DIMENSION and r.cell_keys]
DAILY_REPORTS = [r for r in REPORTS if r.layout is Layout.DAILY_ROWS and r.gran == "day"]
EXAMPLES = settings(max_examples=200, deadline=None)
PAGE_EXAMPLES = settings(max_examples=100, deadline=None)
"""Fewer examples for whole pages, which draw dozens of cells each."""

# A metric cell as the API may send it, paired with the value the record must hold.
Cell = tuple[Any, Any]


@st.composite
def integer_cells(draw: st.DrawFn) -> Cell:
    value = draw(st.integers(min_value=0, max_value=10**12))
    form = draw(st.sampled_from(["number", "text", "missing"]))
    if form == "missing":
        return NO_DATA, None
    return (value if form == "number" else str(value)), value


@st.composite
def number_cells(draw: st.DrawFn) -> Cell:
    hundredths = draw(st.integers(min_value=0, max_value=10**8))
    value = hundredths / 100
    form = draw(st.sampled_from(["float", "whole", "text", "missing"]))
    if form == "missing":
        return NO_DATA, None
    if form == "whole":
        return hundredths, float(hundredths)
    return (value if form == "float" else str(value)), value


def metric_cell(name: str) -> st.SearchStrategy[Cell]:
    return integer_cells() if METRICS[name].kind is ValueKind.INTEGER else number_cells()


big_ids = st.integers(min_value=0, max_value=10**20 - 1).map(str)
names = st.text(min_size=1, max_size=12).filter(lambda text: text != NO_DATA)


@st.composite
def dimension_pages(draw: st.DrawFn) -> tuple[Report, dict[str, Any], list[dict[str, Any]]]:
    """Draw a report, one page of its result in a shuffled metric order, and its records."""
    report = draw(st.sampled_from(DIMENSION_REPORTS))
    order = draw(st.permutations(list(report.metrics)))
    row_count = draw(st.integers(min_value=0, max_value=4))

    cells, value_rows, expected = [], [], []
    for _ in range(row_count):
        name = draw(names)
        cell: dict[str, Any] = {"name": name}
        record: dict[str, Any] = {"name": name}
        for key in report.cell_keys:
            cell[key.api_key] = draw(big_ids)
            record[key.column] = cell[key.api_key]
        record[EXTRA_CELL_COLUMN] = None
        drawn = {metric: draw(metric_cell(metric)) for metric in report.metrics}
        record.update({metric: drawn[metric][1] for metric in report.columns if metric in drawn})
        record.update({metric: None for metric in report.columns if metric not in drawn})
        cells.append([cell])
        value_rows.append([drawn[metric][0] for metric in order])
        expected.append(record)

    result = {
        "fields": [report.dimension_field, *order],
        "total": row_count,
        "items": [cells, value_rows, [], []],
    }
    return report, result, expected


@PAGE_EXAMPLES
@given(dimension_pages())
def test_dimension_records_any_order(page: tuple[Report, dict[str, Any], list[Any]]) -> None:
    report, result, expected = page

    records = dimension_records(result, report)

    assert records == expected
    for record in records:
        for metric in report.metrics:
            value = record[metric]
            if value is None:
                continue
            if METRICS[metric].kind is ValueKind.INTEGER:
                assert type(value) is int
            else:
                assert type(value) is float


@PAGE_EXAMPLES
@given(dimension_pages(), st.randoms(use_true_random=False))
def test_metric_order_irrelevant(
    page: tuple[Report, dict[str, Any], list[Any]], random: Any
) -> None:
    report, result, _ = page
    fields = result["fields"]
    positions = list(range(len(fields) - 1))
    random.shuffle(positions)
    reordered = {
        **result,
        "fields": [fields[0], *(fields[1 + index] for index in positions)],
        "items": [
            result["items"][0],
            [[row[index] for index in positions] for row in result["items"][1]],
            [],
            [],
        ],
    }

    assert dimension_records(reordered, report) == dimension_records(result, report)


@EXAMPLES
@given(big_ids)
def test_big_ids_kept_exactly(page_id: str) -> None:
    report = next(r for r in DIMENSION_REPORTS if any(k.api_key == "pageId" for k in r.cell_keys))
    result = {
        "fields": [report.dimension_field, report.metrics[0]],
        "items": [[[{"name": "https://example.com/", "pageId": page_id}]], [[1]], [], []],
    }

    (record,) = dimension_records(result, report)

    assert record["page_id"] == page_id


@st.composite
def daily_pages(draw: st.DrawFn) -> tuple[Report, dict[str, Any], list[Any]]:
    """Draw a daily-rows result with distinct days in any row order, and its pairs."""
    report = draw(st.sampled_from(DAILY_REPORTS))
    order = draw(st.permutations(list(report.metrics)))
    offsets = draw(st.lists(st.integers(0, 400), unique=True, max_size=5))
    first = dt.date(2025, 1, 1)

    cells, value_rows, expected = [], [], []
    for offset in offsets:
        day = first + dt.timedelta(days=offset)
        drawn = {metric: draw(metric_cell(metric)) for metric in report.metrics}
        record = {metric: drawn[metric][1] for metric in report.columns if metric in drawn}
        record.update({metric: None for metric in report.columns if metric not in drawn})
        cells.append([day.strftime("%Y/%m/%d")])
        value_rows.append([drawn[metric][0] for metric in order])
        expected.append((day, record))

    result = {"fields": ["simple_date_title", *order], "items": [cells, value_rows, [], []]}
    return report, result, sorted(expected, key=lambda pair: pair[0])


@PAGE_EXAMPLES
@given(daily_pages())
def test_daily_records_oldest_first(page: tuple[Report, dict[str, Any], list[Any]]) -> None:
    report, result, expected = page

    assert daily_records(result, report) == expected


@EXAMPLES
@given(integer_cells())
def test_integer_cell_forms(cell: Cell) -> None:
    raw, value = cell

    converted = to_integer(raw)

    assert converted == value
    assert converted is None or type(converted) is int


@EXAMPLES
@given(number_cells())
def test_number_cell_forms(cell: Cell) -> None:
    raw, value = cell

    converted = to_number(raw)

    assert converted == value
    assert converted is None or type(converted) is float
