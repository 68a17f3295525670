"""The fewest requests a backfill can make, from the report table and the emulator's row counts.

This module reads the report table (`tap_baidu_tongji.reports`) and asks the emulator for
`total`; it does not reuse the tap's paging or windowing code, so a tap that sends extra
requests shows a ratio above 1.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from benchmarks.harness import GET_DATA_PATH, SITE_LIST_PATH, access_token
from tap_baidu_tongji.emulator import Emulator
from tap_baidu_tongji.reports import Layout, Report

CENSUS_THREADS = 4


@dataclass
class MinimumRequests:
    """The minimum request count of a backfill, with its parts."""

    token_refreshes: int = 1
    site_lists: int = 1
    by_stream: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """All requests: the token refresh, getSiteList and every report request."""
        return self.token_refreshes + self.site_lists + sum(self.by_stream.values())


def _pages(total: int, page_size: int) -> int:
    # A listing with no rows still takes one request to learn that it is empty.
    return max(1, math.ceil(total / page_size))


def _is_range_report(report: Report) -> bool:
    """Whether one request returns every day: rows labelled by day, week or month."""
    return report.layout is Layout.DAILY_ROWS and report.gran in ("day", "week", "month")


class _Census:
    """Row counts (`total`) from an emulator, one getData call with `max_results=1` each."""

    def __init__(self, emu: Emulator) -> None:
        self._url = emu.url
        self._token = access_token(emu.url, emu)
        self._session = requests.Session()

    def site_ids(self) -> list[int]:
        response = self._session.get(
            self._url + SITE_LIST_PATH, params={"access_token": self._token}, timeout=30
        )
        response.raise_for_status()
        return [int(site["site_id"]) for site in response.json()["list"]]

    def total(self, report: Report, site_id: int, start: dt.date, end: dt.date) -> int:
        params = {
            "access_token": self._token,
            "site_id": str(site_id),
            "method": report.method,
            "metrics": ",".join(report.metrics),
            **dict(report.fixed_params),
            "start_index": "0",
            "max_results": "1",
        }
        if report.layout is not Layout.REALTIME:
            params["start_date"] = start.strftime("%Y%m%d")
            params["end_date"] = end.strftime("%Y%m%d")
        response = self._session.get(self._url + GET_DATA_PATH, params=params, timeout=60)
        response.raise_for_status()
        body = response.json()
        if "result" not in body:
            raise RuntimeError(f"census request for {report.method} failed: {body}")
        return int(body["result"]["total"])


def minimum_requests(
    emu: Emulator, reports: Iterable[Report], first: dt.date, last: dt.date, page_size: int
) -> MinimumRequests:
    """Count the requests a backfill of [first, last] of every report needs at least.

    Per site: one range request per daily-rows report (more when its rows exceed a page),
    one request per day and page for every other dated report, and the realtime report's
    pages. Plus one getSiteList and one token refresh for the run.
    """
    census = _Census(emu)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    minimum = MinimumRequests()
    jobs: list[tuple[str, Report, int, dt.date, dt.date]] = []
    for site_id in census.site_ids():
        for report in reports:
            if report.layout is Layout.REALTIME or _is_range_report(report):
                jobs.append((report.stream_name, report, site_id, first, last))
            else:
                jobs.extend((report.stream_name, report, site_id, day, day) for day in days)

    def count(job: tuple[str, Report, int, dt.date, dt.date]) -> tuple[str, int]:
        stream, report, site_id, start, end = job
        if not report.paged:
            return stream, 1
        return stream, _pages(census.total(report, site_id, start, end), page_size)

    with ThreadPoolExecutor(CENSUS_THREADS) as pool:
        for stream, requests_needed in pool.map(count, jobs):
            minimum.by_stream[stream] = minimum.by_stream.get(stream, 0) + requests_needed
    return minimum
