"""`tap-baidu-tongji-auth`: authorize the app once in a browser and write the token store.

Baidu's authorization-code flow with `redirect_uri=oob` shows the code on the result page
instead of redirecting, so no web server is needed. The code is exchanged for a token pair
whose refresh token starts a new chain, and the pair goes into the same token store that
the tap reads. Neither the Secret Key nor any token or code is ever printed.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import urlencode

import requests

from tap_baidu_tongji.auth.authenticator import (
    DEFAULT_ACCESS_TOKEN_LIFETIME,
    DEFAULT_API_URL,
    DEFAULT_TOKEN_STORE_PATH,
    TOKEN_REQUEST_TIMEOUT,
)
from tap_baidu_tongji.auth.messages import CHINESE, detect_language, text
from tap_baidu_tongji.auth.token_store import (
    FileTokenStore,
    StoredTokens,
    TokenStoreError,
    sha256_hex,
    utc_now,
)
from tap_baidu_tongji.redaction import redact, register_secret

ENV_CLIENT_ID = "TAP_BAIDU_TONGJI_CLIENT_ID"
ENV_CLIENT_SECRET = "TAP_BAIDU_TONGJI_CLIENT_SECRET"  # noqa: S105 - a variable name
REDIRECT_URI = "oob"

# The texts of these OAuth errors explain the usual cause and the fix.
_ERROR_TEXT_KEYS = {
    "invalid_grant": "error_invalid_grant",
    "expired_token": "error_invalid_grant",
    "invalid_client": "error_invalid_client",
    "redirect_uri_mismatch": "error_redirect_uri_mismatch",
}


class AuthorizationFailed(Exception):  # noqa: N818 - reads as the outcome shown to the user
    """The authorization cannot complete. The message is ready to print and has no secret."""


def authorize_url(oauth_base: str, client_id: str) -> str:
    """Return the browser address where the user grants the `basic` scope to the app."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "basic",
            "display": "popup",
        }
    )
    return f"{oauth_base.rstrip('/')}/oauth/2.0/authorize?{query}"


def exchange_code(
    *, api_url: str, client_id: str, client_secret: str, code: str, language: str
) -> StoredTokens:
    """Exchange an authorization code for a token pair that starts a new chain.

    Raises:
        AuthorizationFailed: the token endpoint rejected the code or could not be reached.
    """
    token_url = f"{api_url.rstrip('/')}/oauth/2.0/token"
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client_id,
        "client_secret": client_secret,
        "redirect_uri": REDIRECT_URI,
    }
    try:
        # A code is single-use, so the exchange is sent once and never retried.
        response = requests.post(token_url, data=form, timeout=TOKEN_REQUEST_TIMEOUT)
    except requests.exceptions.RequestException as exc:
        detail = redact(f"{type(exc).__name__}: {exc}")
        raise AuthorizationFailed(
            text("error_connection", language, url=token_url, detail=detail)
        ) from None

    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}

    error = body.get("error")
    if isinstance(error, str) and response.status_code != 200:
        key = _ERROR_TEXT_KEYS.get(error)
        if key is not None:
            raise AuthorizationFailed(text(key, language))
        description = redact(body.get("error_description") or "")
        raise AuthorizationFailed(
            text("error_oauth_other", language, error=error, description=description)
        )

    access_token = body.get("access_token")
    refresh_token = body.get("refresh_token")
    if (
        response.status_code != 200
        or not isinstance(access_token, str)
        or not isinstance(refresh_token, str)
        or not access_token
        or not refresh_token
    ):
        raise AuthorizationFailed(
            text("error_unexpected_response", language, status=response.status_code)
        )
    register_secret(access_token)
    register_secret(refresh_token)

    try:
        lifetime = datetime.timedelta(seconds=int(body["expires_in"]))
    except (KeyError, TypeError, ValueError):
        lifetime = DEFAULT_ACCESS_TOKEN_LIFETIME
    obtained_at = utc_now()
    return StoredTokens(
        client_id=client_id,
        refresh_token=refresh_token,
        access_token=access_token,
        expires_at=obtained_at + lifetime,
        obtained_at=obtained_at,
        seed_sha256=sha256_hex(refresh_token),
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `tap-baidu-tongji-auth`."""
    parser = argparse.ArgumentParser(
        prog="tap-baidu-tongji-auth",
        description=(
            "Authorize tap-baidu-tongji to read Baidu Tongji data and save the token pair in "
            "the token store. Prompts and messages are in Chinese when LC_ALL, LC_MESSAGES, "
            "LANG or LANGUAGE starts with zh."
        ),
    )
    parser.add_argument(
        "--client-id",
        help=f"API Key of the Tongji data export service (default: ${ENV_CLIENT_ID}, or a prompt)",
    )
    parser.add_argument(
        "--client-secret",
        help=(
            f"Secret Key of the data export service (default: ${ENV_CLIENT_SECRET}, or a "
            "prompt that does not echo). An option value is visible to other local users "
            "in the process list, so prefer the variable or the prompt."
        ),
    )
    parser.add_argument(
        "--code",
        help="authorization code from the result page (default: a prompt)",
    )
    parser.add_argument(
        "--api-url",
        default=DEFAULT_API_URL,
        help=f"base URL of the Baidu OAuth and API server (default: {DEFAULT_API_URL})",
    )
    parser.add_argument(
        "--token-store-path",
        default=DEFAULT_TOKEN_STORE_PATH,
        help=(
            "token store file to write, the tap's token_store_path setting "
            f"(default: {DEFAULT_TOKEN_STORE_PATH} in the working directory)"
        ),
    )
    return parser


def _prompt(label: str, stdin: TextIO, stdout: TextIO) -> str:
    stdout.write(label)
    stdout.flush()
    line = stdin.readline()
    if not line:
        raise EOFError
    if not stdin.isatty():
        # Piped input is not echoed, so end the prompt line here.
        stdout.write("\n")
    return line.strip()


def _require(value: str | None, name: str, language: str) -> str:
    if not value:
        if language == CHINESE:
            # Chinese text puts a gloss in full-width parentheses.
            name = name.replace(" (", "（").replace(")", "）")
        raise AuthorizationFailed(text("error_missing_value", language, name=name))
    return value


def run(args: argparse.Namespace, language: str, stdin: TextIO, stdout: TextIO) -> None:
    """Run the authorization: prompt, exchange the code, write the store, print next steps.

    Raises:
        AuthorizationFailed: with a message ready to print.
        EOFError: the input ended at a prompt.
    """
    store = FileTokenStore(args.token_store_path)
    try:
        # Fail before the user spends a single-use code on a store that cannot be written.
        store.check_writable()
    except TokenStoreError as exc:
        raise AuthorizationFailed(text("error_store", language, detail=exc)) from None

    client_id = args.client_id or os.environ.get(ENV_CLIENT_ID)
    if not client_id:
        client_id = _prompt(text("prompt_client_id", language), stdin, stdout)
    client_id = _require(client_id, "API Key (client_id)", language)

    client_secret = args.client_secret or os.environ.get(ENV_CLIENT_SECRET)
    if not client_secret:
        if stdin.isatty():
            client_secret = getpass.getpass(text("prompt_client_secret", language))
        else:
            client_secret = _prompt(text("prompt_client_secret", language), stdin, stdout)
    client_secret = _require(client_secret, "Secret Key (client_secret)", language)
    register_secret(client_secret)

    code = args.code
    if not code:
        stdout.write(text("open_url", language, url=authorize_url(args.api_url, client_id)))
        stdout.write(text("code_explanation", language) + "\n")
        code = _prompt(text("prompt_code", language), stdin, stdout)
    code = _require(code, "code", language)
    register_secret(code)

    stdout.write(text("exchanging", language) + "\n")
    tokens = exchange_code(
        api_url=args.api_url,
        client_id=client_id,
        client_secret=client_secret,
        code=code,
        language=language,
    )
    try:
        with store.locked() as session:
            session.write(tokens)
    except TokenStoreError as exc:
        raise AuthorizationFailed(text("error_store", language, detail=exc)) from None

    expires_at = tokens.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    stdout.write(text("success", language, path=store.location, expires_at=expires_at) + "\n\n")
    stdout.write(text("next_steps", language, client_id=client_id, path=store.location) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tap-baidu-tongji-auth`. Returns the exit code: 0 on success, else 1."""
    language = detect_language()
    args = build_parser().parse_args(argv)
    try:
        run(args, language, sys.stdin, sys.stdout)
    except AuthorizationFailed as exc:
        print(redact(exc), file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        print("\n" + text("cancelled", language), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
