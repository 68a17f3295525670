"""HTTP server of the emulator: routing, token checks, fault injection and the request log."""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from tap_baidu_tongji.emulator import data, results
from tap_baidu_tongji.emulator.faults import (
    ENDPOINT_GET_DATA,
    ENDPOINT_SITE_LIST,
    ENDPOINT_TOKEN,
    ERROR_MESSAGES,
    Failure,
    FailureKind,
    FaultPlan,
)
from tap_baidu_tongji.emulator.oauth import (
    DEFAULT_ACCESS_TOKEN_TTL_SECONDS,
    OAuthError,
    TokenGrant,
    TokenStore,
)
from tap_baidu_tongji.emulator.validation import DataCallError, parse_data_request
from tap_baidu_tongji.redaction import MASK, redact

logger = logging.getLogger("tap_baidu_tongji.emulator")

TOKEN_PATH = "/oauth/2.0/token"  # noqa: S105 (a URL path, not a secret)
SITE_LIST_PATH = "/rest/2.0/tongji/config/getSiteList"
GET_DATA_PATH = "/rest/2.0/tongji/report/getData"

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")

# Demo credentials of a local test server; they open nothing outside the emulator.
DEMO_CLIENT_ID = "demo-api-key"
DEMO_CLIENT_SECRET = "demo-secret-key"  # noqa: S105
DEMO_REFRESH_TOKEN = "demo-refresh-token"  # noqa: S105

RATE_LIMITED = 4
STATUS_NO_RESPONSE = 0
"""`LoggedRequest.status` when the emulator closed the connection without a response."""


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the emulator received it, with the response it sent."""

    time: float
    """`time.monotonic()` when the request arrived."""
    http_method: str
    path: str
    params: dict[str, str]
    """Query and form parameters; the access_token value is replaced by "***"."""
    status: int
    """HTTP status sent, or 0 when the connection was closed without a response."""
    error_code: int | None
    """`error_code` of a data-call error body."""
    grant_type: str | None
    """`grant_type` of a token call."""
    oauth_error: str | None = None
    """`error` of a token-endpoint rejection."""
    fault: str | None = None
    """Kind of the injected failure that shaped the response, if any."""


def encode_json(payload: object, raw_utf8: bool) -> bytes:
    """Serialize like Baidu's PHP gateway (`\\/` and `\\uXXXX` escapes) unless `raw_utf8`."""
    if raw_utf8:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    # "/" only occurs inside JSON strings, so escaping every one is safe.
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


def html_error_page(status: int, reason: str) -> bytes:
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    error_code: int | None = None
    oauth_error: str | None = None
    fault: str | None = None
    close_without_answer: bool = False
    detail: str = ""
    """Why a data call was rejected, for the request log line."""


_Answer = Callable[[dict[str, str]], _Reply]


class Emulator:
    """A local Baidu Tongji OpenAPI (OAuth token endpoint, getSiteList, getData) on 127.0.0.1.

    Usable as a context manager: `with Emulator() as emu: requests.get(emu.url + …)`.
    """

    def __init__(
        self,
        port: int = 0,
        sites: list[dict[str, object]] | None = None,
        today: dt.date | None = None,
        page_size_default: int = 20,
        faults: FaultPlan | None = None,
        *,
        host: str = "127.0.0.1",
        client_id: str = DEMO_CLIENT_ID,
        client_secret: str = DEMO_CLIENT_SECRET,
        seed_refresh_token: str = DEMO_REFRESH_TOKEN,
        access_token_ttl_seconds: float = DEFAULT_ACCESS_TOKEN_TTL_SECONDS,
        page_count: int = 0,
        traffic_scale: float = 1.0,
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"invalid host {host!r}: the emulator binds 127.0.0.1 only")
        self.port = port
        self.sites: list[dict[str, object]] = copy.deepcopy(sites or data.default_sites())
        self._site_index = data.site_index(
            self.sites, page_count=page_count, traffic_scale=traffic_scale
        )
        self._today = today
        self.page_size_default = page_size_default
        self.faults = faults if faults is not None else FaultPlan()
        self.client_id = client_id
        self.client_secret = client_secret
        self.seed_refresh_token = seed_refresh_token
        self.tokens = TokenStore(
            client_id, client_secret, seed_refresh_token, access_token_ttl_seconds
        )
        self._log: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind 127.0.0.1 and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        handler = type("BoundHandler", (_Handler,), {"emulator": self})
        server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="tongji-emulator",
            daemon=True,
        )
        self._thread.start()
        logger.info("Emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving; requests sleeping in a latency or timeout fault are woken first."""
        server = self._server
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
        logger.info("Emulator stopped")

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def today(self) -> dt.date:
        """The server's today: the constructor's value, else today in Beijing time."""
        if self._today is not None:
            return self._today
        return dt.datetime.now(data.BEIJING).date()

    # --- tokens --------------------------------------------------------------------------

    def issue_authorization_code(self, redirect_uri: str = "oob") -> str:
        """Return a fresh single-use code, as the browser authorization step shows it."""
        return self.tokens.issue_authorization_code(redirect_uri)

    def expire_access_tokens(self) -> None:
        """Expire every access token issued so far, so data calls get 111 "Access token expired"."""
        self.tokens.expire_access_tokens()

    # --- request log ---------------------------------------------------------------------

    @property
    def request_log(self) -> list[LoggedRequest]:
        """A snapshot of every request so far, oldest first."""
        with self._log_lock:
            return list(self._log)

    def clear_request_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def _record(self, entry: LoggedRequest) -> None:
        with self._log_lock:
            self._log.append(entry)

    # --- request handling ----------------------------------------------------------------

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`, returning early when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def handle(self, http_method: str, path: str, params: dict[str, str]) -> _Reply:
        faults = self.faults
        self.sleep(faults.latency_seconds)
        if path == TOKEN_PATH:
            return self._with_failure(ENDPOINT_TOKEN, params, self._token)
        if path == SITE_LIST_PATH:
            return self._with_failure(ENDPOINT_SITE_LIST, params, self._site_list)
        if path == GET_DATA_PATH:
            return self._with_failure(ENDPOINT_GET_DATA, params, self._get_data)
        return self._data_error(3, "Unsupported openapi method", status=404)

    def _with_failure(self, endpoint: str, params: dict[str, str], answer: _Answer) -> _Reply:
        failure = self.faults.take_failure(endpoint, params)
        if failure is None:
            return answer(params)
        return self._inject(failure, params, answer)

    def _inject(self, failure: Failure, params: dict[str, str], answer: _Answer) -> _Reply:
        headers: tuple[tuple[str, str], ...] = ()
        if failure.retry_after:
            headers = (("Retry-After", failure.retry_after),)
        kind = failure.kind
        if kind is FailureKind.ERROR_CODE:
            message = ERROR_MESSAGES.get(failure.error_code, "Unknown error")
            reply = self._data_error(failure.error_code, message, status=failure.status)
        elif kind is FailureKind.HTTP_STATUS:
            reason = _REASONS.get(failure.status, "Error")
            reply = _Reply(
                failure.status,
                html_error_page(failure.status, reason),
                content_type="text/html",
            )
        elif kind is FailureKind.TIMEOUT:
            self.sleep(failure.delay_seconds)
            reply = answer(params)
        elif kind is FailureKind.RESET:
            reply = _Reply(STATUS_NO_RESPONSE, b"", close_without_answer=True)
        else:
            reply = answer(params)
            reply.body = reply.body[: len(reply.body) // 2]
        reply.headers = reply.headers + headers
        reply.fault = kind.value
        return reply

    def _json(self, status: int, payload: object, **extra: object) -> _Reply:
        body = encode_json(payload, self.faults.raw_utf8)
        reply = _Reply(status, body)
        for key, value in extra.items():
            setattr(reply, key, value)
        return reply

    def _data_error(self, code: int, message: str, status: int | None = None) -> _Reply:
        if status is None:
            status = self.faults.error_http_status
        return self._json(status, {"error_code": code, "error_msg": message}, error_code=code)

    def _token(self, params: dict[str, str]) -> _Reply:
        grant_type = params.get("grant_type", "")
        try:
            if grant_type == "authorization_code":
                grant = self.tokens.exchange_code(params)
            elif grant_type == "refresh_token":
                grant = self.tokens.refresh(params, sticky=self.faults.sticky_refresh_token)
                if self.faults.take_refresh_drop():
                    # The token is consumed and new ones exist, but the client never sees them.
                    return _Reply(STATUS_NO_RESPONSE, b"", close_without_answer=True, fault="drop")
            else:
                raise OAuthError(
                    "unsupported_grant_type", "The authorization grant type is not supported"
                )
        except OAuthError as error:
            body = {"error": error.error, "error_description": error.description}
            reply = self._json(400, body, oauth_error=error.error)
        else:
            reply = self._token_reply(grant)
        reply.headers = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))
        return reply

    def _token_reply(self, grant: TokenGrant) -> _Reply:
        return self._json(200, grant.body())

    def _authorize(self, params: dict[str, str]) -> _Reply | None:
        code = self.tokens.check_access_token(params.get("access_token"))
        if code is not None:
            return self._data_error(code, ERROR_MESSAGES[code])
        if not self.faults.admit_call():
            return self._data_error(RATE_LIMITED, ERROR_MESSAGES[RATE_LIMITED])
        return None

    def _site_list(self, params: dict[str, str]) -> _Reply:
        rejection = self._authorize(params)
        if rejection is not None:
            return rejection
        return self._json(200, {"list": self.sites})

    def _get_data(self, params: dict[str, str]) -> _Reply:
        rejection = self._authorize(params)
        if rejection is not None:
            return rejection
        try:
            request = parse_data_request(
                params, self._site_index, self.today, self.page_size_default
            )
        except DataCallError as error:
            reply = self._data_error(error.code, ERROR_MESSAGES[error.code])
            reply.detail = error.detail
            return reply
        return self._json(200, {"result": results.build_result(request, self.faults)})


_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    emulator: Emulator
    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return "nginx"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        # The emulator logs one line per request itself, with secrets redacted.
        return

    def _read_params(self) -> tuple[str, dict[str, str]]:
        parsed = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            body = self.rfile.read(length).decode("utf-8", errors="replace")
            if "application/x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
                params.update(urllib.parse.parse_qsl(body, keep_blank_values=True))
        return parsed.path, params

    def _serve(self) -> None:
        emulator = self.emulator
        arrived = time.monotonic()
        path, params = self._read_params()
        reply = emulator.handle(self.command, path, params)

        logged_params = dict(params)
        if "access_token" in logged_params:
            logged_params["access_token"] = MASK
        grant_type = params.get("grant_type") if path == TOKEN_PATH else None
        emulator._record(
            LoggedRequest(
                time=arrived,
                http_method=self.command,
                path=path,
                params=logged_params,
                status=reply.status,
                error_code=reply.error_code,
                grant_type=grant_type,
                oauth_error=reply.oauth_error,
                fault=reply.fault,
            )
        )
        # Recorded before the response is sent, so a client that reads the log after its response
        # always finds its own request there.
        if reply.close_without_answer:
            self._reset_connection()
        else:
            self._send(reply)

        outcome = ""
        if reply.error_code is not None:
            outcome = f" error_code={reply.error_code}"
        elif reply.oauth_error:
            outcome = f" error={reply.oauth_error}"
        logger.info(
            "%s %s -> %s%s%s%s (%.3f s)",
            self.command,
            redact(self.path),
            reply.status or "closed",
            outcome,
            f" ({reply.detail})" if reply.detail else "",
            f" fault={reply.fault}" if reply.fault else "",
            time.monotonic() - arrived,
        )

    def _send(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError) as error:
            logger.info("Client closed the connection before the response was sent: %s", error)
            self.close_connection = True

    def _reset_connection(self) -> None:
        """Close the socket with a TCP RST (SO_LINGER 0) so the client sees a reset."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError as error:
            logger.info("Closing the connection failed: %s", error)

    def finish(self) -> None:
        # After a reset the socket is gone, so flushing the buffered writer may fail.
        try:
            super().finish()
        except OSError:
            logger.debug("Connection already closed when finishing the request")
