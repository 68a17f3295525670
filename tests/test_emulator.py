"""Tests of the local Baidu Tongji emulator, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tap_baidu_tongji.emulator import Emulator, Failure, FailureKind, FaultPlan
from tap_baidu_tongji.emulator.__main__ import build_parser, fault_plan_from
from tap_baidu_tongji.reports import (
    COMMON_TRACK_SUBREPORTS,
    COMMON_TRACK_VISITOR_TYPES,
    REPORTS,
    REPORTS_BY_METHOD,
    Layout,
    Report,
)

TODAY = dt.date(2025, 10, 15)
SITE = 16847648
NEW_SITE = 17025518  # created 2025-09-01 in the default site list
TOKEN_PATH = "/oauth/2.0/token"
SITE_LIST_PATH = "/rest/2.0/tongji/config/getSiteList"
DATA_PATH = "/rest/2.0/tongji/report/getData"
ACCESS_TOKEN_SHAPE = re.compile(r"^121\.[0-9a-f]{32}\.[A-Za-z0-9_-]{38}\.[A-Za-z0-9]{6}$")
REFRESH_TOKEN_SHAPE = re.compile(r"^122\.[0-9a-f]{32}\.[A-Za-z0-9_-]{38}\.[A-Za-z0-9]{6}$")
TIMEOUT = 5


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(today=TODAY) as emulator:
        yield emulator


def refresh(emu: Emulator, refresh_token: str, **extra: str) -> requests.Response:
    body = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        **extra,
    }
    return requests.post(emu.url + TOKEN_PATH, data=body, timeout=TIMEOUT)


@pytest.fixture
def token(emu: Emulator) -> str:
    response = refresh(emu, emu.seed_refresh_token)
    assert response.status_code == 200
    emu.clear_request_log()
    return str(response.json()["access_token"])


def get_data(emu: Emulator, token: str, **params: Any) -> requests.Response:
    query: dict[str, Any] = {
        "access_token": token,
        "site_id": SITE,
        "start_date": "20251010",
        "end_date": "20251010",
    }
    query.update(params)
    return requests.get(emu.url + DATA_PATH, params=query, timeout=TIMEOUT)


def result_of(emu: Emulator, token: str, **params: Any) -> dict[str, Any]:
    response = get_data(emu, token, **params)
    assert response.status_code == 200
    body = response.json()
    assert "error_code" not in body, body
    return dict(body["result"])


def metrics_of(method: str) -> str:
    return ",".join(REPORTS_BY_METHOD[method].metrics)


# --- OAuth ---------------------------------------------------------------------------------


def test_code_grant_success_body(emu: Emulator) -> None:
    code = emu.issue_authorization_code()
    response = requests.get(
        emu.url + TOKEN_PATH,
        params={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            "redirect_uri": "oob",
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert list(body) == [
        "expires_in",
        "refresh_token",
        "access_token",
        "session_secret",
        "session_key",
        "scope",
    ]
    assert body["expires_in"] == 2592000
    assert ACCESS_TOKEN_SHAPE.match(body["access_token"])
    assert REFRESH_TOKEN_SHAPE.match(body["refresh_token"])
    assert body["scope"] == "basic"


def test_code_grant_single_use(emu: Emulator) -> None:
    code = emu.issue_authorization_code()
    params = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "redirect_uri": "oob",
    }
    first = requests.post(emu.url + TOKEN_PATH, data=params, timeout=TIMEOUT)
    second = requests.post(emu.url + TOKEN_PATH, data=params, timeout=TIMEOUT)
    assert first.status_code == 200
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"


def test_code_grant_redirect_mismatch_and_expiry(emu: Emulator) -> None:
    params = {
        "grant_type": "authorization_code",
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "redirect_uri": "https://other.example/callback",
        "code": emu.issue_authorization_code("oob"),
    }
    mismatch = requests.post(emu.url + TOKEN_PATH, data=params, timeout=TIMEOUT)
    assert mismatch.status_code == 400
    assert mismatch.json()["error"] == "invalid_grant"

    params["redirect_uri"] = "oob"
    params["code"] = emu.issue_authorization_code("oob")
    real_clock = emu.tokens.clock
    emu.tokens.clock = lambda: real_clock() + 601
    expired = requests.post(emu.url + TOKEN_PATH, data=params, timeout=TIMEOUT)
    assert expired.status_code == 400
    assert expired.json()["error"] == "invalid_grant"


def test_refresh_rotates_and_rejects_reuse(emu: Emulator) -> None:
    first = refresh(emu, emu.seed_refresh_token)
    assert first.status_code == 200
    new_refresh = first.json()["refresh_token"]
    assert new_refresh != emu.seed_refresh_token

    reuse = refresh(emu, emu.seed_refresh_token)
    assert reuse.status_code == 400
    assert (
        reuse.text == '{"error":"expired_token","error_description":"refresh token has been used"}'
    )
    assert reuse.headers["Cache-Control"] == "no-store"

    second = refresh(emu, new_refresh)
    assert second.status_code == 200
    assert second.json()["access_token"] != first.json()["access_token"]


@pytest.mark.parametrize(
    ("change", "expected_error"),
    [
        ({"refresh_token": "122.unknown"}, "invalid_grant"),
        ({"client_id": "someone-else"}, "invalid_client"),
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
    ],
)
def test_refresh_rejections(emu: Emulator, change: dict[str, str], expected_error: str) -> None:
    body = {
        "grant_type": "refresh_token",
        "refresh_token": emu.seed_refresh_token,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
    }
    body.update(change)
    response = requests.post(emu.url + TOKEN_PATH, data=body, timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.json()["error"] == expected_error
    assert "error_description" in response.json()


def test_sticky_refresh_token(emu: Emulator) -> None:
    emu.faults.sticky_refresh_token = True
    first = refresh(emu, emu.seed_refresh_token)
    second = refresh(emu, emu.seed_refresh_token)
    assert first.json()["refresh_token"] == emu.seed_refresh_token
    assert second.status_code == 200
    assert second.json()["refresh_token"] == emu.seed_refresh_token
    assert second.json()["access_token"] != first.json()["access_token"]


def test_drop_after_consume(emu: Emulator) -> None:
    emu.faults.drop_refresh_responses = 1
    with pytest.raises(requests.ConnectionError):
        refresh(emu, emu.seed_refresh_token)

    replay = refresh(emu, emu.seed_refresh_token)
    assert replay.status_code == 400
    assert replay.json()["error"] == "expired_token"
    log = emu.request_log
    assert log[0].fault == "drop"
    assert log[0].status == 0
    assert log[1].oauth_error == "expired_token"
    assert emu.faults.drop_refresh_responses == 0


def test_access_token_errors(emu: Emulator, token: str) -> None:
    unknown = get_data(emu, "121.not-issued", method="trend/time/a", metrics="pv_count")
    assert unknown.status_code == 200
    assert unknown.text == (
        '{"error_code":110,"error_msg":"Access token invalid or no longer valid"}'
    )
    emu.expire_access_tokens()
    expired = get_data(emu, token, method="trend/time/a", metrics="pv_count")
    assert expired.text == '{"error_code":111,"error_msg":"Access token expired"}'
    site_list = requests.get(
        emu.url + SITE_LIST_PATH, params={"access_token": token}, timeout=TIMEOUT
    )
    assert site_list.json()["error_code"] == 111


def test_access_token_ttl() -> None:
    with Emulator(today=TODAY, access_token_ttl_seconds=0.2) as emu:
        grant = refresh(emu, emu.seed_refresh_token).json()
        assert grant["expires_in"] == 0
        time.sleep(0.3)
        response = get_data(emu, grant["access_token"], method="trend/time/a")
        assert response.json()["error_code"] == 111


# --- getSiteList -----------------------------------------------------------------------------


def test_site_list_shape(emu: Emulator, token: str) -> None:
    response = requests.get(
        emu.url + SITE_LIST_PATH, params={"access_token": token}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    sites = response.json()["list"]
    assert len(sites) == 3
    assert [s["site_id"] for s in sites] == [16847648, 16901234, 17025518]
    for site in sites:
        assert set(site) == {"site_id", "domain", "status", "create_time", "sub_dir_list"}
        assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", site["create_time"])
    assert sites[0]["sub_dir_list"][0]["name"] == "帮助中心"
    assert sites[1]["domain"] == "www.example.com/blog"
    assert sites == emu.sites


def test_custom_sites(token: str) -> None:
    sites = [{"site_id": 99, "domain": "a.example", "status": 0,
              "create_time": "2024-01-01 00:00:00", "sub_dir_list": []}]  # fmt: skip
    with Emulator(today=TODAY, sites=sites) as emu:
        grant = refresh(emu, emu.seed_refresh_token).json()
        listed = requests.get(
            emu.url + SITE_LIST_PATH,
            params={"access_token": grant["access_token"]},
            timeout=TIMEOUT,
        ).json()
        assert listed == {"list": sites}
        other = get_data(emu, grant["access_token"], method="trend/time/a", site_id=SITE)
        assert other.json()["error_code"] == 6


# --- getData shapes --------------------------------------------------------------------------


@pytest.mark.parametrize("report", REPORTS, ids=[r.method for r in REPORTS])
def test_get_data_every_method(emu: Emulator, token: str, report: Report) -> None:
    method = report.method
    result = result_of(emu, token, method=method, metrics=metrics_of(method), max_results=0)
    layout = REPORTS_BY_METHOD[method].layout
    spec = REPORTS_BY_METHOD[method]

    if layout is Layout.KEYED_SUBREPORTS:
        assert set(result) == {*COMMON_TRACK_SUBREPORTS, "visitType"}
        return
    if layout is Layout.REALTIME:
        assert result["fields"] == ["null", *spec.metrics]
        return

    fields = result["fields"]
    assert isinstance(fields, list)
    assert fields[0] == spec.dimension_field
    assert fields[1:] == list(spec.columns)
    items = result["items"]
    assert isinstance(items, list)
    assert len(items) == 4
    assert items[2] == []
    assert items[3] == []
    assert len(items[0]) == len(items[1])
    assert len(items[0]) > 0
    for row in items[1]:
        assert len(row) == len(fields) - 1
        for value in row:
            assert isinstance(value, int | float) or value == "--" or _is_numeric_string(value)

    if spec.paged:
        assert result["total"] == len(items[0])
        assert result["timeSpan"] == ["2025/10/10"]
        sums = result["sum"]
        assert isinstance(sums, list)
        assert len(sums[0]) == len(fields) - 1
        assert sums[1] == []
        assert result["pageSum"] == [sums[0], [], []]
        assert ("offset" in result) == (not method.startswith("source/"))
    else:
        assert "total" not in result
        assert "offset" not in result

    if layout is Layout.DIMENSION and spec.paged:
        for cell_list in items[0]:
            cell = cell_list[0]
            assert set(cell) == {"name", *(k.api_key for k in spec.cell_keys)}
    if method == "overview/getDistrictRpt":
        assert all(isinstance(cell[0], str) for cell in items[0])
        assert fields == ["simple_district_title", "pv_count", "ratio"]


def _is_numeric_string(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value) is not None


def test_sum_counts_add_up(emu: Emulator, token: str) -> None:
    result = result_of(
        emu, token, method="visit/district/a", metrics="pv_count,visitor_count", max_results=0
    )
    rows = result["items"][1]
    pv_total = sum(int(row[0]) for row in rows if row[0] != "--")
    assert result["sum"][0][0] == pv_total


def test_engine_cells(emu: Emulator, token: str) -> None:
    result = result_of(emu, token, method="source/engine/a", metrics="pv_count", max_results=0)
    cells = [c[0] for c in result["items"][0]]
    names = {c["name"] for c in cells}
    assert names <= {"百度", "Google", "搜狗", "必应", "360搜索", "神马搜索"}
    for cell in cells:
        assert cell["source"] == f"search,{cell['engineId']}"
        assert isinstance(cell["engineId"], str)
        assert cell["subEngineId"] is None
        assert cell["url"]


def test_large_ids_are_strings(emu: Emulator, token: str) -> None:
    result = result_of(
        emu, token, method="visit/toppage/a", metrics="pv_count", start_date="20251001",
        end_date="20251014", max_results=0,
    )  # fmt: skip
    ids = [c[0]["pageId"] for c in result["items"][0]]
    assert all(isinstance(i, str) and i.isdigit() for i in ids)
    assert any(int(i) > 2**63 for i in ids)


def test_district_area_codes(emu: Emulator, token: str) -> None:
    result = result_of(emu, token, method="visit/district/a", metrics="pv_count", max_results=0)
    cells = {c[0]["name"]: c[0]["area"] for c in result["items"][0]}
    known = {"北京": "province,1", "广东": "province,4", "浙江": "province,32"}
    for name, area in known.items():
        if name in cells:
            assert cells[name] == area


def test_paging_default_all_and_walk(emu: Emulator, token: str) -> None:
    common = {
        "method": "visit/toppage/a",
        "metrics": "pv_count",
        "start_date": "20251001",
        "end_date": "20251014",
    }
    everything = result_of(emu, token, max_results=0, **common)
    total = everything["total"]
    assert isinstance(total, int)
    assert total > 20
    assert len(everything["items"][0]) == total

    default = result_of(emu, token, **common)
    assert len(default["items"][0]) == 20
    assert default["total"] == total

    walked = []
    start = 0
    while start < total:
        page = result_of(emu, token, start_index=start, max_results=7, **common)
        assert page["offset"] == start
        rows = page["items"][0]
        assert len(rows) == min(7, total - start)
        walked += rows
        start += len(rows)
    assert walked == everything["items"][0]


def test_page_size_default_setting(token: str) -> None:
    with Emulator(today=TODAY, page_size_default=5) as emu:
        grant = refresh(emu, emu.seed_refresh_token).json()
        result = result_of(emu, grant["access_token"], method="visit/toppage/a", metrics="pv_count")
        assert len(result["items"][0]) == 5


def test_time_trend_overview_ascending(emu: Emulator, token: str) -> None:
    result = result_of(
        emu, token, method="overview/getTimeTrendRpt", metrics="pv_count,visitor_count",
        start_date="20250901", end_date="20251014", max_results=5,
    )  # fmt: skip
    labels = [c[0] for c in result["items"][0]]
    assert len(labels) == 44
    assert labels[0] == "2025/09/01"
    assert labels[-1] == "2025/10/14"
    assert labels == sorted(labels)
    assert set(result) == {"timeSpan", "fields", "items"}
    assert result["timeSpan"] == ["2025/09/01 - 2025/10/14"]


def test_trend_time_newest_first(emu: Emulator, token: str) -> None:
    result = result_of(
        emu, token, method="trend/time/a", metrics="pv_count", gran="day",
        start_date="20250901", end_date="20251014",
    )  # fmt: skip
    labels = [c[0] for c in result["items"][0]]
    assert result["total"] == 44
    assert len(labels) == 20
    assert labels[0] == "2025/10/14"
    assert labels[1] == "2025/10/13"
    assert labels == sorted(labels, reverse=True)


def test_trend_time_hour_single_day(emu: Emulator, token: str) -> None:
    result = result_of(emu, token, method="trend/time/a", metrics="pv_count", gran="hour",
                       max_results=0)  # fmt: skip
    labels = [c[0] for c in result["items"][0]]
    assert len(labels) == 24
    assert labels[0] == "23:00 - 23:59"
    assert labels[-1] == "00:00 - 00:59"
    hour_pv = sum(int(r[0]) for r in result["items"][1] if r[0] != "--")
    day = result_of(emu, token, method="trend/time/a", metrics="pv_count", gran="day")
    assert hour_pv == day["sum"][0][0]


def test_trend_time_week_and_month_labels(emu: Emulator, token: str) -> None:
    month = result_of(
        emu, token, method="trend/time/a", metrics="pv_count", gran="month",
        start_date="20250826", end_date="20251014", max_results=0,
    )  # fmt: skip
    labels = [c[0] for c in month["items"][0]]
    assert labels == [
        "2025/10/01 - 2025/10/14",
        "2025/09/01 - 2025/09/30",
        "2025/08/26 - 2025/08/31",
    ]
    week = result_of(
        emu, token, method="trend/time/a", metrics="pv_count", gran="week",
        start_date="20251001", end_date="20251014", max_results=0,
    )  # fmt: skip
    week_labels = [c[0] for c in week["items"][0]]
    assert week_labels == [
        "2025/10/13 - 2025/10/14",
        "2025/10/06 - 2025/10/12",
        "2025/10/01 - 2025/10/05",
    ]


def test_days_before_creation_are_dashes(emu: Emulator, token: str) -> None:
    result = result_of(
        emu, token, method="overview/getTimeTrendRpt", metrics="pv_count,bounce_ratio",
        site_id=NEW_SITE, start_date="20250825", end_date="20250905",
    )  # fmt: skip
    rows = result["items"][1]
    assert rows[:7] == [["--", "--"]] * 7
    assert any(row[0] != "--" for row in rows[7:])
    empty = result_of(emu, token, method="visit/district/a", metrics="pv_count",
                      site_id=NEW_SITE, start_date="20250820", end_date="20250820")  # fmt: skip
    assert empty["total"] == 0
    assert empty["items"] == [[], [], [], []]


def test_value_forms_mixed(emu: Emulator, token: str) -> None:
    method = "overview/getTimeTrendRpt"
    result = result_of(emu, token, method=method, metrics=metrics_of(method),
                       start_date="20250101", end_date="20251014")  # fmt: skip
    values = [v for row in result["items"][1] for v in row]
    assert any(isinstance(v, int) for v in values)
    assert any(isinstance(v, float) for v in values)
    assert any(_is_numeric_string(v) for v in values)
    assert "--" in values
    no_traffic_days = [row for row in result["items"][1] if row == ["--"] * 6]
    assert no_traffic_days


def test_common_track_subreports(emu: Emulator, token: str) -> None:
    result = result_of(emu, token, method="overview/getCommonTrackRpt", metrics="pv_count")
    for key in COMMON_TRACK_SUBREPORTS:
        sub = result[key]
        assert isinstance(sub, dict)
        assert sub["fields"][1:] == ["pv_count", "ratio"]
        assert len(sub["items"]) <= 10
        for row in sub["items"]:
            assert len(row) == 3
            assert isinstance(row[0], str)
    assert isinstance(result["visitPage"]["items"][0][1], str)
    assert isinstance(result["sourceSite"]["items"][0][1], int)
    visit_type = result["visitType"]
    assert isinstance(visit_type, dict)
    assert set(visit_type) == set(COMMON_TRACK_VISITOR_TYPES)
    assert list(visit_type["oldVisitor"]) == [
        "pv_count", "visitor_count", "avg_visit_time", "bounce_ratio", "avg_visit_pages", "ratio",
    ]  # fmt: skip


def test_common_track_dashes_without_traffic(emu: Emulator, token: str) -> None:
    result = result_of(emu, token, method="overview/getCommonTrackRpt", site_id=NEW_SITE,
                       start_date="20250820", end_date="20250820")  # fmt: skip
    new_visitor = result["visitType"]["newVisitor"]
    assert new_visitor["pv_count"] == "--"
    assert new_visitor["ratio"] == 0
    assert result["word"]["items"] == []


def test_realtime_shape_and_paging(emu: Emulator, token: str) -> None:
    metrics = "start_time,area,source,access_page,searchword,ip,visitorId,visit_time,visit_pages"
    result = result_of(emu, token, method="trend/latest/a", metrics=metrics,
                       order="start_time,desc", max_results=10)  # fmt: skip
    assert result["fields"] == ["null", *metrics.split(",")]
    details, rows = result["items"]
    assert len(details) == len(rows) == 10
    assert isinstance(result["total"], int)
    assert result["total"] > 10
    detail = details[0][0]["detail"]
    for key in ("accessPage", "fromType", "paths", "visitorType", "lastVisitTime", "osType"):
        assert key in detail
    assert rows[0][7] == "正在访问"
    assert isinstance(rows[0][8], str)
    starts = [row[0] for row in rows]
    assert starts == sorted(starts, reverse=True)
    assert any(isinstance(row[7], int) for row in result_of(
        emu, token, method="trend/latest/a", metrics=metrics, max_results=0)["items"][1]
    )  # fmt: skip

    ascending = result_of(emu, token, method="trend/latest/a", metrics=metrics,
                          order="start_time,asc", max_results=0)  # fmt: skip
    asc_starts = [row[0] for row in ascending["items"][1]]
    assert asc_starts == sorted(asc_starts)
    second_page = result_of(emu, token, method="trend/latest/a", metrics=metrics,
                            start_index=10, max_results=10)  # fmt: skip
    assert second_page["items"][1][0][0] <= starts[-1]


def test_filters_validate_and_scale(emu: Emulator, token: str) -> None:
    base = {"method": "visit/district/a", "metrics": "pv_count", "max_results": 0}
    bad = get_data(emu, token, source="nowhere", **base)
    assert bad.json() == {"error_code": 100, "error_msg": "Invalid parameter"}
    everything = result_of(emu, token, **base)
    narrowed = result_of(emu, token, source="search", **base)
    assert narrowed["sum"][0][0] < everything["sum"][0][0]
    bad_gran = get_data(emu, token, method="trend/time/a", metrics="pv_count", gran="year")
    assert bad_gran.json()["error_code"] == 100


def test_future_end_date_clamped(emu: Emulator, token: str) -> None:
    result = result_of(emu, token, method="trend/time/a", metrics="pv_count",
                       start_date="20251010", end_date="20251231", max_results=0)  # fmt: skip
    assert result["timeSpan"] == ["2025/10/10 - 2025/10/15"]
    assert result["total"] == 6


def test_post_form_and_order(emu: Emulator, token: str) -> None:
    form = {"access_token": token, "site_id": SITE, "method": "visit/district/a",
            "metrics": "pv_count", "start_date": "20251010", "end_date": "20251010",
            "max_results": 0, "order": "pv_count,asc"}  # fmt: skip
    posted = requests.post(emu.url + DATA_PATH, data=form, timeout=TIMEOUT)
    assert posted.status_code == 200
    values = [int(row[0]) for row in posted.json()["result"]["items"][1]]
    assert values == sorted(values)
    default = result_of(emu, token, method="visit/district/a", metrics="pv_count", max_results=0)
    default_values = [int(row[0]) for row in default["items"][1]]
    assert default_values == sorted(default_values, reverse=True)


def test_lenient_dashed_dates(emu: Emulator, token: str) -> None:
    dashed = result_of(emu, token, method="trend/time/a", metrics="pv_count",
                       start_date="2025-10-10", end_date="2025-10-10")  # fmt: skip
    plain = result_of(emu, token, method="trend/time/a", metrics="pv_count")
    assert dashed == plain


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"method": "trend/nothing/a"}, 3),
        ({"method": "trend/time/a", "site_id": 1}, 6),
        ({"method": "trend/time/a", "metrics": "pv_count,nonsense"}, 100),
        ({"method": "visit/toppage/a", "metrics": "bounce_ratio"}, 100),
        ({"method": "trend/time/a", "start_date": "2025/10/10"}, 100),
        ({"method": "trend/time/a", "start_date": "20251011", "end_date": "20251010"}, 100),
        ({"method": "trend/time/a", "max_results": "-1"}, 100),
    ],
)
def test_data_errors(emu: Emulator, token: str, params: dict[str, Any], code: int) -> None:
    response = get_data(emu, token, **params)
    assert response.status_code == 200
    assert response.json()["error_code"] == code
    log = emu.request_log[-1]
    assert log.error_code == code


def test_error_http_status_switch(emu: Emulator, token: str) -> None:
    emu.faults.error_http_status = 403
    response = get_data(emu, token, method="trend/time/a", site_id=1)
    assert response.status_code == 403
    assert response.json()["error_code"] == 6


# --- Encoding ------------------------------------------------------------------------------


def test_php_escaping_by_default(emu: Emulator, token: str) -> None:
    response = get_data(emu, token, method="visit/district/a", metrics="pv_count")
    assert "\\/" in response.text
    assert "\\u" in response.text
    assert response.content.isascii()


def test_raw_utf8_switch(emu: Emulator, token: str) -> None:
    emu.faults.raw_utf8 = True
    response = get_data(emu, token, method="visit/district/a", metrics="pv_count")
    assert "\\/" not in response.text
    assert "province," in response.text
    assert not response.content.isascii()
    assert response.json()["result"]["timeSpan"] == ["2025/10/10"]


# --- Faults --------------------------------------------------------------------------------


def test_fault_error_code_first_n(emu: Emulator, token: str) -> None:
    failure = emu.faults.add_failure(
        Failure(FailureKind.ERROR_CODE, error_code=2, method="trend/time/a", first=2)
    )
    codes = [
        get_data(emu, token, method="trend/time/a", metrics="pv_count").json().get("error_code")
        for _ in range(3)
    ]
    assert codes == [2, 2, None]
    other = get_data(emu, token, method="visit/district/a", metrics="pv_count")
    assert "result" in other.json()
    assert failure.fired == 2
    assert failure.matched == 3


def test_fault_nth_call_with_status(emu: Emulator, token: str) -> None:
    emu.faults.add_failure(Failure(FailureKind.ERROR_CODE, error_code=1, status=500, nth=2))
    statuses = [get_data(emu, token, method="trend/time/a").status_code for _ in range(3)]
    assert statuses == [200, 500, 200]


@pytest.mark.parametrize("code", [1, 2, 3, 4, 6, 100, 110, 111])
def test_fault_every_error_code(emu: Emulator, token: str, code: int) -> None:
    emu.faults.add_failure(Failure(FailureKind.ERROR_CODE, error_code=code, first=1))
    body = get_data(emu, token, method="trend/time/a").json()
    assert body["error_code"] == code
    assert isinstance(body["error_msg"], str)
    assert body["error_msg"]


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_fault_http_status_html(emu: Emulator, token: str, status: int) -> None:
    emu.faults.add_failure(Failure(FailureKind.HTTP_STATUS, status=status, retry_after="3"))
    response = get_data(emu, token, method="trend/time/a")
    assert response.status_code == status
    assert response.headers["Content-Type"] == "text/html"
    assert response.headers["Retry-After"] == "3"
    assert response.text.startswith("<html>")


def test_fault_timeout(emu: Emulator, token: str) -> None:
    emu.faults.add_failure(Failure(FailureKind.TIMEOUT, delay_seconds=1.0, first=1))
    with pytest.raises(requests.Timeout):
        requests.get(
            emu.url + DATA_PATH,
            params={"access_token": token, "method": "trend/time/a", "site_id": str(SITE),
                    "start_date": "20251010", "end_date": "20251010"},
            timeout=0.3,
        )  # fmt: skip
    assert get_data(emu, token, method="trend/time/a").status_code == 200


def test_fault_connection_reset(emu: Emulator, token: str) -> None:
    emu.faults.add_failure(Failure(FailureKind.RESET, first=1))
    with pytest.raises(requests.ConnectionError):
        get_data(emu, token, method="trend/time/a")
    assert get_data(emu, token, method="trend/time/a").status_code == 200
    assert emu.request_log[0].fault == "reset"


def test_fault_truncated_json(emu: Emulator, token: str) -> None:
    emu.faults.add_failure(Failure(FailureKind.TRUNCATED, first=1))
    response = get_data(emu, token, method="trend/time/a")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_fault_filters_site_date_endpoint(emu: Emulator, token: str) -> None:
    emu.faults.add_failure(
        Failure(FailureKind.ERROR_CODE, error_code=6, site_id="16901234", start_date="20251009")
    )
    emu.faults.add_failure(Failure(FailureKind.ERROR_CODE, error_code=2, endpoint="getSiteList"))
    hit = get_data(emu, token, method="trend/time/a", site_id=16901234, start_date="20251009")
    other_day = get_data(emu, token, method="trend/time/a", site_id=16901234)
    other_site = get_data(emu, token, method="trend/time/a", start_date="20251009")
    assert hit.json()["error_code"] == 6
    assert "result" in other_day.json()
    assert "result" in other_site.json()
    site_list = requests.get(
        emu.url + SITE_LIST_PATH, params={"access_token": token}, timeout=TIMEOUT
    )
    assert site_list.json()["error_code"] == 2


def test_fault_token_endpoint(emu: Emulator) -> None:
    emu.faults.add_failure(Failure(FailureKind.HTTP_STATUS, status=502, endpoint="token", first=1))
    failed = refresh(emu, emu.seed_refresh_token)
    assert failed.status_code == 502
    # The failure responded before the grant ran, so the seed token is still unused.
    assert refresh(emu, emu.seed_refresh_token).status_code == 200


def test_page_size_cap(emu: Emulator, token: str) -> None:
    emu.faults.page_size_cap = 7
    for max_results in (0, 20):
        result = result_of(emu, token, method="visit/toppage/a", metrics="pv_count",
                           max_results=max_results, start_date="20251001")  # fmt: skip
        assert len(result["items"][0]) == 7
        assert result["total"] > 7


def test_ignore_max_results(emu: Emulator, token: str) -> None:
    emu.faults.ignore_max_results = True
    result = result_of(emu, token, method="visit/toppage/a", metrics="pv_count",
                       max_results=5, start_index=3, start_date="20251001")  # fmt: skip
    assert len(result["items"][0]) == result["total"] - 3


def test_shuffle_metrics(emu: Emulator, token: str) -> None:
    plain = result_of(
        emu, token, method="visit/district/a", metrics="pv_count,visitor_count,ip_count"
    )
    emu.faults.shuffle_metrics = True
    shuffled = result_of(emu, token, method="visit/district/a",
                         metrics="pv_count,visitor_count,ip_count")  # fmt: skip
    assert shuffled["fields"][1:] != plain["fields"][1:]
    assert sorted(shuffled["fields"]) == sorted(plain["fields"])
    position = shuffled["fields"].index("pv_count") - 1
    assert shuffled["items"][1][0][position] == plain["items"][1][0][0]


def test_extra_cell_keys(emu: Emulator, token: str) -> None:
    emu.faults.extra_cell_keys = True
    result = result_of(emu, token, method="visit/district/a", metrics="pv_count")
    cell = result["items"][0][0][0]
    assert set(cell) - {"name", "area"} == {"layer", "tip"}


def test_omit_offset_and_total(emu: Emulator, token: str) -> None:
    emu.faults.omit_offset = True
    emu.faults.omit_total = True
    result = result_of(emu, token, method="visit/district/a", metrics="pv_count")
    assert "offset" not in result
    assert "total" not in result
    assert "sum" in result


def test_latency(emu: Emulator, token: str) -> None:
    emu.faults.latency_seconds = 0.2
    began = time.monotonic()
    get_data(emu, token, method="trend/time/a")
    assert time.monotonic() - began >= 0.2


def test_rate_limit(emu: Emulator, token: str) -> None:
    emu.faults.rate_limit_per_second = 3
    codes = [get_data(emu, token, method="trend/time/a").json().get("error_code")
             for _ in range(5)]  # fmt: skip
    assert codes[:3] == [None, None, None]
    assert 4 in codes[3:]
    time.sleep(1.05)
    assert "result" in get_data(emu, token, method="trend/time/a").json()


def test_replace_fault_plan_while_running(emu: Emulator, token: str) -> None:
    emu.faults = FaultPlan(failures=[Failure(FailureKind.ERROR_CODE, error_code=111)])
    assert get_data(emu, token, method="trend/time/a").json()["error_code"] == 111
    emu.faults.clear_failures()
    assert "result" in get_data(emu, token, method="trend/time/a").json()


def test_failure_spec_parsing() -> None:
    failure = Failure.parse("code=111,method=trend/time/a,site=16847648,date=20251010,first=2")
    assert failure.kind is FailureKind.ERROR_CODE
    assert failure.error_code == 111
    assert failure.method == "trend/time/a"
    assert failure.site_id == "16847648"
    assert failure.start_date == "20251010"
    assert failure.first == 2
    http = Failure.parse("http=429,retry_after=5,nth=3,endpoint=any")
    assert (http.status, http.retry_after, http.nth, http.endpoint) == (429, "5", 3, "any")
    assert Failure.parse("timeout=2.5").delay_seconds == 2.5
    with pytest.raises(ValueError, match="exactly one"):
        Failure.parse("reset,truncated")
    with pytest.raises(ValueError, match="unknown keys"):
        Failure.parse("reset,colour=red")


def test_cli_flags_build_fault_plan() -> None:
    args = build_parser().parse_args([
        "--port", "0", "--latency-ms", "250", "--rate-limit", "5", "--sticky-refresh-token",
        "--drop-refresh-responses", "1", "--page-size-cap", "10", "--ignore-max-results",
        "--shuffle-metrics", "--extra-cell-keys", "--raw-utf8", "--omit-offset", "--omit-total",
        "--error-status", "400", "--fail", "reset,nth=2",
    ])  # fmt: skip
    plan = fault_plan_from(args)
    assert plan.latency_seconds == 0.25
    assert plan.rate_limit_per_second == 5
    assert plan.sticky_refresh_token
    assert plan.drop_refresh_responses == 1
    assert plan.page_size_cap == 10
    assert plan.ignore_max_results
    assert plan.shuffle_metrics
    assert plan.extra_cell_keys
    assert plan.raw_utf8
    assert plan.omit_offset
    assert plan.omit_total
    assert plan.error_http_status == 400
    assert plan.failures[0].kind is FailureKind.RESET
    assert plan.failures[0].nth == 2


def test_non_loopback_host_rejected() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        Emulator(host="0.0.0.0")


# --- Request log and determinism -------------------------------------------------------------


def test_request_log_redacts_access_token(emu: Emulator, token: str) -> None:
    get_data(emu, token, method="trend/time/a", metrics="pv_count")
    refresh(emu, "122.unknown")
    data_call, token_call = emu.request_log
    assert data_call.params["access_token"] == "***"
    assert token not in repr(data_call)
    assert data_call.path == DATA_PATH
    assert data_call.http_method == "GET"
    assert data_call.status == 200
    assert data_call.error_code is None
    assert data_call.grant_type is None
    assert token_call.grant_type == "refresh_token"
    assert token_call.status == 400
    assert token_call.oauth_error == "invalid_grant"
    assert token_call.time >= data_call.time
    emu.clear_request_log()
    assert emu.request_log == []


def test_same_request_same_body(emu: Emulator, token: str) -> None:
    for method in (
        "visit/toppage/a",
        "trend/time/a",
        "trend/latest/a",
        "overview/getCommonTrackRpt",
    ):
        params = {"method": method, "metrics": metrics_of(method), "start_date": "20251001",
                  "end_date": "20251014", "max_results": 0}  # fmt: skip
        first = get_data(emu, token, **params).content
        second = get_data(emu, token, **params).content
        assert first == second
    with Emulator(today=TODAY) as other:
        other_token = refresh(other, other.seed_refresh_token).json()["access_token"]
        params = {"method": "visit/toppage/a", "metrics": "pv_count", "max_results": 0}
        assert (
            get_data(other, other_token, **params).content == get_data(emu, token, **params).content
        )


def test_day_rows_stable_across_ranges(emu: Emulator, token: str) -> None:
    wide = result_of(emu, token, method="overview/getTimeTrendRpt", metrics="pv_count",
                     start_date="20251001", end_date="20251014")  # fmt: skip
    single = result_of(emu, token, method="overview/getTimeTrendRpt", metrics="pv_count",
                       start_date="20251010", end_date="20251010")  # fmt: skip
    wide_pv = wide["items"][1][9][0]
    single_pv = single["items"][1][0][0]
    assert str(wide_pv) == str(single_pv)


# --- Command line ----------------------------------------------------------------------------


def test_command_line_serves_and_stops() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tap_baidu_tongji.emulator", "--port", "0", "--today", "2025-10-15"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = ""
        while "client_id=" not in banner:
            line = process.stderr.readline()
            assert line, f"emulator exited before printing its credentials: {banner}"
            banner += line
        match = re.search(r"http://127\.0\.0\.1:\d+", banner)
        assert match, banner
        url = match.group(0)
        assert "client_id=demo-api-key client_secret=demo-secret-key" in banner
        grant = requests.post(
            url + TOKEN_PATH,
            data={"grant_type": "refresh_token", "refresh_token": "demo-refresh-token",
                  "client_id": "demo-api-key", "client_secret": "demo-secret-key"},
            timeout=TIMEOUT,
        ).json()  # fmt: skip
        access_token = grant["access_token"]
        listed = requests.get(url + SITE_LIST_PATH, params={"access_token": access_token},
                              timeout=TIMEOUT)  # fmt: skip
        assert listed.status_code == 200
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "getSiteList" in stderr
    assert access_token not in stderr
    assert "access_token=***" in stderr
    assert "stopping" in stderr
