"""The base stream: URLs, parameters, paging, error classification, retries and redaction."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Generator, Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import backoff
import requests
import requests.adapters
from singer_sdk import RESTStream

from tap_baidu_tongji.errors import (
    RATE_LIMIT_ERROR_CODE,
    MalformedResponseError,
    TokenRejectedError,
    TransientAPIError,
    check_response,
    describe_request,
    excerpt,
    network_error,
)
from tap_baidu_tongji.redaction import redact

if TYPE_CHECKING:
    from requests.auth import AuthBase

    from tap_baidu_tongji.auth.authenticator import BaiduAuthenticator
    from tap_baidu_tongji.request_budget import RequestBudget

REST_PATH = "/rest/2.0/tongji"
MAX_PAGES = 100_000
"""Guard against a server that never ends a listing; far above any real report."""

# urllib3 logs every request line, query string (and so the access token) included, at DEBUG.
logging.getLogger("urllib3").setLevel(logging.WARNING)


class TongjiStream(RESTStream[Any]):
    """Base of every Tongji stream: owns HTTP, errors, retries and the shared authenticator."""

    records_jsonpath = "$[*]"
    request_count = 0
    """Requests this stream sent in this run, retries included; progress logs read it.

    Fetch threads update it without a lock, so under concurrency it may undercount slightly.
    """

    @property
    def url_base(self) -> str:
        """Return the Tongji REST base, `{api_url}/rest/2.0/tongji`."""
        return str(self.config.get("api_url", "https://openapi.baidu.com")).rstrip("/") + REST_PATH

    @property
    def authenticator(self) -> AuthBase:
        """Return the tap's one authenticator, shared so that a token rotates only once."""
        return self.tongji_authenticator

    @property
    def tongji_authenticator(self) -> BaiduAuthenticator:
        """Return the tap's one authenticator with its Tongji-specific type."""
        return self._tap.authenticator  # type: ignore[attr-defined]

    @property
    def requests_session(self) -> requests.Session:
        """Return the stream's session, with a connection pool as large as the fetch threads."""
        if not self._requests_session:
            workers = int(self.config.get("max_concurrent_requests", 1))
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(10, workers))
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._requests_session = session
        return self._requests_session

    @property
    def request_budget(self) -> RequestBudget:
        """Return the tap's one request budget, shared by every stream and fetch thread."""
        return self._tap.request_budget  # type: ignore[attr-defined]

    @property
    def timeout(self) -> int:
        """Return the per-request timeout in seconds."""
        return int(self.config.get("request_timeout_seconds", 60))

    def request_json(self, endpoint: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """Send one GET with retries and return the checked JSON body.

        Transient failures are retried with exponential backoff and jitter (a `Retry-After`
        header sets the minimum wait). A rejected access token makes the authenticator refresh
        once before the retry.
        """
        clean_params = {key: str(value) for key, value in params.items() if value is not None}
        return self._send_with_retries(endpoint, clean_params)

    @cached_property
    def _send_with_retries(self) -> Callable[[str, dict[str, str]], Mapping[str, Any]]:
        """Build the retrying sender once per stream instead of once per request."""
        return backoff.on_exception(
            self._retry_waits,
            TransientAPIError,
            max_tries=int(self.config.get("retry_max_tries", 5)),
            jitter=None,
            on_backoff=self._log_retry,
            on_giveup=self._log_giveup,
            logger=None,
        )(self._send_once)

    def _send_once(self, endpoint: str, params: dict[str, str]) -> Mapping[str, Any]:
        prepared = requests.Request(
            "GET",
            self.url_base + endpoint,
            params=params,
            headers={"User-Agent": self.user_agent},
        ).prepare()
        self.request_budget.acquire()
        self.request_count += 1
        try:
            authenticated = self.authenticator(prepared)
            response = self.requests_session.send(authenticated, timeout=self.timeout)
        except requests.RequestException as error:
            raise network_error(error, params) from None

        access_token = _query_value(authenticated.url, "access_token")
        try:
            return check_response(response, params, access_token)
        except TokenRejectedError as error:
            self.tongji_authenticator.reject(error.token)
            raise
        except TransientAPIError as error:
            if error.code == RATE_LIMIT_ERROR_CODE or response.status_code == 429:
                self.request_budget.lower(f"{describe_request(params)} returned: {error}")
            raise

    def _retry_waits(self) -> Generator[float, Any, None]:
        """Yield waits in seconds: exponential with equal jitter, at least any `Retry-After`.

        Wait n is a random value between half and all of `retry_initial_wait_seconds * 2**n`;
        a rejected access token is retried at once, because the retry uses a refreshed token.
        """
        initial = float(self.config.get("retry_initial_wait_seconds", 2.0))
        attempt = 0
        error = yield 0.0  # backoff primes the generator, then sends each exception.
        while True:
            base = initial * (2**attempt)
            wait = base / 2 + random.uniform(0, base / 2)  # noqa: S311 - jitter, not crypto
            if isinstance(error, TokenRejectedError):
                wait = 0.0
            retry_after = getattr(error, "retry_after", None)
            if retry_after:
                wait = max(wait, float(retry_after))
            attempt += 1
            error = yield wait

    def _log_retry(self, details: Any) -> None:
        endpoint, params = details["args"][0], details["args"][1]
        self.logger.warning(
            "Retrying %s (%s) in %.1f s after attempt %d: %s",
            endpoint,
            describe_request(params),
            details["wait"],
            details["tries"],
            redact(details.get("exception", "")),
        )

    def _log_giveup(self, details: Any) -> None:
        params = details["args"][1]
        self.logger.error(
            "Giving up on %s after %d attempts.",
            describe_request(params),
            details["tries"],
        )

    def iterate_pages(
        self, endpoint: str, params: Mapping[str, Any]
    ) -> Iterator[Mapping[str, Any]]:
        """Yield each page's `result` of a paged getData listing.

        The tap always sends `max_results` and `start_index` and advances by the rows actually
        received, so a server that caps the page size, ignores `max_results` or returns
        everything at once is still read completely. It stops on an empty page or when
        `start_index` reaches `total`.
        """
        page_size = int(self.config.get("page_size", 1000))
        start_index = 0
        previous_first_row: Any = None
        for _ in range(MAX_PAGES):
            page_params = {**params, "start_index": start_index, "max_results": page_size}
            result = result_of(self.request_json(endpoint, page_params), page_params)
            yield result

            rows = row_count(result)
            if rows == 0:
                return
            first_row = _first_row(result)
            if start_index > 0 and first_row == previous_first_row:
                message = (
                    f"Tongji API repeated the same page for {describe_request(page_params)}: "
                    "start_index is being ignored, so the listing cannot be read completely."
                )
                raise MalformedResponseError(message)
            previous_first_row = first_row
            start_index += rows
            total = result.get("total")
            if isinstance(total, int) and start_index >= total:
                return
        message = f"Tongji API listing did not end after {MAX_PAGES} pages for {params}."
        raise MalformedResponseError(message)


def result_of(body: Mapping[str, Any], params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the `result` object of a getData body, or raise naming the request."""
    result = body.get("result")
    if not isinstance(result, Mapping):
        message = (
            f"Tongji API answer has no `result` object for "
            f"{describe_request({k: str(v) for k, v in params.items()})}: {excerpt(str(body))}"
        )
        raise MalformedResponseError(message)
    return result


def row_count(result: Mapping[str, Any]) -> int:
    """Return the number of rows of a list-report page (the length of `items[0]`)."""
    items = result.get("items")
    if not isinstance(items, list) or not items or not isinstance(items[0], list):
        return 0
    return len(items[0])


def _first_row(result: Mapping[str, Any]) -> Any:
    items = result.get("items")
    if isinstance(items, list) and len(items) >= 2 and items[0]:
        return (repr(items[0][0]), repr(items[1][0] if items[1] else None))
    return None


def _query_value(url: str | None, name: str) -> str:
    for key, value in parse_qsl(urlsplit(url or "").query):
        if key == name:
            return value
    return ""
