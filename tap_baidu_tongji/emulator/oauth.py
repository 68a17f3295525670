"""Token store and the grants of Baidu's OAuth 2.0 token endpoint (`/oauth/2.0/token`)."""

from __future__ import annotations

import base64
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

AUTHORIZATION_CODE_TTL_SECONDS = 600
DEFAULT_ACCESS_TOKEN_TTL_SECONDS = 2_592_000
"""30 days, the `expires_in` of every real token response."""


def _token(prefix: str) -> str:
    """Return a token shaped like Baidu's: `<prefix>.<32 hex>.<38 url-safe>.<6 alphanumeric>`."""
    middle = base64.urlsafe_b64encode(secrets.token_bytes(29)).decode().rstrip("=")[:38]
    alphabet = string.ascii_letters + string.digits
    tail = "".join(secrets.choice(alphabet) for _ in range(6))
    return f"{prefix}.{secrets.token_hex(16)}.{middle}.{tail}"


class OAuthError(Exception):
    """A token-endpoint rejection, sent as HTTP 400 `{"error": …, "error_description": …}`."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass
class _Code:
    redirect_uri: str
    expires_at: float
    used: bool = False


@dataclass
class TokenGrant:
    """Tokens issued by one successful grant."""

    access_token: str
    refresh_token: str
    expires_in: int

    def body(self) -> dict[str, object]:
        """Return the success body with the six keys in the order Baidu sends them."""
        return {
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "access_token": self.access_token,
            "session_secret": "",
            "session_key": "",
            "scope": "basic",
        }


class TokenStore:
    """Authorization codes, refresh tokens and access tokens of one emulator.

    Refresh tokens are single-use: a refresh consumes the token it was given and issues a
    new one, unless the caller asks for sticky mode.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        seed_refresh_token: str,
        access_token_ttl_seconds: float,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_token_ttl_seconds = access_token_ttl_seconds
        self.clock: Callable[[], float] = time.monotonic
        """Time source in seconds; tests may replace it to move past an expiry."""
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._refresh_tokens: dict[str, bool] = {seed_refresh_token: True}
        """Refresh token → whether it is still unused."""
        self._access_tokens: dict[str, float] = {}
        """Access token → monotonic expiry time."""

    def issue_authorization_code(self, redirect_uri: str = "oob") -> str:
        code = secrets.token_hex(16)
        with self._lock:
            self._codes[code] = _Code(redirect_uri, self.clock() + AUTHORIZATION_CODE_TTL_SECONDS)
        return code

    def expire_access_tokens(self) -> None:
        with self._lock:
            for token in self._access_tokens:
                self._access_tokens[token] = float("-inf")

    def check_access_token(self, token: str | None) -> int | None:
        """Return None for a valid token, else the error code: 110 unknown, 111 expired."""
        with self._lock:
            expires_at = self._access_tokens.get(token or "")
        if expires_at is None:
            return 110
        if self.clock() >= expires_at:
            return 111
        return None

    def _check_client(self, params: dict[str, str]) -> None:
        if params.get("client_id") != self.client_id:
            raise OAuthError("invalid_client", "unknown client id")
        if params.get("client_secret") != self.client_secret:
            raise OAuthError("invalid_client", "unknown client id")

    def _issue(self, refresh_token: str | None = None) -> TokenGrant:
        """Issue a new access token and, unless one is given, a new refresh token (lock held)."""
        access_token = _token("121")
        if refresh_token is None:
            refresh_token = _token("122")
        self._refresh_tokens[refresh_token] = True
        self._access_tokens[access_token] = self.clock() + self.access_token_ttl_seconds
        return TokenGrant(access_token, refresh_token, int(self.access_token_ttl_seconds))

    def exchange_code(self, params: dict[str, str]) -> TokenGrant:
        """Run the authorization_code grant: a code works once, within 10 minutes."""
        self._check_client(params)
        code = params.get("code", "")
        with self._lock:
            entry = self._codes.get(code)
            if entry is None or entry.used or self.clock() >= entry.expires_at:
                raise OAuthError("invalid_grant", f"Invalid authorization code: {code}")
            if params.get("redirect_uri", "") != entry.redirect_uri:
                raise OAuthError("invalid_grant", "The redirect uri does not match")
            entry.used = True
            return self._issue()

    def refresh(self, params: dict[str, str], sticky: bool) -> TokenGrant:
        """Run the refresh_token grant; the given token is consumed unless `sticky` is set."""
        self._check_client(params)
        token = params.get("refresh_token", "")
        if not token:
            raise OAuthError("invalid_request", "invalid refresh token")
        with self._lock:
            unused = self._refresh_tokens.get(token)
            if unused is None:
                raise OAuthError("invalid_grant", "The provided authorization grant is revoked")
            if not unused:
                raise OAuthError("expired_token", "refresh token has been used")
            if sticky:
                return self._issue(refresh_token=token)
            self._refresh_tokens[token] = False
            return self._issue()
