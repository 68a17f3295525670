"""Streams: the site list (the parent) and one report stream per report table entry."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_baidu_tongji.client import TongjiStream, result_of
from tap_baidu_tongji.dates import (
    SyncWindow,
    beijing_today,
    parse_beijing_timestamp,
    period_start,
    sync_window,
    to_api_date,
)
from tap_baidu_tongji.errors import (
    MalformedResponseError,
    PermissionDeniedError,
    RetriesExhaustedError,
    TransientAPIError,
    describe_request,
)
from tap_baidu_tongji.prefetch import ordered_prefetch
from tap_baidu_tongji.progress import SiteProgress
from tap_baidu_tongji.records import (
    MalformedResultError,
    Record,
    common_track_records,
    daily_records,
    dimension_records,
    hour_records,
    period_records,
    realtime_records,
)
from tap_baidu_tongji.reports import Layout, Report
from tap_baidu_tongji.schemas import SITES_SCHEMA, primary_keys, report_schema
from tap_baidu_tongji.settings import configured_dates, parse_site_ids
from tap_baidu_tongji.sharding import sites_in_shard

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

REPORT_PATH = "/report/getData"
STATE_MESSAGE_INTERVAL_SECONDS = 10.0
"""Mid-partition STATE messages at most this often, so a killed backfill resumes near its end."""


class SitesStream(TongjiStream):
    """站点列表: every site of the account from config/getSiteList; parent of the reports."""

    name = "sites"
    path = "/config/getSiteList"
    primary_keys: ClassVar[list[str]] = ["site_id"]
    replication_key = None
    schema = SITES_SCHEMA

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Read the site list once and yield the sites selected by `site_ids` and the shard."""
        body = self.request_json(self.path, {})
        sites = body.get("list")
        if not isinstance(sites, list):
            message = f"Tongji API response to config/getSiteList has no `list`: {str(body)[:200]}"
            raise MalformedResponseError(message)

        wanted = parse_site_ids(self.config.get("site_ids"))
        available = {int(site["site_id"]) for site in sites if "site_id" in site}
        missing = [site_id for site_id in wanted if site_id not in available]
        if missing:
            message = (
                f"site_ids lists {', '.join(map(str, missing))}, which config/getSiteList does not "
                f"return for this account (it returns {', '.join(map(str, sorted(available)))}). "
                "Remove them from site_ids, or authorize with the Baidu account that owns them: "
                "sites shared with you (权限站点) and aggregate sites (汇总网站) are not listed."
            )
            # The SDK's CLI prints a ConfigValidationError as one line, without a traceback.
            raise ConfigValidationError(message, errors=[message])

        selected = [site for site in sites if not wanted or int(site["site_id"]) in wanted]
        for site in sites_in_shard(selected, self.config, self.logger):
            yield _site_record(site)

    def get_child_context(self, record: Record, context: Context | None) -> dict[str, Any]:
        """Give each report stream one partition per site."""
        return {"site_id": record["site_id"]}


def _beijing_iso(value: Any) -> str | None:
    if not value:
        return None
    try:
        return parse_beijing_timestamp(str(value)).isoformat()
    except ValueError:
        return str(value)


def _site_record(site: Mapping[str, Any]) -> Record:
    record = dict(site)
    record["site_id"] = int(site["site_id"])
    record["create_time"] = _beijing_iso(site.get("create_time"))
    record["sub_dir_list"] = [
        _site_record_sub_dir(entry) for entry in site.get("sub_dir_list") or []
    ]
    return record


def _site_record_sub_dir(entry: Mapping[str, Any]) -> Record:
    record = dict(entry)
    record["create_time"] = _beijing_iso(entry.get("create_time"))
    record["sub_dir_list"] = [
        _site_record_sub_dir(child) for child in entry.get("sub_dir_list") or []
    ]
    return record


class ReportStream(TongjiStream):
    """One report/getData method, partitioned by site, incremental by Beijing day.

    The bookmark of a site is the last day whose rows were all emitted. It moves only after a
    day is complete (including days with no rows), never with single records.
    """

    parent_stream_type = SitesStream
    path = REPORT_PATH
    replication_key = "date"
    is_sorted = True
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    """Records come from the report table that also builds the schema, and hold JSON types
    already: strings, numbers, null, and `cell_extra` as the API's object. The SDK's per-value
    conformance would change nothing, and it took a quarter of the tap's CPU in benchmark c
    (docs/benchmarks.md)."""

    def __init__(self, tap: Tap, report: Report) -> None:
        """Build the stream of one report table entry."""
        self.report = report
        super().__init__(tap=tap, name=report.stream_name, schema=report_schema(report))
        self.primary_keys = primary_keys(report)
        self.selected_by_default = report.selected_by_default
        self._last_state_message = time.monotonic()
        self._permission_warned: set[int] = set()

    def request_params(self, site_id: int) -> dict[str, Any]:
        """Return the parameters every request of this stream sends for one site."""
        return {
            "site_id": site_id,
            "method": self.report.method,
            "metrics": ",".join(self.report.metrics),
            **dict(self.report.fixed_params),
        }

    def sync_window(self, context: Context) -> SyncWindow:
        """Return the days this run reads for one site."""
        today = beijing_today()
        start, end = configured_dates(self.config, today)
        bookmark_text = self.get_context_state(context).get("replication_key_value")
        bookmark = dt.date.fromisoformat(bookmark_text[:10]) if bookmark_text else None
        return sync_window(
            start_date=start,
            end_date=end,
            bookmark=bookmark,
            lookback_days=int(self.config.get("lookback_days", 3)),
            today=today,
            include_today=bool(self.config.get("include_today", False)),
        )

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Read the window of one site, oldest day first, and move the bookmark day by day."""
        assert context is not None, "report streams always run with a site context"
        site_id = int(context["site_id"])
        window = self.sync_window(context)
        if window.day_count == 0:
            self.logger.info("Site %s: no new days to read.", site_id)
            return

        progress = SiteProgress(self.logger, site_id, window.day_count, lambda: self.request_count)
        progress.start(window.start.isoformat(), window.end.isoformat())
        previous_day = window.start - dt.timedelta(days=1)
        try:
            for day, records in self.read_days(site_id, window):
                yield from records
                self.mark_day_read(context, day)
                # Week and month reports yield the whole window as one step.
                progress.days_done(len(records), day_count=(day - previous_day).days)
                previous_day = day
        except PermissionDeniedError as error:
            if not self.report.account_requirement:
                self._stop_after_error(error)
            if site_id not in self._permission_warned:
                self.logger.warning(
                    "Skipping %s for site %s: the account may not read it (%s). This report "
                    "needs %s.",
                    self.name,
                    site_id,
                    error,
                    self.report.account_requirement,
                )
                self._permission_warned.add(site_id)
            return
        except Exception as error:
            self._stop_after_error(error)
        progress.finish()

    def _stop_after_error(self, error: Exception) -> NoReturn:
        """Emit the bookmark of the days read so far, then stop the run with `error`.

        Every day up to that bookmark was emitted in full, so the next run resumes after it
        (minus the look-back) instead of at start_date. The SDK writes no STATE on failure.
        """
        self._write_state_message()
        if isinstance(error, TransientAPIError):
            raise RetriesExhaustedError(error) from error
        raise error

    def read_days(self, site_id: int, window: SyncWindow) -> Iterator[tuple[dt.date, list[Record]]]:
        """Yield each day of the window with its complete records, oldest first.

        Daily-row reports need one range request. Other reports need one request per day;
        those days are fetched ahead on the tap's fetch threads and yielded in date order.
        """
        if self.report.layout is Layout.DAILY_ROWS and self.report.gran in ("week", "month"):
            yield from self._read_periods(site_id, window)
            return
        if self.report.layout is Layout.DAILY_ROWS and self.report.gran != "hour":
            yield from self._read_daily_rows(site_id, window)
            return

        workers = int(self.config.get("max_concurrent_requests", 1))
        yield from ordered_prefetch(
            self._tap.fetch_executor,  # type: ignore[attr-defined]
            lambda day: self.read_one_day(site_id, day),
            window.days(),
            max_in_flight=workers * 2,
        )

    def read_one_day(self, site_id: int, day: dt.date) -> list[Record]:
        """Request one day of a dimension report (all pages) and convert it."""
        params = {
            **self.request_params(site_id),
            "start_date": to_api_date(day),
            "end_date": to_api_date(day),
        }
        records: list[Record] = []
        for result in self._results(params):
            records.extend(self._convert(result, params))
        iso_day = day.isoformat()
        for record in records:
            record["site_id"] = site_id
            record["date"] = iso_day
        return records

    def _read_daily_rows(
        self, site_id: int, window: SyncWindow
    ) -> Iterator[tuple[dt.date, list[Record]]]:
        params = {
            **self.request_params(site_id),
            "start_date": to_api_date(window.start),
            "end_date": to_api_date(window.end),
        }
        by_day: dict[dt.date, list[Record]] = {}
        for result in self._results(params):
            try:
                pairs = daily_records(result, self.report)
            except MalformedResultError as error:
                raise _malformed(error, params, result) from None
            for day, record in pairs:
                if window.start <= day <= window.end:
                    record["site_id"] = site_id
                    record["date"] = day.isoformat()
                    by_day.setdefault(day, []).append(record)
        for day in window.days():
            yield day, by_day.get(day, [])

    def _read_periods(
        self, site_id: int, window: SyncWindow
    ) -> Iterator[tuple[dt.date, list[Record]]]:
        """Read whole weeks or months: the range starts on the first day of its period.

        Starting on a period boundary keeps each period's key (`date` = its first day)
        stable across runs, so a re-read replaces the running period instead of adding a row.
        """
        first_day = period_start(window.start, self.report.gran)
        params = {
            **self.request_params(site_id),
            "start_date": to_api_date(first_day),
            "end_date": to_api_date(window.end),
        }
        records: list[Record] = []
        for result in self._results(params):
            try:
                periods = period_records(result, self.report)
            except MalformedResultError as error:
                raise _malformed(error, params, result) from None
            for first, last, record in periods:
                record["site_id"] = site_id
                record["date"] = first.isoformat()
                record["period_end"] = last.isoformat()
                records.append(record)
        records.sort(key=lambda record: str(record["date"]))
        yield window.end, records

    def _results(self, params: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        if self.report.paged:
            yield from self.iterate_pages(self.path, params)
        else:
            yield result_of(self.request_json(self.path, params), params)

    def _convert(self, result: Mapping[str, Any], params: Mapping[str, Any]) -> list[Record]:
        try:
            if self.report.layout is Layout.KEYED_SUBREPORTS:
                return common_track_records(result, self.report)
            if self.report.layout is Layout.DAILY_ROWS:
                return hour_records(result, self.report)
            return dimension_records(result, self.report)
        except MalformedResultError as error:
            raise _malformed(error, params, result) from None

    def mark_day_read(self, context: Context, day: dt.date) -> None:
        """Move the site's bookmark to `day` once all its rows were emitted.

        The SDK moves bookmarks with each record. Here the day, not the record, is the unit
        of progress, so a day with no rows still counts as read and a day cut short does not.
        """
        state = self.get_context_state(context)
        current = state.get("replication_key_value")
        value = day.isoformat()
        if current is not None and str(current)[:10] >= value:
            return
        state["replication_key"] = self.replication_key
        state["replication_key_value"] = value
        self.state_manager.is_flushed = False
        if time.monotonic() - self._last_state_message >= STATE_MESSAGE_INTERVAL_SECONDS:
            self._write_state_message()
            self._last_state_message = time.monotonic()

    def _increment_stream_state(
        self, latest_record: Record, *, context: Context | None = None
    ) -> None:
        # NOTE: overrides a private SDK 0.54 hook so that records never move the bookmark;
        # `mark_day_read` does, after each complete day.
        return


def _malformed(error: Exception, params: Mapping[str, Any], result: Any) -> MalformedResponseError:
    where = describe_request({key: str(value) for key, value in params.items()})
    message = (
        f"Tongji API returned a malformed result for {where}: {error}. Excerpt: {str(result)[:200]}"
    )
    return MalformedResponseError(message)


class RealtimeStream(ReportStream):
    """实时访客 (trend/latest/a): the latest visits, incremental by visit start time."""

    replication_key = "start_time"
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.RECURSIVE
    """Visits carry API objects (`source`, `detail`) and a boolean, so the SDK still conforms
    them; a few hundred visits a day cost little."""

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Read visits newest first down to the bookmark, then emit them oldest first."""
        assert context is not None, "report streams always run with a site context"
        site_id = int(context["site_id"])
        bookmark = self.get_context_state(context).get("replication_key_value")
        start, _ = configured_dates(self.config, beijing_today())
        floor = max(str(bookmark or ""), start.isoformat())

        visits: list[Record] = []
        params = self.request_params(site_id)
        for result in self.iterate_pages(self.path, params):
            try:
                page = realtime_records(result)
            except MalformedResultError as error:
                raise _malformed(error, params, result) from None
            visits.extend(visit for visit in page if visit["start_time"] >= floor)
            if page and page[0]["start_time"] < floor:
                break  # Pages come newest first: everything after this one is older.

        visits.sort(key=lambda visit: visit["start_time"])
        self.logger.info("Read %d visits for site %s.", len(visits), site_id)
        for visit in visits:
            visit["site_id"] = site_id
            yield visit
        if visits:
            self._mark_start_time(context, visits[-1]["start_time"])

    def _mark_start_time(self, context: Context, value: str) -> None:
        state = self.get_context_state(context)
        if str(state.get("replication_key_value") or "") >= value:
            return
        state["replication_key"] = self.replication_key
        state["replication_key_value"] = value
        self.state_manager.is_flushed = False


def build_report_streams(tap: Tap, reports: Iterable[Report]) -> list[ReportStream]:
    """Instantiate one stream per report table entry."""
    streams: list[ReportStream] = []
    for report in reports:
        stream_class = RealtimeStream if report.layout is Layout.REALTIME else ReportStream
        streams.append(stream_class(tap, report))
    return streams
