"""The one redaction function that every outgoing text with a possible secret passes through.

Baidu sends `access_token` in the query string of every data call, so URLs end up in
exception texts (requests, urllib3) and log lines. Redaction is by parameter name and, for
values registered with `register_secret`, by value, so a token without its name is caught too.
"""

from __future__ import annotations

import re
import threading

SECRET_PARAMETERS = ("access_token", "refresh_token", "client_secret", "code", "session_key")

_PARAMETER_PATTERN = re.compile(
    r"(?P<key>\b(?:" + "|".join(SECRET_PARAMETERS) + r")\b[\"']?\s*[=:]\s*[\"']?)"
    r"(?P<value>[^&\s\"',;}]+)",
)

MASK = "***"

_known_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret value so that `redact` masks it wherever it appears."""
    if value and len(value) >= 6:
        with _lock:
            _known_secrets.add(value)


def redact(text: object) -> str:
    """Return `text` with every secret parameter value and every registered secret masked."""
    result = _PARAMETER_PATTERN.sub(lambda m: m.group("key") + MASK, str(text))
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        result = result.replace(secret, MASK)
    return result
