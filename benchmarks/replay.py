"""A caching proxy in front of the emulator, so record throughput is not the emulator's speed.

The emulator builds a 5,000-row day in about half a second, slower than the tap converts it.
The proxy stores each getData body on the first request, keyed by its parameters without
`access_token`, and replays it after that. Token and getSiteList calls always go through.
"""

from __future__ import annotations

import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import requests

from benchmarks.harness import GET_DATA_PATH

CacheKey = tuple[tuple[str, str], ...]


class ReplayProxy:
    """Serve on 127.0.0.1, replaying cached getData bodies and forwarding everything else."""

    def __init__(self, upstream_url: str) -> None:
        self.upstream_url = upstream_url
        self.hits = 0
        self.misses = 0
        self._cache: dict[CacheKey, bytes] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        handler = type("BoundReplayHandler", (_ReplayHandler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="replay-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL of the proxy."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ReplayProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def reset_counts(self) -> None:
        """Zero the hit and miss counters, keeping the cache."""
        with self._lock:
            self.hits = 0
            self.misses = 0

    def session(self) -> requests.Session:
        """Return this thread's session to the upstream emulator."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def cached(self, key: CacheKey) -> bytes | None:
        with self._lock:
            body = self._cache.get(key)
            if body is None:
                self.misses += 1
            else:
                self.hits += 1
            return body

    def store(self, key: CacheKey, body: bytes) -> None:
        with self._lock:
            self._cache[key] = body


class _ReplayHandler(BaseHTTPRequestHandler):
    proxy: ReplayProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path != GET_DATA_PATH:
            self._forward("GET", b"")
            return
        params = urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
        key = tuple(sorted((k, v) for k, v in params if k != "access_token"))
        body = self.proxy.cached(key)
        if body is None:
            status, body = self._forward("GET", b"")
            # Error bodies (`error_code`) come with HTTP 200 too, and must not be replayed.
            if status == 200 and b'"error_code"' not in body[:40]:
                self.proxy.store(key, body)
            return
        self._send(200, body, "application/json; charset=utf-8")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._forward("POST", self.rfile.read(length) if length else b"")

    def _forward(self, method: str, payload: bytes) -> tuple[int, bytes]:
        headers = {}
        if self.headers.get("Content-Type"):
            headers["Content-Type"] = self.headers["Content-Type"]
        response = self.proxy.session().request(
            method, self.proxy.upstream_url + self.path, data=payload, headers=headers, timeout=120
        )
        content_type = response.headers.get("Content-Type", "application/json")
        self._send(response.status_code, response.content, content_type)
        return response.status_code, response.content

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
