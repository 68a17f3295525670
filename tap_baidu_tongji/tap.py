"""The tap: settings, their validation, the stream list and the one shared authenticator."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Any

from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.singerlib import Catalog

from tap_baidu_tongji import error_logging
from tap_baidu_tongji.auth import (
    BaiduAuthenticator,
    PostgresTokenStore,
    TokenStoreError,
    build_authenticator,
    build_token_store,
)
from tap_baidu_tongji.custom_reports import build_custom_reports
from tap_baidu_tongji.output import BufferedSingerWriter
from tap_baidu_tongji.redaction import register_secret
from tap_baidu_tongji.reports import REPORTS
from tap_baidu_tongji.request_budget import RequestBudget
from tap_baidu_tongji.settings import (
    CONFIG_SCHEMA,
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    check_settings,
)
from tap_baidu_tongji.streams import SitesStream, build_report_streams

SECRET_SETTINGS = ("client_secret", "refresh_token", "access_token", "token_store_password")


def token_source_problem(config: Mapping[str, Any]) -> str:
    """Return why no token chain can start from these settings, or "" when one can.

    A chain starts from `refresh_token`, `access_token`, or a store written by
    tap-baidu-tongji-auth (for `token_store_url`, a row saved by an earlier run). The store
    must also be writable, because every rotated refresh token is saved there before it is
    used.
    """
    store = build_token_store(config, logging.getLogger(__name__))
    try:
        store.check_writable()
        has_seed = config.get("refresh_token") or config.get("access_token")
        if isinstance(store, PostgresTokenStore):
            if not has_seed and not store.contains_tokens():
                return (
                    f"Missing refresh_token: the token store {store.location} contains no "
                    f"token pair for client_id {store.client_id}. Set refresh_token to a "
                    "refresh token from tap-baidu-tongji-auth; the first run saves the chain "
                    "in the store."
                )
            return ""
    except TokenStoreError as error:
        return str(error)

    if not has_seed and not Path(store.location).exists():
        return (
            f"Missing refresh_token: no token store exists at {store.location}. Run "
            "tap-baidu-tongji-auth to authorize and write the store, or set refresh_token."
        )
    return ""


def drop_repeated_schema_errors(schema_errors: list[str], own_errors: list[str]) -> list[str]:
    """Remove the JSON Schema errors on settings that `check_settings` already reports.

    Both would describe the same mistake, and the tap's own line also names the fix.
    """
    reported = " ".join(own_errors)
    kept = []
    for error in schema_errors:
        match = re.search(r"config\['([^']+)'\]", error)
        if match and re.search(rf"\b{re.escape(match.group(1))}\b", reported):
            continue
        kept.append(error)
    return kept


def unknown_selected_streams(catalog: Catalog | None, known: set[str]) -> list[str]:
    """Return the ids of selected catalog streams that are not in `known`, sorted."""
    if catalog is None:
        return []
    return sorted(
        entry.tap_stream_id
        for entry in catalog.streams
        if entry.tap_stream_id not in known and entry.metadata.resolve_selection()[()]
    )


class TapBaiduTongji(Tap):
    """Singer tap for Baidu Tongji (百度统计): every report/getData method, per site and day."""

    name = "tap-baidu-tongji"
    package_name = "tap-baidu-tongji"
    config_jsonschema = CONFIG_SCHEMA
    message_writer_class = BufferedSingerWriter

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Check the settings against the schema and the tap's own rules, before any request."""
        for name in SECRET_SETTINGS:
            register_secret(self.config.get(name))

        own_errors = check_settings(self.config)
        schema_errors = super()._validate_config(raise_errors=False)
        errors = [*drop_repeated_schema_errors(schema_errors, own_errors), *own_errors]
        if not errors:
            problem = token_source_problem(self.config)
            if problem:
                errors.append(problem)

        if errors and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=errors)
        return errors

    def setup_mapper(self) -> None:
        """Reject a catalog that selects streams this tap does not have, then set up maps.

        The SDK skips such catalog entries without a word, so a misspelt or removed stream
        would leave its table empty without telling anyone. The SDK calls this once the
        input catalog is loaded and before any request, but not for --discover.
        """
        unknown = unknown_selected_streams(self.input_catalog, set(self.streams))
        if unknown:
            message = (
                f"The catalog selects {', '.join(unknown)}, which tap-baidu-tongji does not "
                f"have (its streams: {', '.join(sorted(self.streams))}). Remove them from the "
                "catalog, or build a new catalog with --discover."
            )
            raise ConfigValidationError(message, errors=[message])
        super().setup_mapper()

    @cached_property
    def request_budget(self) -> RequestBudget:
        """Return the request rate limit every stream and fetch thread shares."""
        rate = float(self.config.get("max_requests_per_second", DEFAULT_MAX_REQUESTS_PER_SECOND))
        return RequestBudget(rate, self.logger)

    @cached_property
    def fetch_executor(self) -> ThreadPoolExecutor | None:
        """Return the fetch threads, or None when requests go one at a time."""
        workers = int(self.config.get("max_concurrent_requests", DEFAULT_MAX_CONCURRENT_REQUESTS))
        if workers <= 1:
            return None
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tongji-fetch")

    @cached_property
    def authenticator(self) -> BaiduAuthenticator:
        """Return the authenticator every stream shares, so a token rotates only once."""
        return build_authenticator(self.config, self.logger)

    def discover_streams(self) -> list[Any]:
        """Return the site list and one stream per report method; works offline."""
        reports = [*REPORTS, *build_custom_reports(self.config.get("custom_reports"))]
        return [SitesStream(self), *build_report_streams(self, reports)]


error_logging.install(logging.getLogger(TapBaiduTongji.name))


if __name__ == "__main__":
    TapBaiduTongji.cli()
