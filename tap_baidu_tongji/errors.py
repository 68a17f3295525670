"""Classification of Tongji API responses into the SDK's retriable and fatal errors.

Baidu reports data-call errors in the JSON body as `{"error_code": N, "error_msg": "..."}`,
usually with HTTP 200, so the body decides whatever the status. Every message built here is
redacted and names the method, site and day of the failed request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import requests
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_baidu_tongji.redaction import redact

TOKEN_ERROR_CODES = frozenset({110, 111})
"""110 access token invalid, 111 access token expired: refresh once, then retry."""

TRANSIENT_ERROR_CODES = frozenset({1, 2, 4})
"""1 unknown error, 2 service temporarily unavailable, 4 request limit reached."""

RATE_LIMIT_ERROR_CODE = 4
PERMISSION_ERROR_CODE = 6

EXCERPT_LENGTH = 200


class TongjiAPIError(FatalAPIError):
    """A permanent error for one request: the server's code and message, with its context."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(redact(message))
        self.code = code


class PermissionDeniedError(TongjiAPIError):
    """Error 6: the account may not read this report for this site."""


class MalformedResponseError(TongjiAPIError):
    """A body that is not the JSON shape the endpoint promises."""


class TransientAPIError(RetriableAPIError):
    """A retriable failure: transient code, HTTP 429/5xx, network fault or non-JSON body."""

    def __init__(
        self,
        message: str,
        response: requests.Response | None = None,
        *,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(redact(message), response)
        self.code = code
        self.retry_after = retry_after


class RetriesExhaustedError(TongjiAPIError):
    """A transient failure that outlasted every retry: the run stops, and the next one resumes."""

    def __init__(self, error: TransientAPIError) -> None:
        message = (
            f"{error}. The error persisted through every retry (retry_max_tries), so the run "
            "stopped. Run the tap again later with the last STATE: it will resume from the last "
            "fully read day of each site and report."
        )
        super().__init__(message, code=error.code)


class TokenRejectedError(TransientAPIError):
    """Error 110 or 111: the access token in use was refused; the retry refreshes it."""

    def __init__(self, message: str, response: requests.Response, *, code: int, token: str):
        super().__init__(message, response, code=code)
        self.token = token


def describe_request(params: Mapping[str, str]) -> str:
    """Name the method, site and days of a request for error messages."""
    parts = [params.get("method") or "config/getSiteList"]
    if params.get("site_id"):
        parts.append(f"site {params['site_id']}")
    start, end = params.get("start_date"), params.get("end_date")
    if start and end and start != end:
        parts.append(f"days {start}-{end}")
    elif start:
        parts.append(f"day {start}")
    if params.get("start_index") not in (None, "0"):
        parts.append(f"start_index {params['start_index']}")
    return ", ".join(parts)


def excerpt(text: str) -> str:
    """Return a short, redacted, single-line excerpt of a response body."""
    flat = " ".join(text.split())
    short = flat[:EXCERPT_LENGTH] + ("..." if len(flat) > EXCERPT_LENGTH else "")
    return redact(short)


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def check_response(
    response: requests.Response,
    params: Mapping[str, str],
    access_token: str,
) -> Mapping[str, Any]:
    """Return the parsed JSON body, or raise the error class of the response."""
    where = describe_request(params)
    status = response.status_code

    try:
        # The standard library's decoder is faster here than requests' choice, simplejson.
        body = json.loads(response.content)
    except ValueError:
        message = (
            f"Tongji API returned a body that is not JSON (HTTP {status}) for {where}: "
            f"{excerpt(response.text)}"
        )
        raise TransientAPIError(
            message, response, retry_after=_retry_after_seconds(response)
        ) from None

    code = body.get("error_code") if isinstance(body, Mapping) else None
    if code is not None:
        raise _body_error(body, code, where, response, access_token)

    if status == 429 or status >= 500:
        message = f"Tongji API returned HTTP {status} for {where}: {excerpt(response.text)}"
        raise TransientAPIError(message, response, retry_after=_retry_after_seconds(response))
    if status >= 400:
        message = f"Tongji API returned HTTP {status} for {where}: {excerpt(response.text)}"
        raise TongjiAPIError(message)
    if not isinstance(body, Mapping):
        message = (
            f"Tongji API returned JSON that is not an object for {where}: {excerpt(response.text)}"
        )
        raise MalformedResponseError(message)
    return body


def _body_error(
    body: Mapping[str, Any],
    code: Any,
    where: str,
    response: requests.Response,
    access_token: str,
) -> Exception:
    try:
        number = int(code)
    except (TypeError, ValueError):
        number = -1
    server_message = str(body.get("error_msg", ""))
    message = f"Tongji API error {code} ({server_message}) for {where}"

    if number in TOKEN_ERROR_CODES:
        return TokenRejectedError(message, response, code=number, token=access_token)
    if number in TRANSIENT_ERROR_CODES:
        return TransientAPIError(
            message, response, code=number, retry_after=_retry_after_seconds(response)
        )
    if number == PERMISSION_ERROR_CODE:
        return PermissionDeniedError(message, code=number)
    return TongjiAPIError(message, code=number)


def network_error(error: requests.RequestException, params: Mapping[str, str]) -> TransientAPIError:
    """Wrap a connection error or timeout; its text carries the URL, so it is redacted."""
    message = (
        f"Tongji API request failed ({type(error).__name__}) for {describe_request(params)}: "
        f"{error}"
    )
    return TransientAPIError(message)
