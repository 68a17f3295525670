"""The tap's settings: their JSON schema and the checks that run before any request."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from singer_sdk import typing as th

from tap_baidu_tongji.auth import DEFAULT_TOKEN_STORE_PATH
from tap_baidu_tongji.auth.postgres_store import parse_token_store_url
from tap_baidu_tongji.custom_reports import CUSTOM_REPORT_SCHEMA, check_custom_reports
from tap_baidu_tongji.dates import beijing_today, default_start_date, parse_setting_date
from tap_baidu_tongji.sharding import check_shard_settings

DEFAULT_API_URL = "https://openapi.baidu.com"
DEFAULT_LOOKBACK_DAYS = 3
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
# NOTE: Baidu publishes no rate limit for the Tongji OpenAPI; these defaults are a cautious
# guess, and the tap halves its rate when the API returns error 4 or HTTP 429.
DEFAULT_MAX_REQUESTS_PER_SECOND = 10.0
DEFAULT_MAX_CONCURRENT_REQUESTS = 4
MAX_CONCURRENT_REQUESTS = 32

SITE_ID_TYPE = th.CustomType(
    {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": r"^\s*[0-9]+\s*$"}]},
)

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "client_id",
        th.StringType,
        description="API Key from Tongji 管理 → 数据导出服务 (Baidu OAuth client_id).",
    ),
    th.Property(
        "client_secret",
        th.StringType,
        secret=True,
        description="Secret Key from Tongji 管理 → 数据导出服务 (Baidu OAuth client_secret).",
    ),
    th.Property(
        "refresh_token",
        th.StringType,
        secret=True,
        description=(
            "Refresh token that starts the token chain. Optional once tap-baidu-tongji-auth "
            "has written the token store. Setting a new one starts the chain over."
        ),
    ),
    th.Property(
        "access_token",
        th.StringType,
        secret=True,
        description="Optional current access token, used until the API rejects it.",
    ),
    th.Property(
        "token_store_path",
        th.StringType,
        default=DEFAULT_TOKEN_STORE_PATH,
        description=(
            "JSON file that keeps the latest token pair between runs (mode 0600). Baidu "
            "refresh tokens are single-use, so this file must persist between runs."
        ),
    ),
    th.Property(
        "token_store_url",
        th.StringType,
        secret=True,  # A connection URL may carry a password.
        description=(
            "PostgreSQL token store shared by every process that uses this API Key, such as "
            "postgresql://tap@db.example.com:5432/etl?table=tap_baidu_tongji_tokens (one row "
            "per client_id). When set, token_store_path is not used. Needs "
            "tap-baidu-tongji[postgres]."
        ),
    ),
    th.Property(
        "token_store_password",
        th.StringType,
        secret=True,
        description=(
            "Password for token_store_url. Default: libpq's PGPASSWORD or ~/.pgpass, or a "
            "password in the URL."
        ),
    ),
    th.Property(
        "token_refresh_margin_hours",
        th.IntegerType,
        default=24,
        description="Refresh the access token when it expires within this many hours.",
    ),
    th.Property(
        "site_ids",
        th.ArrayType(SITE_ID_TYPE),
        description=(
            "Site ids to read (integers as config/getSiteList returns them; numeric strings "
            "accepted). Default: every site of the account."
        ),
    ),
    th.Property(
        "shard_count",
        th.IntegerType,
        description=(
            "Number of tap processes that split the sites between them. Set it with "
            "shard_index; each site goes to the shard sha256(site id) mod shard_count."
        ),
    ),
    th.Property(
        "shard_index",
        th.IntegerType,
        description="This process's shard, from 0 to shard_count - 1. Set it with shard_count.",
    ),
    th.Property(
        "start_date",
        th.DateType,
        description="First day to read, YYYY-MM-DD (Beijing time). Default: 30 days before today.",
    ),
    th.Property(
        "end_date",
        th.DateType,
        description="Last day to read, YYYY-MM-DD. Default: yesterday (see include_today).",
    ),
    th.Property(
        "include_today",
        th.BooleanType,
        default=False,
        description=(
            "Also read today (Asia/Shanghai). Off by default because today's numbers are "
            "partial; later runs re-read it through lookback_days."
        ),
    ),
    th.Property(
        "lookback_days",
        th.IntegerType,
        default=DEFAULT_LOOKBACK_DAYS,
        description=(
            "Days before each bookmark that every run reads again, because Tongji revises "
            "recent days."
        ),
    ),
    th.Property(
        "page_size",
        th.IntegerType,
        default=DEFAULT_PAGE_SIZE,
        description="Rows requested per page (max_results) for paged reports.",
    ),
    th.Property(
        "custom_reports",
        th.ArrayType(CUSTOM_REPORT_SCHEMA),
        description=(
            "Extra streams, each a report/getData method with its own metrics and filters "
            "(gran, source, clientDevice, visitor, area, viewType, domainType, flag), read "
            "incrementally like the built-in reports."
        ),
    ),
    th.Property(
        "api_url",
        th.StringType,
        default=DEFAULT_API_URL,
        description=(
            "Base URL of both /oauth/2.0/token and /rest/2.0/tongji/...; point it at the "
            "bundled emulator for tests and the demo."
        ),
    ),
    th.Property(
        "max_requests_per_second",
        th.NumberType,
        default=DEFAULT_MAX_REQUESTS_PER_SECOND,
        description=(
            "Request budget shared by all streams, in requests per second. Baidu does not "
            "publish the limit; error 4 or HTTP 429 halves the rate for the rest of the run."
        ),
    ),
    th.Property(
        "max_concurrent_requests",
        th.IntegerType,
        default=DEFAULT_MAX_CONCURRENT_REQUESTS,
        description=(
            "Requests in flight at once. Days of one site and report are fetched ahead in "
            "parallel and still emitted in date order; 1 reads one request at a time."
        ),
    ),
    th.Property(
        "request_timeout_seconds",
        th.IntegerType,
        default=60,
        description="Timeout of one HTTP request, in seconds.",
    ),
    th.Property(
        "retry_max_tries",
        th.IntegerType,
        default=5,
        description="Attempts per request before a transient error fails the run.",
    ),
    th.Property(
        "retry_initial_wait_seconds",
        th.NumberType,
        default=2.0,
        description="Wait before the first retry, in seconds; doubles on each further retry.",
    ),
).to_dict()


def _integer_check(config: Mapping[str, Any], name: str, minimum: int, maximum: int) -> str:
    value = config.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        return f"Invalid {name} {value!r}: expected a whole number from {minimum} to {maximum}."
    return ""


def parse_site_ids(value: Any) -> list[int]:
    """Return the configured site ids as integers; raise ValueError naming a bad entry."""
    if value is None:
        return []
    if isinstance(value, (str, int)):
        value = [part for part in str(value).split(",") if part.strip()]
    site_ids = []
    for entry in value:
        text = str(entry).strip()
        if isinstance(entry, bool) or not text.isdigit():
            msg = (
                f"Invalid site_ids entry {entry!r}: expected a numeric site id such as "
                "16847648, as config/getSiteList lists it."
            )
            raise ValueError(msg)
        site_ids.append(int(text))
    return site_ids


def configured_dates(config: Mapping[str, Any], today: dt.date) -> tuple[dt.date, dt.date | None]:
    """Return (start_date, end_date) from the settings, with the start-date default applied."""
    start_text = config.get("start_date")
    start = (
        parse_setting_date(start_text, "start_date") if start_text else default_start_date(today)
    )
    end_text = config.get("end_date")
    end = parse_setting_date(end_text, "end_date") if end_text else None
    return start, end


def check_settings(config: Mapping[str, Any], today: dt.date | None = None) -> list[str]:
    """Return one line per invalid setting, naming the setting and the fix; empty when valid."""
    errors: list[str] = []
    today = today or beijing_today()

    for name, what in (("client_id", "API Key"), ("client_secret", "Secret Key")):
        value = config.get(name)
        if not value or not str(value).strip():
            errors.append(
                f"Missing {name}: set it to the {what} from Tongji 管理 → 数据导出服务.",
            )

    for name in ("refresh_token", "access_token"):
        value = config.get(name)
        if value is not None and not str(value).strip():
            errors.append(f"Invalid {name}: it is empty; remove the setting or give the token.")

    api_url = str(config.get("api_url") or DEFAULT_API_URL)
    if not api_url.startswith(("https://", "http://")):
        errors.append(
            f"Invalid api_url {api_url!r}: expected an http(s) URL such as {DEFAULT_API_URL}.",
        )

    try:
        start, end = configured_dates(config, today)
        if end is not None and end < start:
            errors.append(
                f"Invalid end_date {end.isoformat()}: it is before start_date "
                f"{start.isoformat()}; set end_date on or after start_date.",
            )
        if start > today:
            errors.append(
                f"Invalid start_date {start.isoformat()}: it is after today "
                f"({today.isoformat()}, Asia/Shanghai); choose a past day.",
            )
    except ValueError as error:
        errors.append(str(error))

    errors.extend(
        message
        for message in (
            _integer_check(config, "lookback_days", 0, 366),
            _integer_check(config, "page_size", 1, MAX_PAGE_SIZE),
            _integer_check(config, "token_refresh_margin_hours", 0, 24 * 29),
            _integer_check(config, "request_timeout_seconds", 1, 3600),
            _integer_check(config, "retry_max_tries", 1, 20),
            _integer_check(config, "max_concurrent_requests", 1, MAX_CONCURRENT_REQUESTS),
        )
        if message
    )

    wait = config.get("retry_initial_wait_seconds")
    if wait is not None and (
        isinstance(wait, bool) or not isinstance(wait, (int, float, Decimal)) or wait < 0
    ):
        errors.append(
            f"Invalid retry_initial_wait_seconds {wait!r}: expected a number of seconds, 0 or more."
        )

    rate = config.get("max_requests_per_second")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, (int, float, Decimal)) or rate <= 0
    ):
        errors.append(
            f"Invalid max_requests_per_second {rate!r}: expected a positive number, such as 5."
        )

    try:
        parse_site_ids(config.get("site_ids"))
    except ValueError as error:
        errors.append(str(error))

    errors.extend(check_custom_reports(config.get("custom_reports")))
    errors.extend(check_shard_settings(config))

    store_url = config.get("token_store_url")
    if store_url is not None:
        try:
            parse_token_store_url(str(store_url))
        except ValueError as error:
            errors.append(str(error))

    return errors
