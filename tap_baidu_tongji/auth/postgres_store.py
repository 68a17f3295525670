"""A token store in a PostgreSQL table, shared by every worker of a fleet on any machine.

One row per Baidu app (API Key, the `client_id` column) contains the current token pair and
the refresh marker (see `tap_baidu_tongji.auth.token_store`).

The marker must be committed before the refresh request is sent, so one `SELECT ... FOR
UPDATE` transaction cannot span read -> marker -> request -> write: the commit would end
the transaction and release the row lock, and a waiting worker would then read the marker
of a refresh that is still running and stop. `locked()` therefore first takes a
session-level advisory lock keyed on the table and client_id, which survives commits, and
then locks the row with `SELECT ... FOR UPDATE` in a transaction. Every commit inside the
block (of the marker, of the new pair) is followed by a new transaction that locks the row
again. The row lock keeps `idle_in_transaction_session_timeout` in force while the worker
waits for Baidu. A worker that dies loses its connection, and the server then rolls back
its open transaction and releases both locks, so the table keeps the last committed pair
and marker.

psycopg is imported only when a store is opened, so the tap runs without it as long as
`token_store_url` is not set.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from tap_baidu_tongji.auth.token_store import (
    DEFAULT_LOCK_TIMEOUT_SECONDS,
    STORE_FORMAT_VERSION,
    RefreshMarker,
    StoredTokens,
    TokenStoreCorruptError,
    TokenStoreError,
    TokenStoreNotWritableError,
)
from tap_baidu_tongji.redaction import redact, register_secret

if TYPE_CHECKING:
    import psycopg

DEFAULT_TABLE = "tap_baidu_tongji_tokens"
URL_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
"""Accepted schemes of token_store_url. The SQLAlchemy form that Meltano uses is accepted too."""
CONNECT_TIMEOUT_SECONDS = 10
MARKER_COLUMNS = ("refresh_marker_sha256", "refresh_started_at")
"""Columns of the refresh marker, added to a table created before they existed."""
IDLE_IN_TRANSACTION_TIMEOUT_SECONDS = 600
"""The server ends a lock holder's session after this much silence, so a frozen worker (a
paused VM, a network partition) cannot keep the row locked forever. A refresh takes at most
about 100 s (TOKEN_REQUEST_TIMEOUT plus connect retries), far below this."""
INSTALL_HINT = "pip install 'tap-baidu-tongji[postgres]'"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_LOGGER = logging.getLogger(__name__)


class PostgresDriverMissingError(TokenStoreError):
    """token_store_url is set, but psycopg is not installed."""


@dataclass(frozen=True)
class TokenStoreUrl:
    """A parsed token_store_url: what libpq connects to and which table contains the rows."""

    conninfo: str = ""
    """libpq connection URI without the `table` parameter. It may contain a password."""
    schema: str | None = None
    table: str = DEFAULT_TABLE
    display: str = ""
    """The URL without any password, for messages."""


def parse_token_store_url(url: str) -> TokenStoreUrl:
    """Split token_store_url into the libpq URI, the table and a display form without password.

    Raises:
        ValueError: the scheme is not PostgreSQL or the table name is not an identifier. The
            message names token_store_url and never contains a password.
    """
    parts = urlsplit(url.strip())
    query = parse_qsl(parts.query, keep_blank_values=True)
    if parts.password:
        register_secret(unquote(parts.password))
    for name, value in query:
        if name == "password":
            register_secret(value)
    display_netloc = parts.netloc.rsplit("@", 1)[-1]
    if parts.username:
        display_netloc = f"{parts.username}@{display_netloc}"
    display_query = urlencode([(name, value) for name, value in query if name != "password"])
    display = urlunsplit(parts._replace(netloc=display_netloc, query=display_query))

    if parts.scheme not in URL_SCHEMES:
        raise ValueError(
            f"Invalid token_store_url {display!r}: expected a PostgreSQL URL such as "
            f"postgresql://tap@db.example.com:5432/etl?table={DEFAULT_TABLE}."
        )

    table_values = [value for name, value in query if name == "table"]
    qualified = table_values[-1] if table_values else DEFAULT_TABLE
    names = qualified.split(".")
    if len(names) > 2 or not all(_IDENTIFIER.match(name) for name in names):
        raise ValueError(
            f"Invalid table {qualified!r} in token_store_url: expected a table name such as "
            f"{DEFAULT_TABLE} or schema.{DEFAULT_TABLE}, made of letters, digits and "
            "underscores and at most 63 characters per name."
        )
    schema, table = (names[0], names[1]) if len(names) == 2 else (None, names[0])

    libpq_query = urlencode([(name, value) for name, value in query if name != "table"])
    conninfo = urlunsplit(parts._replace(scheme="postgresql", query=libpq_query))
    return TokenStoreUrl(conninfo=conninfo, schema=schema, table=table, display=display)


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise PostgresDriverMissingError(
            "token_store_url needs the PostgreSQL driver psycopg, which is not installed. "
            f"Install the tap with its postgres extra: {INSTALL_HINT} (in meltano.yml: "
            "pip_url: tap-baidu-tongji[postgres])."
        ) from None
    return psycopg


class PostgresTokenStore:
    """A token store kept in one row per client_id of a PostgreSQL table.

    The table is created on first use. A role that may not create it needs the table made
    beforehand (see `create_table_sql`) and SELECT, INSERT and UPDATE on it.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        password: str | None = None,
        lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
        logger: logging.Logger | None = None,
    ) -> None:
        register_secret(password)
        self.url = parse_token_store_url(url)
        self.client_id = client_id
        self.lock_timeout_seconds = lock_timeout_seconds
        self.logger = logger or _LOGGER
        self._password = password or None

    @property
    def location(self) -> str:
        """token_store_url without its password."""
        return self.url.display

    def __repr__(self) -> str:
        return f"PostgresTokenStore({self.location!r})"

    def refresh_marker_removal(self) -> str:
        """Return the SQL statement that clears this client_id's refresh marker."""
        client_id = self.client_id.replace("'", "''")
        # A statement for the user to run by hand; the tap never executes it.
        statement = (
            f"UPDATE {self._qualified_name()} SET {MARKER_COLUMNS[0]} = NULL, "  # noqa: S608
            f"{MARKER_COLUMNS[1]} = NULL WHERE client_id = '{client_id}'"
        )
        return f"clear the refresh marker in {self.location} with `{statement}`"

    def create_table_sql(self) -> str:
        """Return the CREATE TABLE statement of the store's table, for a DBA to run."""
        return self._create_table_query().as_string(None)

    # --- Public operations -------------------------------------------------------------------

    def check_writable(self) -> None:
        """Connect, create the table and row if missing, and take the row lock once.

        Raises:
            PostgresDriverMissingError: psycopg is not installed.
            TokenStoreNotWritableError: the message names token_store_url and the fix.
        """
        driver = _import_psycopg()
        try:
            with self._connect() as connection:
                self._ensure_table(connection)
                # SKIP LOCKED proves the UPDATE privilege without waiting for a worker
                # that is refreshing right now.
                self._lock_row(connection, skip_locked=True)
                connection.rollback()
        except driver.Error as exc:
            raise TokenStoreNotWritableError(
                f"token_store_url {self.location} is not usable ({self._describe(exc)}). The "
                "tap must save every rotated refresh token there before it continues. Check "
                "the host, database and password (PGPASSWORD, ~/.pgpass or "
                "token_store_password), and give the role CREATE on the schema, or create the "
                f"table {self._qualified_name()} beforehand and grant SELECT, INSERT and "
                "UPDATE on it."
            ) from None

    def contains_tokens(self) -> bool:
        """Return whether the row of this client_id contains a token pair, without locking it."""
        driver = _import_psycopg()
        try:
            with self._connect() as connection:
                if not self._table_exists(connection):
                    return False
                query = (
                    self._sql()
                    .SQL("SELECT refresh_token IS NOT NULL FROM {} WHERE client_id = %s")
                    .format(self._table_identifier())
                )
                row = connection.execute(query, [self.client_id]).fetchone()
                return bool(row and row[0])
        except driver.Error as exc:
            raise self._error("read", exc) from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[_PostgresTokenStoreSession]:
        """Hold this client_id's advisory lock and its row lock while in the block.

        The row lock is taken in an open transaction, which commits on a normal exit and
        rolls back when the block raises. Closing the connection releases the advisory lock.

        Raises:
            TokenStoreError: the server cannot be reached, or the lock was not acquired
                within `lock_timeout_seconds`.
        """
        driver = _import_psycopg()
        try:
            connection = self._connect()
        except driver.Error as exc:
            raise self._error("connect to", exc) from None
        with connection:
            try:
                self._ensure_table(connection)
                self._lock_session(connection)
                self._lock_row(connection)
            except driver.errors.LockNotAvailable:
                raise TokenStoreError(
                    f"Timed out after {self.lock_timeout_seconds:g} s waiting for the row lock "
                    f"of client_id {self.client_id} in {self.location}: another worker holds "
                    "it. Check for a hung tap-baidu-tongji process that uses the same "
                    "token_store_url, or look the holder up in pg_stat_activity."
                ) from None
            except driver.Error as exc:
                raise self._error("lock the row in", exc) from None

            try:
                yield _PostgresTokenStoreSession(self, connection)
            except BaseException:
                with contextlib.suppress(driver.Error):
                    connection.rollback()
                raise
            try:
                connection.commit()
            except driver.Error as exc:
                raise self._error("commit to", exc) from None

    # --- SQL ---------------------------------------------------------------------------------

    def _sql(self) -> Any:
        return _import_psycopg().sql

    def _table_identifier(self) -> Any:
        sql = self._sql()
        if self.url.schema:
            return sql.Identifier(self.url.schema, self.url.table)
        return sql.Identifier(self.url.table)

    def _qualified_name(self) -> str:
        return f"{self.url.schema}.{self.url.table}" if self.url.schema else self.url.table

    def _create_table_query(self) -> Any:
        return (
            self._sql()
            .SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "client_id text PRIMARY KEY, "
                "format_version integer NOT NULL DEFAULT {}, "
                "refresh_token text, "
                "access_token text, "
                "expires_at timestamptz, "
                "obtained_at timestamptz, "
                "seed_sha256 text, "
                "refresh_marker_sha256 text, "
                "refresh_started_at timestamptz, "
                "updated_at timestamptz NOT NULL DEFAULT now())"
            )
            .format(self._table_identifier(), self._sql().Literal(STORE_FORMAT_VERSION))
        )

    def _connect(self) -> psycopg.Connection[Any]:
        driver = _import_psycopg()
        connection: psycopg.Connection[Any] = driver.connect(
            self.url.conninfo,
            password=self._password,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name="tap-baidu-tongji",
            autocommit=False,
        )
        return connection

    def _table_exists(self, connection: psycopg.Connection[Any]) -> bool:
        row = connection.execute(
            "SELECT to_regclass(%s) IS NOT NULL", [self._table_identifier().as_string(connection)]
        ).fetchone()
        connection.commit()
        return bool(row and row[0])

    def _ensure_table(self, connection: psycopg.Connection[Any]) -> None:
        if self._table_exists(connection):
            self._ensure_marker_columns(connection)
            return
        # Two workers that run CREATE TABLE IF NOT EXISTS at once can both pass the check and
        # one then fails on a catalog unique index, so creation is serialised by an advisory
        # lock keyed on the table name.
        connection.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))",
            [f"tap-baidu-tongji token store {self._qualified_name()}"],
        )
        connection.execute(self._create_table_query())
        connection.commit()
        self.logger.info("Created the token store table %s in %s.", self._qualified_name(),
                         self.location)  # fmt: skip

    def _ensure_marker_columns(self, connection: psycopg.Connection[Any]) -> None:
        """Add the refresh marker columns to a table created before they existed."""
        row = connection.execute(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attname = ANY(%s) AND NOT attisdropped",
            [self._table_identifier().as_string(connection), list(MARKER_COLUMNS)],
        ).fetchone()
        connection.commit()
        if row is not None and row[0] == len(MARKER_COLUMNS):
            return
        sql = self._sql()
        connection.execute(
            sql.SQL(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS refresh_marker_sha256 text, "
                "ADD COLUMN IF NOT EXISTS refresh_started_at timestamptz"
            ).format(self._table_identifier())
        )
        connection.commit()

    def _lock_session(self, connection: psycopg.Connection[Any]) -> None:
        """Take the session-level advisory lock of this client_id, which outlives commits.

        Raises:
            psycopg.errors.LockNotAvailable: not acquired within `lock_timeout_seconds`.
        """
        connection.execute(
            "SELECT set_config('lock_timeout', %s, true)",
            [f"{int(self.lock_timeout_seconds * 1000)}ms"],
        )
        # The two-key form has its own key space, apart from the one-key lock of
        # _ensure_table. A hash collision with another application's lock only adds waiting.
        connection.execute(
            "SELECT pg_advisory_lock(hashtext(%s), hashtext(%s))",
            [f"tap-baidu-tongji token store {self._qualified_name()}", self.client_id],
        )
        connection.commit()

    def _lock_row(self, connection: psycopg.Connection[Any], *, skip_locked: bool = False) -> None:
        """Start a transaction that holds the lock of this client_id's row, creating the row."""
        sql = self._sql()
        connection.execute(
            "SELECT set_config('lock_timeout', %s, true), "
            "set_config('idle_in_transaction_session_timeout', %s, true)",
            [f"{int(self.lock_timeout_seconds * 1000)}ms",
             f"{IDLE_IN_TRANSACTION_TIMEOUT_SECONDS * 1000}ms"],
        )  # fmt: skip
        connection.execute(
            sql.SQL("INSERT INTO {} (client_id) VALUES (%s) ON CONFLICT (client_id) DO NOTHING")
            .format(self._table_identifier()),
            [self.client_id],
        )  # fmt: skip
        lock_clause = "FOR UPDATE SKIP LOCKED" if skip_locked else "FOR UPDATE"
        connection.execute(
            sql.SQL("SELECT 1 FROM {} WHERE client_id = %s {}")
            .format(self._table_identifier(), sql.SQL(lock_clause)),
            [self.client_id],
        )  # fmt: skip

    def _read(self, connection: psycopg.Connection[Any]) -> StoredTokens | None:
        query = (
            self._sql()
            .SQL(
                "SELECT format_version, refresh_token, access_token, expires_at, obtained_at, "
                "seed_sha256 FROM {} WHERE client_id = %s"
            )
            .format(self._table_identifier())
        )
        row = connection.execute(query, [self.client_id]).fetchone()
        if row is None or row[1] is None:
            return None
        try:
            return _tokens_from_row(self.client_id, row)
        except ValueError as exc:
            raise TokenStoreCorruptError(
                f"The token store row of client_id {self.client_id} in {self.location} is "
                f"invalid: {exc}. Delete the row of this client_id from the table "
                f"{self._qualified_name()}, authorize again with tap-baidu-tongji-auth and set "
                "the tap's refresh_token setting to the new refresh token."
            ) from None

    def _write(self, connection: psycopg.Connection[Any], tokens: StoredTokens) -> None:
        if tokens.client_id != self.client_id:
            raise TokenStoreError(
                f"Cannot write tokens of another client_id to the row of {self.client_id} in "
                f"{self.location}."
            )
        query = (
            self._sql()
            .SQL(
                "UPDATE {} SET format_version = %s, refresh_token = %s, access_token = %s, "
                "expires_at = %s, obtained_at = %s, seed_sha256 = %s, "
                "refresh_marker_sha256 = NULL, refresh_started_at = NULL, updated_at = now() "
                "WHERE client_id = %s"
            )
            .format(self._table_identifier())
        )
        cursor = connection.execute(
            query,
            [STORE_FORMAT_VERSION, tokens.refresh_token, tokens.access_token,
             tokens.expires_at, tokens.obtained_at, tokens.seed_sha256, self.client_id],
        )  # fmt: skip
        if cursor.rowcount != 1:
            raise TokenStoreError(
                f"The token store row of client_id {self.client_id} in {self.location} "
                "disappeared while it was locked. Check whether something deletes rows of "
                f"{self._qualified_name()}."
            )
        # Commit now, so that the new pair is durable before the caller uses it, then lock
        # the row again for the rest of the block.
        connection.commit()
        self._lock_row(connection)

    def _read_marker(self, connection: psycopg.Connection[Any]) -> RefreshMarker | None:
        query = (
            self._sql()
            .SQL("SELECT refresh_marker_sha256, refresh_started_at FROM {} WHERE client_id = %s")
            .format(self._table_identifier())
        )
        row = connection.execute(query, [self.client_id]).fetchone()
        if row is None or row[0] is None:
            return None
        digest, started_at = row
        if not isinstance(started_at, datetime.datetime) or started_at.tzinfo is None:
            # A marker without its time still marks the token as possibly spent.
            started_at = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
        return RefreshMarker(str(digest), started_at.astimezone(datetime.timezone.utc))

    def _set_marker(
        self, connection: psycopg.Connection[Any], marker: RefreshMarker | None
    ) -> None:
        query = (
            self._sql()
            .SQL(
                "UPDATE {} SET refresh_marker_sha256 = %s, refresh_started_at = %s "
                "WHERE client_id = %s"
            )
            .format(self._table_identifier())
        )
        values = (marker.refresh_token_sha256, marker.started_at) if marker else (None, None)
        connection.execute(query, [*values, self.client_id])
        # Committed before the caller sends the refresh request. The advisory lock of
        # `locked()` keeps other workers out until the row is locked again.
        connection.commit()
        self._lock_row(connection)

    # --- Messages ----------------------------------------------------------------------------

    def _describe(self, exc: BaseException) -> str:
        # libpq messages can repeat the connection string, which may contain a password.
        text = " ".join(str(exc).split()) or type(exc).__name__
        return redact(text.replace(self.url.conninfo, self.location))

    def _error(self, action: str, exc: BaseException) -> TokenStoreError:
        return TokenStoreError(
            f"Cannot {action} the token store {self.location} ({self._describe(exc)}). Check "
            "that the server is running and reachable, and the role and password (PGPASSWORD, "
            "~/.pgpass or token_store_password)."
        )


def _tokens_from_row(client_id: str, row: tuple[Any, ...]) -> StoredTokens:
    version, refresh_token, access_token, expires_at, obtained_at, seed_sha256 = row
    if version != STORE_FORMAT_VERSION:
        raise ValueError(
            f"format version {version!r} is not supported (expected {STORE_FORMAT_VERSION})"
        )
    values = {
        "refresh_token": refresh_token,
        "access_token": access_token,
        "expires_at": expires_at,
        "obtained_at": obtained_at,
        "seed_sha256": seed_sha256,
    }
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ValueError(f"missing or empty columns: {', '.join(missing)}")
    for name in ("expires_at", "obtained_at"):
        value = values[name]
        if not isinstance(value, datetime.datetime) or value.tzinfo is None:
            raise ValueError(f"column {name} is not a timestamp with time zone")
    return StoredTokens(
        client_id=client_id,
        refresh_token=str(refresh_token),
        access_token=str(access_token),
        expires_at=expires_at.astimezone(datetime.timezone.utc),
        obtained_at=obtained_at.astimezone(datetime.timezone.utc),
        seed_sha256=str(seed_sha256),
    )


class _PostgresTokenStoreSession:
    """Reads and writes of a `PostgresTokenStore` inside the transaction that holds the lock."""

    def __init__(self, store: PostgresTokenStore, connection: psycopg.Connection[Any]) -> None:
        self._store = store
        self._connection = connection

    def read(self) -> StoredTokens | None:
        driver = _import_psycopg()
        try:
            return self._store._read(self._connection)
        except driver.Error as exc:
            raise self._store._error("read", exc) from None

    def write(self, tokens: StoredTokens) -> None:
        driver = _import_psycopg()
        try:
            self._store._write(self._connection, tokens)
        except driver.Error as exc:
            raise self._store._error("write", exc) from None

    def read_refresh_marker(self) -> RefreshMarker | None:
        driver = _import_psycopg()
        try:
            return self._store._read_marker(self._connection)
        except driver.Error as exc:
            raise self._store._error("read", exc) from None

    def write_refresh_marker(self, marker: RefreshMarker) -> None:
        driver = _import_psycopg()
        try:
            self._store._set_marker(self._connection, marker)
        except driver.Error as exc:
            raise self._store._error("write", exc) from None

    def clear_refresh_marker(self) -> None:
        driver = _import_psycopg()
        try:
            self._store._set_marker(self._connection, None)
        except driver.Error as exc:
            raise self._store._error("write", exc) from None
