"""Durable storage of the OAuth token pair, shared by every process that uses one Baidu app.

Baidu rotates the refresh token on every refresh and the old one stops working, so the pair
returned by a refresh must reach the disk before anything else happens, and two processes
must never refresh at the same time. `TokenStore.locked()` gives exclusive access around
read -> refresh -> write. `FileTokenStore` is the JSON-file implementation. Another
backend (for example PostgreSQL) can implement the same protocol.

A process can die after Baidu spent the refresh token and before the new pair is stored.
The store would then still contain the spent token, and the next run would send it again.
So before each refresh request the authenticator durably records a `RefreshMarker` for the
token it sends, and storing the new pair removes it. A later run that finds a marker for
the token it is about to send does not send it.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import filelock

from tap_baidu_tongji.redaction import register_secret

STORE_FORMAT_VERSION = 1
DEFAULT_LOCK_TIMEOUT_SECONDS = 300.0
"""Wait for another process's refresh. A refresh takes at most a few request timeouts."""

_TEMP_SUFFIX = ".tmp"
MARKER_SUFFIX = ".refresh-in-progress"
_LOGGER = logging.getLogger(__name__)


class TokenStoreError(RuntimeError):
    """The token store cannot be read or written. The message names the location and the fix."""


class TokenStoreCorruptError(TokenStoreError):
    """The token store exists but does not contain a valid token pair."""


class TokenStoreNotWritableError(TokenStoreError):
    """The token store location cannot be written."""


def sha256_hex(value: str) -> str:
    """Return the SHA-256 hex digest of `value`, used to recognise a seed refresh token."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def utc_now() -> datetime.datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class StoredTokens:
    """One token pair of a refresh chain, as kept in a token store.

    The token fields are excluded from `repr` so that a logged or printed object shows
    no secret.
    """

    client_id: str
    refresh_token: str = field(repr=False)
    access_token: str = field(repr=False)
    expires_at: datetime.datetime
    """Expiry of `access_token`, aware UTC."""
    obtained_at: datetime.datetime
    """When the token endpoint issued this pair, aware UTC."""
    seed_sha256: str
    """SHA-256 hex of the refresh token this chain started from."""

    def __post_init__(self) -> None:
        register_secret(self.refresh_token)
        register_secret(self.access_token)

    def to_json(self) -> dict[str, Any]:
        """Return the version-1 JSON object of this pair."""
        return {
            "version": STORE_FORMAT_VERSION,
            "client_id": self.client_id,
            "refresh_token": self.refresh_token,
            "access_token": self.access_token,
            "expires_at": _format_time(self.expires_at),
            "obtained_at": _format_time(self.obtained_at),
            "seed_sha256": self.seed_sha256,
        }

    @classmethod
    def from_json(cls, data: object) -> StoredTokens:
        """Build a pair from a version-1 JSON object.

        Raises:
            ValueError: the object is not a version-1 token pair. The message names fields,
                never their values.
        """
        if not isinstance(data, dict):
            raise ValueError("the top level is not a JSON object")
        version = data.get("version")
        if version != STORE_FORMAT_VERSION:
            raise ValueError(
                f"format version {version!r} is not supported (expected {STORE_FORMAT_VERSION})"
            )
        names = ("client_id", "refresh_token", "access_token", "expires_at", "obtained_at")
        missing = [name for name in (*names, "seed_sha256") if not data.get(name)]
        if missing:
            raise ValueError(f"missing or empty fields: {', '.join(missing)}")
        wrong_type = [name for name in (*names, "seed_sha256") if not isinstance(data[name], str)]
        if wrong_type:
            raise ValueError(f"fields that are not strings: {', '.join(wrong_type)}")
        return cls(
            client_id=data["client_id"],
            refresh_token=data["refresh_token"],
            access_token=data["access_token"],
            expires_at=_parse_time(data["expires_at"], "expires_at"),
            obtained_at=_parse_time(data["obtained_at"], "obtained_at"),
            seed_sha256=data["seed_sha256"],
        )


@dataclass(frozen=True)
class RefreshMarker:
    """A write-ahead record that a refresh with one refresh token was started."""

    refresh_token_sha256: str
    """SHA-256 hex of the refresh token the refresh sends. The token itself is not kept."""
    started_at: datetime.datetime
    """When the refresh started, aware UTC."""

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object of this marker."""
        return {
            "version": STORE_FORMAT_VERSION,
            "refresh_token_sha256": self.refresh_token_sha256,
            "started_at": _format_time(self.started_at),
        }

    @classmethod
    def from_json(cls, data: object) -> RefreshMarker:
        """Build a marker from its JSON object.

        Raises:
            ValueError: the object is not a marker.
        """
        if not isinstance(data, dict):
            raise ValueError("the top level is not a JSON object")
        digest = data.get("refresh_token_sha256")
        started_at = data.get("started_at")
        if not isinstance(digest, str) or not digest or not isinstance(started_at, str):
            raise ValueError("missing or invalid fields: refresh_token_sha256, started_at")
        return cls(digest, _parse_time(started_at, "started_at"))


def _format_time(value: datetime.datetime) -> str:
    return value.astimezone(datetime.timezone.utc).isoformat(timespec="seconds")


def _parse_time(text: str, name: str) -> datetime.datetime:
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"field {name} is not an ISO-8601 date-time") from None
    if value.tzinfo is None:
        raise ValueError(f"field {name} has no UTC offset")
    return value.astimezone(datetime.timezone.utc)


class TokenStoreSession(Protocol):
    """Access to a token store while its exclusive lock is held."""

    def read(self) -> StoredTokens | None:
        """Return the stored pair, or None when the store contains none yet."""
        ...

    def write(self, tokens: StoredTokens) -> None:
        """Replace the stored pair durably and remove the refresh marker.

        After a return, a crash cannot lose the pair. A crash can leave the marker behind
        only if the marker cannot match the stored refresh token any more.
        """
        ...

    def read_refresh_marker(self) -> RefreshMarker | None:
        """Return the refresh marker, or None when there is none."""
        ...

    def write_refresh_marker(self, marker: RefreshMarker) -> None:
        """Replace the refresh marker durably: after a return, every later session reads it."""
        ...

    def clear_refresh_marker(self) -> None:
        """Remove the refresh marker if there is one."""
        ...


class TokenStore(Protocol):
    """A place that keeps the current token pair, with a lock across processes."""

    @property
    def location(self) -> str:
        """Human-readable location of the store for messages, such as a file path."""
        ...

    def locked(self) -> contextlib.AbstractContextManager[TokenStoreSession]:
        """Hold the store's exclusive lock, across threads and processes, while in the block."""
        ...

    def check_writable(self) -> None:
        """Raise `TokenStoreNotWritableError` unless the store can be written."""
        ...

    def refresh_marker_removal(self) -> str:
        """Return the step that removes the refresh marker by hand, for messages."""
        ...


# One in-process lock per store file. flock() locks belong to open file descriptions, so
# threads of one process are serialised here before they contend for the file lock.
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock_for(path: Path) -> threading.Lock:
    key = os.path.normcase(str(path))
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(key, threading.Lock())


class FileTokenStore:
    """A token store kept in one JSON file, locked through `<path>.lock`.

    Writes go to a temporary file in the same folder, which is flushed, fsynced and renamed
    over the store, after which the folder is fsynced. A crash at any point leaves either
    the previous or the new file. The file has mode 0600, and a folder the store creates
    has mode 0700.

    The refresh marker is the file `<path>.refresh-in-progress`, written the same way. It is
    a separate file so that the store file keeps one format and the first refresh from a
    configured refresh token can be marked before any store file exists. Storing a new
    pair renames the store file first and deletes the marker after that. A crash in between
    leaves a marker of the previous refresh token, which matches no token that is sent again.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
        logger: logging.Logger | None = None,
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.marker_path = self.path.with_name(self.path.name + MARKER_SUFFIX)
        self.lock_timeout_seconds = lock_timeout_seconds
        self.logger = logger or _LOGGER
        self._permissions_warned = False

    @property
    def location(self) -> str:
        """The store file's absolute path."""
        return str(self.path)

    def __repr__(self) -> str:
        return f"FileTokenStore({self.location!r})"

    def refresh_marker_removal(self) -> str:
        """Return the command that deletes the marker file."""
        return f"delete the marker file with `rm {self.marker_path}`"

    def check_writable(self) -> None:
        """Create the folder if needed and prove that a file can be created and renamed in it.

        Raises:
            TokenStoreNotWritableError: the message names `token_store_path` and the fix.
        """
        if self.path.is_dir():
            raise TokenStoreNotWritableError(
                f"token_store_path {self.path} is a folder. Set token_store_path to a file "
                f"path, for example {self.path / 'tap-baidu-tongji-tokens.json'}."
            )
        try:
            self._ensure_folder()
            # The suffix differs from _TEMP_SUFFIX so that a lock holder's clean-up of stale
            # temporary files never deletes this probe, which is made without the lock.
            descriptor, probe = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".probe"
            )
            os.close(descriptor)
            os.unlink(probe)
            if self.path.exists():
                with open(self.path, "rb"):
                    pass
                if not os.access(self.path, os.W_OK):
                    raise PermissionError(13, "Permission denied", str(self.path))
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise TokenStoreNotWritableError(
                f"token_store_path {self.path} is not writable ({reason}). The tap must "
                "save every rotated refresh token there before it continues. Set "
                "token_store_path to a file in a folder that the user running the tap can "
                "write, or fix the permissions of that folder and file."
            ) from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[_FileTokenStoreSession]:
        """Hold the thread lock and the file lock of this store while in the block.

        Raises:
            TokenStoreError: the lock was not acquired within `lock_timeout_seconds`.
        """
        with _thread_lock_for(self.path):
            self._ensure_folder()
            file_lock = filelock.FileLock(
                str(self.lock_path), timeout=self.lock_timeout_seconds, mode=0o600
            )
            try:
                file_lock.acquire()
            except filelock.Timeout:
                raise TokenStoreError(
                    f"Timed out after {self.lock_timeout_seconds:g} s waiting for the lock "
                    f"{self.lock_path}: another process holds it. Check for a hung "
                    "tap-baidu-tongji process that uses the same token_store_path."
                ) from None
            try:
                self._remove_stale_temp_files()
                yield _FileTokenStoreSession(self)
            finally:
                file_lock.release()

    def _ensure_folder(self) -> None:
        folder = self.path.parent
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir applies the umask to the mode, so set it explicitly.
            os.chmod(folder, 0o700)

    def _remove_stale_temp_files(self) -> None:
        # A writer killed between mkstemp and os.replace leaves a temporary file that contains
        # tokens. Only lock holders write, so every such file is stale once the lock is held.
        pattern = f".{self.path.name}.*{_TEMP_SUFFIX}"
        for stale in self.path.parent.glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    def _read(self) -> StoredTokens | None:
        try:
            with open(self.path, "rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                raw = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenStoreError(
                f"Cannot read the token store {self.path} ({exc.strerror}). Give the user "
                "running the tap read and write access to it."
            ) from None

        if mode & (stat.S_IRWXG | stat.S_IRWXO) and not self._permissions_warned:
            self._permissions_warned = True
            self.logger.warning(
                "Token store %s can be accessed by group or others (mode %o); "
                "restrict it with: chmod 600 %s",
                self.path,
                stat.S_IMODE(mode),
                self.path,
            )

        try:
            return StoredTokens.from_json(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
            # JSONDecodeError messages give a position, never the file content.
            raise TokenStoreCorruptError(
                f"Token store {self.path} is corrupt: {exc}. Restore it from a backup if "
                "you have one. Otherwise delete it and authorize again with "
                f"`tap-baidu-tongji-auth --token-store-path {self.path}`."
            ) from None

    def _write(self, tokens: StoredTokens) -> None:
        self._replace_file(self.path, tokens.to_json())
        # The pair is durable now. A marker left behind by a crash or an error here names
        # a refresh token that the store no longer contains, and the next refresh removes it.
        try:
            self._clear_marker()
        except OSError as exc:
            self.logger.warning(
                "Stored the new token pair, but cannot delete the refresh marker %s (%s); "
                "the next refresh removes it.",
                self.marker_path,
                exc.strerror,
            )

    def _read_marker(self) -> RefreshMarker | None:
        try:
            raw = self.marker_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenStoreError(
                f"Cannot read the refresh marker {self.marker_path} ({exc.strerror}). Give the "
                "user running the tap read and write access to it."
            ) from None
        try:
            return RefreshMarker.from_json(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
            raise TokenStoreCorruptError(
                f"The refresh marker {self.marker_path} is corrupt: {exc}. An earlier run may "
                "have stopped during a refresh. If the token store's refresh token may have "
                "been sent in that refresh, authorize again with `tap-baidu-tongji-auth "
                f"--token-store-path {self.path}`; otherwise delete the marker file."
            ) from None

    def _write_marker(self, marker: RefreshMarker) -> None:
        self._replace_file(self.marker_path, marker.to_json())

    def _clear_marker(self) -> None:
        try:
            self.marker_path.unlink()
        except FileNotFoundError:
            return
        _fsync_folder(self.path.parent)

    def _replace_file(self, path: Path, content: dict[str, Any]) -> None:
        """Replace `path` with `content` as JSON, atomically and durably, with mode 0600."""
        self._ensure_folder()
        payload = json.dumps(content, indent=2).encode("utf-8") + b"\n"
        # mkstemp creates the file with mode 0600, so no other user sees the tokens at any time.
        descriptor, temp_name = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=_TEMP_SUFFIX
        )
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise
        _fsync_folder(self.path.parent)


def _fsync_folder(folder: Path) -> None:
    # The rename is durable only once the folder entry is on disk.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class _FileTokenStoreSession:
    """Reads and writes of a `FileTokenStore` while its lock is held."""

    def __init__(self, store: FileTokenStore) -> None:
        self._store = store

    def read(self) -> StoredTokens | None:
        return self._store._read()

    def write(self, tokens: StoredTokens) -> None:
        try:
            self._store._write(tokens)
        except OSError as exc:
            raise TokenStoreError(
                f"Cannot write the token store {self._store.path} ({exc.strerror}). Free disk "
                "space or fix the permissions of its folder."
            ) from None

    def read_refresh_marker(self) -> RefreshMarker | None:
        return self._store._read_marker()

    def write_refresh_marker(self, marker: RefreshMarker) -> None:
        try:
            self._store._write_marker(marker)
        except OSError as exc:
            raise TokenStoreError(
                f"Cannot write the refresh marker {self._store.marker_path} ({exc.strerror}). "
                "Free disk space or fix the permissions of its folder."
            ) from None

    def clear_refresh_marker(self) -> None:
        try:
            self._store._clear_marker()
        except OSError as exc:
            raise TokenStoreError(
                f"Cannot delete the refresh marker {self._store.marker_path} ({exc.strerror}). "
                "Fix the permissions of its folder."
            ) from None
