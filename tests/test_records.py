"""Record conversion, table-driven on response shapes seen in real Tongji responses."""

from __future__ import annotations

import datetime as dt

import pytest

from tap_baidu_tongji.records import (
    MalformedResultError,
    common_track_records,
    daily_records,
    dimension_records,
    realtime_records,
    to_integer,
    to_number,
)
from tap_baidu_tongji.reports import REPORTS_BY_METHOD, REPORTS_BY_STREAM

DISTRICT = REPORTS_BY_METHOD["visit/district/a"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5),
        (5.0, 5),
        ("30", 30),
        ("1,234", 1234),
        ("--", None),
        ("", None),
        (None, None),
        ("7.0", 7),
    ],
)
def test_to_integer_accepts_api_forms(value, expected):
    assert to_integer(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(17.92, 17.92), ("17.92", 17.92), ("17.92%", 17.92), (2, 2.0), ("--", None), (0, 0.0)],
)
def test_to_number_accepts_api_forms(value, expected):
    assert to_number(value) == expected


@pytest.mark.parametrize("value", ["abc", 3.5, [1], {"a": 1}])
def test_to_integer_rejects_garbage(value):
    with pytest.raises(MalformedResultError):
        to_integer(value)


def test_district_page_maps_through_fields():
    result = {
        "offset": 0,
        "timeSpan": ["2026/03/01"],
        "fields": ["visit_district_title", "visitor_count", "pv_count"],
        "total": 2,
        "sum": [[9, 18903], []],
        "pageSum": [[9, 16589], [], []],
        "items": [
            [[{"name": "浙江", "area": "province,32"}], [{"name": "广东", "area": "province,4"}]],
            [[3, 4968], ["--", "1857"]],
            [],
            [],
        ],
    }
    records = dimension_records(result, DISTRICT)

    assert len(records) == 2
    assert records[0]["name"] == "浙江"
    assert records[0]["area"] == "province,32"
    assert records[0]["pv_count"] == 4968
    assert records[0]["visitor_count"] == 3
    assert records[1]["visitor_count"] is None
    assert records[1]["pv_count"] == 1857
    assert records[0]["bounce_ratio"] is None
    assert records[0]["cell_extra"] is None


def test_engine_cell_keeps_ids_and_extras():
    report = REPORTS_BY_METHOD["source/engine/a"]
    result = {
        "fields": ["source_engine_title", "pv_count"],
        "items": [
            [
                [
                    {
                        "name": "百度",
                        "source": "search,1",
                        "engineId": "1",
                        "url": "www.baidu.com/s?wd=",
                        "subEngineId": None,
                        "newKey": "x",
                    }
                ]
            ],
            [[12]],
            [],
            [],
        ],
    }
    (record,) = dimension_records(result, report)

    assert record["engine_id"] == "1"
    assert record["sub_engine_id"] is None
    assert record["url"] == "www.baidu.com/s?wd="
    assert record["cell_extra"] == {"newKey": "x"}


def test_big_page_id_stays_exact_string():
    report = REPORTS_BY_METHOD["visit/toppage/a"]
    big = "10991562572496888335"
    result = {
        "fields": ["visit_page_title", "pv_count"],
        "items": [[[{"name": "https://a.example/", "pageId": big}]], [[1]], [], []],
    }
    (record,) = dimension_records(result, report)

    assert record["page_id"] == big


def test_plain_string_cells_become_name():
    report = REPORTS_BY_METHOD["overview/getDistrictRpt"]
    result = {
        "fields": ["simple_district_title", "pv_count", "ratio"],
        "items": [[["北京"], ["上海"]], [[4, 0.52], [2, 0.26]]],
    }
    records = dimension_records(result, report)

    assert [r["name"] for r in records] == ["北京", "上海"]
    assert records[0]["ratio"] == 0.52


def test_mismatched_items_lengths_raise():
    result = {
        "fields": ["visit_district_title", "pv_count"],
        "items": [[[{"name": "a"}], [{"name": "b"}]], [[1]], [], []],
    }
    with pytest.raises(MalformedResultError, match="2 dimension cells but 1 value rows"):
        dimension_records(result, DISTRICT)


def test_value_row_width_checked():
    result = {
        "fields": ["visit_district_title", "pv_count", "visitor_count"],
        "items": [[[{"name": "a"}]], [[1]], [], []],
    }
    with pytest.raises(MalformedResultError, match="names 2"):
        dimension_records(result, DISTRICT)


def test_empty_items_give_no_records():
    assert dimension_records({"fields": ["x", "pv_count"], "items": []}, DISTRICT) == []
    assert dimension_records({"fields": ["x"], "items": [[], [], [], []]}, DISTRICT) == []


def test_daily_rows_sorted_oldest_first():
    report = REPORTS_BY_STREAM["trend_time"]
    result = {
        "fields": ["simple_date_title", "pv_count", "visitor_count"],
        "items": [[["2026/03/02"], ["2026/03/01"]], [[5, 2], ["--", "--"]], [], []],
    }
    pairs = daily_records(result, report)

    assert [day for day, _ in pairs] == [dt.date(2026, 3, 1), dt.date(2026, 3, 2)]
    assert pairs[0][1]["pv_count"] is None
    assert pairs[1][1]["pv_count"] == 5
    assert pairs[1][1]["roi"] is None


def test_daily_rows_reject_bad_label():
    report = REPORTS_BY_STREAM["overview_time_trend"]
    result = {"fields": ["simple_date_title", "pv_count"], "items": [[["yesterday"]], [[1]]]}
    with pytest.raises(MalformedResultError, match="YYYY/MM/DD"):
        daily_records(result, report)


def test_common_track_sub_reports_become_rows():
    report = REPORTS_BY_STREAM["overview_common_track"]
    result = {
        "sourceSite": {
            "fields": ["simple_link_title", "pv_count", "ratio"],
            "items": [["直接访问", 106, 100]],
        },
        "visitPage": {
            "fields": ["simple_visitpage_title", "pv_count", "ratio"],
            "items": [["https://www.example.cn/#/blog", "30", 28.3]],
        },
        "landingPage": {"fields": ["simple_landingpage_title", "pv_count", "ratio"], "items": []},
        "word": {"fields": ["simple_searchword_title", "pv_count", "ratio"], "items": []},
        "visitType": {
            "oldVisitor": {
                "pv_count": 106,
                "visitor_count": 2,
                "avg_visit_time": 1312,
                "bounce_ratio": 0,
                "avg_visit_pages": 53,
                "ratio": 100,
            },
            "newVisitor": {
                "pv_count": "--",
                "visitor_count": "--",
                "avg_visit_time": "--",
                "bounce_ratio": "--",
                "avg_visit_pages": "--",
                "ratio": 0,
            },
        },
    }
    records = common_track_records(result, report)
    by_key = {(r["sub_report"], r["name"]): r for r in records}

    assert len(records) == 4
    assert by_key[("source_site", "直接访问")]["pv_count"] == 106
    assert by_key[("visit_page", "https://www.example.cn/#/blog")]["pv_count"] == 30
    assert by_key[("visit_page", "https://www.example.cn/#/blog")]["ratio"] == 28.3
    assert by_key[("visitor_type", "old_visitor")]["avg_visit_time"] == 1312.0
    assert by_key[("visitor_type", "new_visitor")]["pv_count"] is None
    assert by_key[("visitor_type", "new_visitor")]["ratio"] == 0.0


def test_realtime_visits_keep_detail_and_progress():
    result = {
        "fields": [
            "null",
            "start_time",
            "area",
            "source",
            "access_page",
            "searchword",
            "ip",
            "visitorId",
            "visit_time",
            "visit_pages",
        ],
        "total": 2,
        "items": [
            [
                [
                    {
                        "detail": {
                            "os": "Windows 10",
                            "paths": [["07:56:56", "正在访问", "https://a/"]],
                        }
                    }
                ],
                [{"detail": {"os": "iOS"}}],
            ],
            [
                [
                    "2023/03/30 07:56:56",
                    "红河",
                    {"fromType": "百度", "url": "https://b"},
                    "https://a/",
                    "网站点击量统计",
                    "183.225.111.239",
                    "2170866274285560514",
                    "正在访问",
                    "1",
                ],
                [
                    "2023/03/30 07:50:01",
                    "北京",
                    "直接访问",
                    "https://a/",
                    "--",
                    "1.2.3.4",
                    "9",
                    120,
                    "3",
                ],
            ],
        ],
    }
    records = realtime_records(result)

    assert [r["visitor_id"] for r in records] == ["9", "2170866274285560514"]
    assert records[0]["start_time"] == "2023-03-30T07:50:01+08:00"
    assert records[0]["visit_time"] == 120.0
    assert records[0]["visit_in_progress"] is False
    assert records[0]["searchword"] is None
    assert records[0]["source"] == {"fromType": "直接访问"}
    assert records[1]["visit_time"] is None
    assert records[1]["visit_in_progress"] is True
    assert records[1]["visit_pages"] == 1
    assert records[1]["detail"]["os"] == "Windows 10"
    assert records[1]["keyword"] is None
