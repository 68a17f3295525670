"""Run the tap and SIGKILL it at one point of a token refresh; used by test_kill_points.py.

Usage: python tests/kill_point_tap.py POINT TAP_ARGUMENTS...

The patches live here, in a test-only wrapper, so the tap itself has no test hooks. Each
patch sends SIGKILL to its own process, which ends it at once without clean-up, as a
power cut or an out-of-memory kill would.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import requests

from tap_baidu_tongji.auth import authenticator, token_store
from tap_baidu_tongji.tap import TapBaiduTongji

IN_FLIGHT_KILL_DELAY_SECONDS = 1.0
"""Time between sending the refresh request and the kill, far below the emulator's delay."""

STORE_NAME = "tokens.json"
"""File name of the token store that tests.conftest.tap_config configures."""


def kill_now() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_on_refresh() -> None:
    """Kill when the tap starts a refresh, before the refresh marker exists."""

    def refresh(*args: Any, **kwargs: Any) -> Any:
        kill_now()

    authenticator.BaiduAuthenticator._refresh = refresh  # type: ignore[method-assign]


def kill_after_marker() -> None:
    """Kill once the refresh marker is durable, before the refresh request is sent."""
    original = token_store._FileTokenStoreSession.write_refresh_marker

    def write_refresh_marker(self: Any, marker: token_store.RefreshMarker) -> None:
        original(self, marker)
        kill_now()

    token_store._FileTokenStoreSession.write_refresh_marker = write_refresh_marker  # type: ignore[method-assign]


def kill_around_post(*, after_response: bool) -> None:
    """Kill while the refresh request waits for its response, or right after the response."""
    build_session = authenticator._build_token_session

    def build() -> requests.Session:
        session = build_session()
        send = session.post

        def post(*args: Any, **kwargs: Any) -> requests.Response:
            if not after_response:
                threading.Timer(IN_FLIGHT_KILL_DELAY_SECONDS, kill_now).start()
                return send(*args, **kwargs)
            response = send(*args, **kwargs)
            response.content  # noqa: B018 - the whole body has arrived before the kill
            kill_now()
            return response

        session.post = post  # type: ignore[method-assign]
        return session

    authenticator._build_token_session = build


def kill_mid_write() -> None:
    """Kill after half of the new token pair reached the temporary file of the store."""
    open_descriptor = os.fdopen

    class HalfWriter:
        def __init__(self, handle: Any) -> None:
            self._handle = handle

        def __enter__(self) -> HalfWriter:
            return self

        def __exit__(self, *exc_info: object) -> None:
            self._handle.close()

        def write(self, data: bytes) -> int:
            if b'"access_token"' in data:
                self._handle.write(data[: len(data) // 2])
                self._handle.flush()
                os.fsync(self._handle.fileno())
                kill_now()
            written: int = self._handle.write(data)
            return written

        def __getattr__(self, name: str) -> Any:
            return getattr(self._handle, name)

    def fdopen(descriptor: int, *args: Any, **kwargs: Any) -> Any:
        handle = open_descriptor(descriptor, *args, **kwargs)
        target = os.readlink(f"/proc/self/fd/{descriptor}")
        if Path(target).name.startswith(f".{STORE_NAME}.") and target.endswith(".tmp"):
            return HalfWriter(handle)
        return handle

    os.fdopen = fdopen  # type: ignore[assignment]


def kill_before_rename() -> None:
    """Kill when the complete, fsynced temporary file is about to replace the store."""
    replace = os.replace

    def replace_or_kill(source: Any, destination: Any, **kwargs: Any) -> None:
        if Path(destination).name == STORE_NAME:
            kill_now()
        replace(source, destination, **kwargs)

    os.replace = replace_or_kill  # type: ignore[assignment]


def kill_before_marker_removal() -> None:
    """Kill after the new pair replaced the store, before the refresh marker is deleted."""

    def clear_marker(self: Any) -> None:
        kill_now()

    token_store.FileTokenStore._clear_marker = clear_marker  # type: ignore[method-assign]


def kill_after_write() -> None:
    """Kill once the store write, with the marker removal, has returned."""
    original = token_store._FileTokenStoreSession.write

    def write(self: Any, tokens: token_store.StoredTokens) -> None:
        original(self, tokens)
        kill_now()

    token_store._FileTokenStoreSession.write = write  # type: ignore[method-assign]


KILL_POINTS = {
    "before-marker": kill_on_refresh,
    "before-request": kill_after_marker,
    "in-flight": lambda: kill_around_post(after_response=False),
    "after-response": lambda: kill_around_post(after_response=True),
    "mid-write": kill_mid_write,
    "before-rename": kill_before_rename,
    "before-marker-removal": kill_before_marker_removal,
    "after-write": kill_after_write,
}


def main() -> None:
    point = sys.argv[1]
    KILL_POINTS[point]()
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    TapBaiduTongji.cli()


if __name__ == "__main__":
    main()
