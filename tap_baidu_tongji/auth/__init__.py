"""Baidu OAuth for the tap: the token store, the request authenticator and the auth CLI."""

from tap_baidu_tongji.auth.authenticator import (
    DEFAULT_TOKEN_STORE_PATH,
    AuthorizationRequired,
    BaiduAuthenticator,
    TokenEndpointUnavailable,
    build_authenticator,
    build_token_store,
)
from tap_baidu_tongji.auth.postgres_store import PostgresDriverMissingError, PostgresTokenStore
from tap_baidu_tongji.auth.token_store import (
    FileTokenStore,
    StoredTokens,
    TokenStore,
    TokenStoreCorruptError,
    TokenStoreError,
    TokenStoreNotWritableError,
    TokenStoreSession,
)

__all__ = [
    "DEFAULT_TOKEN_STORE_PATH",
    "AuthorizationRequired",
    "BaiduAuthenticator",
    "FileTokenStore",
    "PostgresDriverMissingError",
    "PostgresTokenStore",
    "StoredTokens",
    "TokenEndpointUnavailable",
    "TokenStore",
    "TokenStoreCorruptError",
    "TokenStoreError",
    "TokenStoreNotWritableError",
    "TokenStoreSession",
    "build_authenticator",
    "build_token_store",
]
