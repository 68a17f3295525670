"""The requests authenticator that keeps a valid Baidu access token on every data call.

Baidu issues a new refresh token with every refresh and the old one stops working, so a
refresh whose result is lost locks the user out until they authorize again by hand. This
module therefore refreshes only when needed (access tokens live 30 days), refreshes under the
token store's lock, writes the new pair before using it, and never replays a refresh request
whose outcome is unknown. A refresh marker, stored before each refresh request and removed
with the new pair, carries that rule across processes: a run killed during a refresh
leaves the marker, and later runs do not send the refresh token it names.
singer-sdk 0.54's `OAuthAuthenticator.update_access_token` is not used: it refreshes on the
first request of every run and its session retries the POST after a read timeout.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import requests.auth
from requests.adapters import HTTPAdapter
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from tap_baidu_tongji.auth.postgres_store import URL_SCHEMES, PostgresTokenStore
from tap_baidu_tongji.auth.token_store import (
    FileTokenStore,
    RefreshMarker,
    StoredTokens,
    TokenStore,
    TokenStoreError,
    TokenStoreSession,
    sha256_hex,
    utc_now,
)
from tap_baidu_tongji.redaction import redact, register_secret

DEFAULT_API_URL = "https://openapi.baidu.com"
DEFAULT_TOKEN_STORE_PATH = os.path.join(".secrets", "tap-baidu-tongji-tokens.json")
"""Relative to the working directory of the tap."""
DEFAULT_REFRESH_MARGIN_HOURS = 24
DEFAULT_ACCESS_TOKEN_LIFETIME = datetime.timedelta(days=30)
"""Used only when a token response lacks `expires_in`. Baidu returns 2592000 seconds."""
TOKEN_REQUEST_TIMEOUT = (10.0, 60.0)
"""Connect and read timeouts of a token request, in seconds."""

SOURCE_STORE = "token store"
SOURCE_CONFIG = "configuration"
SOURCE_REFRESHED = "refreshed"

REAUTHORIZE_ERRORS = frozenset(
    {
        "invalid_grant",
        "expired_token",
        "invalid_client",
        "redirect_uri_mismatch",
        "invalid_request",
        "unauthorized_client",
        "invalid_scope",
    }
)
"""OAuth errors of the token endpoint that only a new authorization by the user can fix."""


class AuthorizationRequired(FatalAPIError):  # noqa: N818 - the name states what the user must do
    """The user must authorize the app again. The message explains how and contains no secret."""


class TokenEndpointUnavailable(RetriableAPIError):  # noqa: N818
    """The token endpoint could not be reached, so the refresh token was not sent and is intact."""


def reauthorize_instructions(store_location: str) -> str:
    """Return the steps that start a new token chain, for error messages."""
    if store_location.startswith(URL_SCHEMES):
        # NOTE: tap-baidu-tongji-auth writes only token files, so a PostgreSQL store gets
        # its new chain through the refresh_token setting.
        return (
            "To authorize again, run `tap-baidu-tongji-auth --token-store-path "
            "new-tokens.json` and log in with the Baidu account that owns the Tongji sites. "
            "Set the tap's refresh_token setting to the refresh_token in new-tokens.json and "
            f"delete that file; the next run starts a new token chain in {store_location}."
        )
    return (
        "To authorize again, run `tap-baidu-tongji-auth --token-store-path "
        f"{store_location}` and log in with the Baidu account that owns the Tongji sites; it "
        "writes a new token pair to the token store. Then remove `refresh_token` from the "
        "tap configuration, or set it to a refresh token issued after that authorization."
    )


@dataclass(frozen=True)
class _CurrentToken:
    value: str
    expires_at: datetime.datetime | None
    """None when the expiry is unknown (an access token from the configuration)."""
    obtained_at: datetime.datetime | None
    source: str
    forced: bool = False
    """Whether a refresh forced by the API rejecting the previous token produced this one."""


class BaiduAuthenticator(requests.auth.AuthBase):
    """Put a valid access token into the `access_token` query parameter of each request.

    One instance serves every stream and thread of a process: a lock makes threads share
    one refresh. The token store's lock does the same across processes.
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        store: TokenStore,
        seed_refresh_token: str | None = None,
        seed_access_token: str | None = None,
        refresh_margin: datetime.timedelta = datetime.timedelta(hours=DEFAULT_REFRESH_MARGIN_HOURS),
        logger: logging.Logger | None = None,
        timeout: tuple[float, float] = TOKEN_REQUEST_TIMEOUT,
    ) -> None:
        for secret in (client_secret, seed_refresh_token, seed_access_token):
            register_secret(secret)
        self.token_url = token_url
        self.client_id = client_id
        self.store = store
        self.refresh_margin = refresh_margin
        self.logger = logger or logging.getLogger(__name__)
        self.timeout = timeout
        self._client_secret = client_secret
        self._seed_refresh_token = seed_refresh_token or None
        self._seed_access_token = seed_access_token or None
        self._seed_sha256 = sha256_hex(seed_refresh_token) if seed_refresh_token else None
        self._lock = threading.Lock()
        self._current: _CurrentToken | None = None
        self._rejected: set[str] = set()
        self._spent_refresh_tokens: set[str] = set()
        """Refresh tokens sent in a refresh whose outcome is unknown: never sent again."""
        self._announced_seed_change = False
        self._http = _build_token_session()

    def __repr__(self) -> str:
        return f"BaiduAuthenticator(token_url={self.token_url!r}, store={self.store.location!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Set `access_token` in the query string, replacing any value already there."""
        token = self.access_token()
        request.url = _with_query_parameter(request.url or "", "access_token", token)
        return request

    def access_token(self) -> str:
        """Return an access token valid beyond the refresh margin, refreshing it if needed.

        Raises:
            AuthorizationRequired: the token chain is broken and the user must authorize
                again.
            TokenEndpointUnavailable: the token endpoint could not be reached. The refresh
                token was not sent, so a later attempt may succeed.
        """
        with self._lock:
            current = self._current
            if current is not None and not self._needs_renewal(current):
                return current.value
            with self.store.locked() as session:
                self._current = self._renew(session, current)
            return self._current.value

    def reject(self, access_token: str) -> None:
        """Record that a data call with `access_token` returned error 110 or 111.

        The next request renews the token: it takes a newer one from the token store if
        another process stored one, else refreshes once. If the API rejects a token that
        this instance has just obtained by a refresh, the next request raises
        `AuthorizationRequired` instead of refreshing again.
        """
        register_secret(access_token)
        with self._lock:
            if access_token in self._rejected:
                return
            self._rejected.add(access_token)
            current = self._current
            if current is not None and current.value == access_token:
                self.logger.info(
                    "The API rejected the access token (source: %s); the next request renews it.",
                    current.source,
                )

    # Renewal under the store lock.

    def _needs_renewal(self, current: _CurrentToken) -> bool:
        if current.value in self._rejected:
            return True
        if current.expires_at is None:
            return False
        return not self._is_fresh(current.expires_at, current.obtained_at)

    def _is_usable(self, tokens: StoredTokens) -> bool:
        if tokens.access_token in self._rejected:
            return False
        return self._is_fresh(tokens.expires_at, tokens.obtained_at)

    def _is_fresh(
        self, expires_at: datetime.datetime, obtained_at: datetime.datetime | None
    ) -> bool:
        margin = self.refresh_margin
        if obtained_at is not None:
            # A token that lives shorter than twice the margin would otherwise be refreshed
            # on every request, so such a token is renewed at half its lifetime instead.
            margin = min(margin, (expires_at - obtained_at) / 2)
        return expires_at - utc_now() > margin

    def _renew(self, session: TokenStoreSession, previous: _CurrentToken | None) -> _CurrentToken:
        stored = self._chain_in_store(session.read())

        if stored is not None and self._is_usable(stored):
            return self._adopt_stored(stored)

        seed_access_token = self._seed_access_token
        if (
            stored is None
            and previous is None
            and seed_access_token is not None
            and seed_access_token not in self._rejected
        ):
            self.logger.info(
                "Using the access token from the %s (expiry unknown, used until the API "
                "rejects it).",
                SOURCE_CONFIG,
            )
            return _CurrentToken(seed_access_token, None, None, SOURCE_CONFIG)

        forced = previous is not None and previous.value in self._rejected
        if forced and previous is not None and previous.forced:
            raise AuthorizationRequired(
                "The Baidu API rejected the access token that replaced a rejected one (error "
                "110 or 111), so refreshing again would not help: the authorization may have "
                f"been revoked. {reauthorize_instructions(self.store.location)}"
            )

        if stored is not None:
            refresh_token, seed_sha256 = stored.refresh_token, stored.seed_sha256
        elif self._seed_refresh_token is not None and self._seed_sha256 is not None:
            refresh_token, seed_sha256 = self._seed_refresh_token, self._seed_sha256
        else:
            raise AuthorizationRequired(
                f"No usable token: the token store {self.store.location} contains no token pair "
                "and the configuration has no refresh_token. "
                f"{reauthorize_instructions(self.store.location)}"
            )
        return self._refresh(session, refresh_token, seed_sha256, forced=forced)

    def _chain_in_store(self, stored: StoredTokens | None) -> StoredTokens | None:
        """Return the stored pair if it continues the configured chain, else None."""
        if stored is None:
            return None
        if self._seed_sha256 is not None and stored.seed_sha256 != self._seed_sha256:
            # The user authorized again and put the new refresh token into the configuration.
            if not self._announced_seed_change:
                self._announced_seed_change = True
                self.logger.info(
                    "The refresh_token in the configuration differs from the one the token "
                    "store %s started from; starting a new token chain from the configuration.",
                    self.store.location,
                )
            return None
        if stored.client_id != self.client_id:
            if self._seed_refresh_token is not None:
                return None
            raise AuthorizationRequired(
                f"The token store {self.store.location} contains tokens of a different client_id "
                f"(API Key). {reauthorize_instructions(self.store.location)}"
            )
        return stored

    def _adopt_stored(self, stored: StoredTokens) -> _CurrentToken:
        self.logger.info(
            "Using the access token from the %s %s; it expires %s.",
            SOURCE_STORE,
            self.store.location,
            _format_expiry(stored.expires_at),
        )
        return _CurrentToken(
            stored.access_token, stored.expires_at, stored.obtained_at, SOURCE_STORE
        )

    # The refresh request.

    def _refresh(
        self, session: TokenStoreSession, refresh_token: str, seed_sha256: str, *, forced: bool
    ) -> _CurrentToken:
        register_secret(refresh_token)
        if refresh_token in self._spent_refresh_tokens:
            raise AuthorizationRequired(
                "An earlier refresh with this refresh token had an unknown outcome, so the "
                "token chain may be broken and the token is not sent again. "
                f"{reauthorize_instructions(self.store.location)}"
            )
        refresh_sha256 = sha256_hex(refresh_token)
        self._check_refresh_marker(session, refresh_sha256)
        # Stored before the request, so that a process killed while the request is in flight
        # or before the new pair is stored leaves a record that the token may be spent.
        session.write_refresh_marker(RefreshMarker(refresh_sha256, utc_now()))
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        self.logger.info("Refreshing the access token at %s.", self.token_url)
        try:
            response = self._http.post(self.token_url, data=form, timeout=self.timeout)
        except requests.exceptions.RequestException as exc:
            if _failed_before_sending(exc):
                self._clear_marker_after_known_outcome(session)
                raise TokenEndpointUnavailable(
                    f"Cannot connect to the token endpoint {self.token_url} ({_describe(exc)}). "
                    "The refresh token was not sent and is still "
                    "valid; run the tap again later."
                ) from None
            return self._recover_uncertain(
                session, refresh_token, f"the request failed after it was sent ({_describe(exc)})"
            )

        body = _json_object(response)
        error = body.get("error") if body is not None else None
        if body is not None and 400 <= response.status_code < 500 and isinstance(error, str):
            # The endpoint rejected the token, so this request did not spend it.
            self._clear_marker_after_known_outcome(session)
            raise self._oauth_error(error, body)

        tokens = None
        if response.status_code == 200 and body is not None:
            tokens = self._tokens_from_response(body, refresh_token, seed_sha256)
        if tokens is None:
            return self._recover_uncertain(
                session,
                refresh_token,
                f"the token endpoint answered HTTP {response.status_code} without a token pair",
            )

        # The old refresh token is spent now: the new pair must be on disk before any use.
        # The write also removes the refresh marker. If it fails, the marker stays.
        try:
            session.write(tokens)
        except TokenStoreError as exc:
            raise AuthorizationRequired(
                f"The access token was refreshed, but saving the new token pair failed: {exc} "
                "The refresh token in the store is spent, so after fixing the store, "
                f"{reauthorize_instructions(self.store.location)}"
            ) from None
        self.logger.info(
            "Refreshed the access token; the new token expires %s and the pair is saved in %s.",
            _format_expiry(tokens.expires_at),
            self.store.location,
        )
        return _CurrentToken(
            tokens.access_token, tokens.expires_at, tokens.obtained_at, SOURCE_REFRESHED, forced
        )

    def _check_refresh_marker(self, session: TokenStoreSession, refresh_sha256: str) -> None:
        """Raise `AuthorizationRequired` if an earlier refresh with this token did not finish.

        A marker of another refresh token is left over from a chain the store has moved on
        from (or that the user replaced by authorizing again), so it is removed.
        """
        marker = session.read_refresh_marker()
        if marker is None:
            return
        started = _format_expiry(marker.started_at)
        if marker.refresh_token_sha256 != refresh_sha256:
            self.logger.info(
                "Removing the refresh marker of a refresh started %s with another refresh "
                "token; the token store no longer contains that token.",
                started,
            )
            session.clear_refresh_marker()
            return
        raise AuthorizationRequired(
            f"An earlier run started a refresh of the access token at {started} with the "
            "refresh token this run would send, and did not store the result: it stopped "
            "during the refresh, or the outcome was unknown. Baidu may already have spent "
            "that refresh token, so it is not sent again. "
            f"{reauthorize_instructions(self.store.location)} Only if you are certain that "
            "the earlier refresh request never left this machine, "
            f"{self.store.refresh_marker_removal()} and run the tap again."
        )

    def _clear_marker_after_known_outcome(self, session: TokenStoreSession) -> None:
        # The token was not spent, so the marker must not block later runs. A marker that
        # cannot be removed only makes a later run stop with the marker message.
        try:
            session.clear_refresh_marker()
        except TokenStoreError as exc:
            self.logger.warning("Cannot remove the refresh marker: %s", exc)

    def _tokens_from_response(
        self, body: Mapping[str, Any], sent_refresh_token: str, seed_sha256: str
    ) -> StoredTokens | None:
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            return None
        register_secret(access_token)
        new_refresh_token = body.get("refresh_token")
        if not isinstance(new_refresh_token, str) or not new_refresh_token:
            # A server that does not rotate keeps the refresh token that was sent.
            new_refresh_token = sent_refresh_token
        register_secret(new_refresh_token)

        obtained_at = utc_now()
        lifetime = DEFAULT_ACCESS_TOKEN_LIFETIME
        try:
            lifetime = datetime.timedelta(seconds=int(body["expires_in"]))
        except (KeyError, TypeError, ValueError):
            self.logger.warning(
                "The token response has no valid expires_in; assuming %s days.",
                DEFAULT_ACCESS_TOKEN_LIFETIME.days,
            )
        return StoredTokens(
            client_id=self.client_id,
            refresh_token=new_refresh_token,
            access_token=access_token,
            expires_at=obtained_at + lifetime,
            obtained_at=obtained_at,
            seed_sha256=seed_sha256,
        )

    def _recover_uncertain(
        self, session: TokenStoreSession, sent_refresh_token: str, what_happened: str
    ) -> _CurrentToken:
        # The server may have consumed the refresh token and issued a pair that never arrived.
        # Sending the same refresh token again cannot bring that pair back, so the only hope
        # is a pair that another process stored meanwhile.
        self._spent_refresh_tokens.add(sent_refresh_token)
        self.logger.error(
            "Refreshing the access token had an unknown outcome: %s. Re-reading the token store.",
            what_happened,
        )
        latest = self._chain_in_store(session.read())
        if (
            latest is not None
            and latest.refresh_token != sent_refresh_token
            and latest.access_token not in self._rejected
        ):
            return self._adopt_stored(latest)
        raise AuthorizationRequired(
            f"Refreshing the access token failed with an unknown outcome ({what_happened}). "
            "Baidu may have consumed the refresh token, and sending it again would be rejected, "
            "so the token chain may be broken and later runs do not send it again either. "
            f"{reauthorize_instructions(self.store.location)} Only if you are certain that "
            f"the refresh request never reached Baidu, {self.store.refresh_marker_removal()} "
            "and run the tap again."
        )

    def _oauth_error(self, error: str, body: Mapping[str, Any]) -> FatalAPIError:
        description = body.get("error_description")
        detail = f"{error}: {redact(description)}" if isinstance(description, str) else error
        if error in REAUTHORIZE_ERRORS:
            hint = {
                "invalid_client": "Check client_id (API Key) and client_secret (Secret Key). ",
                "expired_token": "The refresh token was already used or has expired. ",
                "invalid_grant": "The refresh token is invalid, used or revoked. ",
            }.get(error, "")
            return AuthorizationRequired(
                f"The token endpoint rejected the refresh ({detail}). {hint}"
                f"{reauthorize_instructions(self.store.location)}"
            )
        return FatalAPIError(f"The token endpoint rejected the refresh request ({detail}).")


def _build_token_session() -> requests.Session:
    # Retry only failed connects: once the refresh token has been sent, a retry replays a
    # token that the server may already have consumed.
    retry = Retry(total=3, connect=3, read=0, status=0, other=0, redirect=0,
                  allowed_methods=None, backoff_factor=0.5, raise_on_status=False)  # fmt: skip
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _failed_before_sending(exc: requests.exceptions.RequestException) -> bool:
    """Return whether `exc` proves that no byte of the request reached the server."""
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    reason: object = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _describe(exc: BaseException) -> str:
    return redact(f"{type(exc).__name__}: {exc}")


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _with_query_parameter(url: str, name: str, value: str) -> str:
    # Edit the raw query so that the other parameters keep the encoding the stream gave them.
    parts = urlsplit(url)
    kept = [item for item in parts.query.split("&") if item and item.split("=", 1)[0] != name]
    kept.append(f"{name}={quote(value, safe='')}")
    return urlunsplit(parts._replace(query="&".join(kept)))


def _format_expiry(value: datetime.datetime) -> str:
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def build_token_store(config: Mapping[str, Any], logger: logging.Logger) -> TokenStore:
    """Build the PostgreSQL store when `token_store_url` is set, else the file store.

    `token_store_path` is resolved against the working directory when it is relative.
    """
    store_url = config.get("token_store_url")
    if store_url:
        return PostgresTokenStore(
            str(store_url),
            client_id=str(config["client_id"]),
            password=config.get("token_store_password") or None,
            logger=logger,
        )
    store_path = config.get("token_store_path") or DEFAULT_TOKEN_STORE_PATH
    return FileTokenStore(store_path, logger=logger)


def build_authenticator(config: Mapping[str, Any], logger: logging.Logger) -> BaiduAuthenticator:
    """Build the authenticator and its token store (see `build_token_store`) from the settings.

    Settings read: `api_url`, `client_id`, `client_secret`, `refresh_token`, `access_token`,
    `token_store_url`, `token_store_password`, `token_store_path` and
    `token_refresh_margin_hours`.
    """
    api_url = str(config.get("api_url") or DEFAULT_API_URL).rstrip("/")
    margin_hours = config.get("token_refresh_margin_hours")
    if margin_hours is None:
        margin_hours = DEFAULT_REFRESH_MARGIN_HOURS
    return BaiduAuthenticator(
        token_url=f"{api_url}/oauth/2.0/token",
        client_id=str(config["client_id"]),
        client_secret=str(config["client_secret"]),
        seed_refresh_token=config.get("refresh_token") or None,
        seed_access_token=config.get("access_token") or None,
        store=build_token_store(config, logger),
        refresh_margin=datetime.timedelta(hours=float(margin_hours)),
        logger=logger,
    )
