"""The Singer message writer: the SDK's JSON lines, serialized faster and written in batches.

singer-sdk 0.54's `SimpleSingerWriter` encodes each message with simplejson and flushes
stdout after every message. For report streams with thousands of rows a day that flush is
one write system call per record, and each call lets the fetch threads take the GIL.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import sys
import time
from typing import Any

from singer_sdk.singerlib.encoding.simple import Message, SimpleSingerWriter
from singer_sdk.singerlib.json import serialize_json
from singer_sdk.singerlib.messages import SingerMessageType

logger = logging.getLogger(__name__)

FLUSH_AT_CHARACTERS = 64 * 1024
"""Buffered RECORD lines are written once they reach this size."""
FLUSH_AT_SECONDS = 1.0
"""Buffered RECORD lines are written at the next message once they are this old."""


class _NotPlainJSONError(TypeError):
    """A value that the standard library would encode differently from the SDK."""


def _encode_datetime(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep="T")
    raise _NotPlainJSONError(type(value).__name__)


_ENCODER = json.JSONEncoder(
    separators=(",", ":"), allow_nan=False, default=_encode_datetime, ensure_ascii=True
)


def serialize_message_dict(message: dict[str, Any]) -> str:
    """Return the JSON line the SDK's writer would write for `message`, without the newline.

    The standard library's C encoder writes what simplejson writes for JSON-parsed values,
    strings, numbers and datetimes, in less time. Values it would encode differently (Decimal,
    NaN and infinity, other objects) send the whole message to the SDK's own serializer.
    NOTE: a tuple subclass such as a namedtuple would still become a JSON array here, where
    simplejson writes an object; records hold only JSON-parsed values and strings.
    """
    try:
        return _ENCODER.encode(message)
    except (_NotPlainJSONError, ValueError):
        return serialize_json(message)


class BufferedSingerWriter(SimpleSingerWriter):
    """Write RECORD lines in batches of whole lines, and every other message at once.

    A STATE, SCHEMA or other message first writes every buffered line and then flushes stdout,
    so a target never sees a bookmark before the records it covers. Buffered lines are also
    written when they reach `FLUSH_AT_CHARACTERS`, at the next message after
    `FLUSH_AT_SECONDS`, and at interpreter exit.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lines: list[str] = []
        self._characters = 0
        self._last_flush = time.monotonic()
        atexit.register(self._flush_at_exit)

    def serialize_message(self, message: Message) -> str:
        """Serialize a message into one JSON line, as the SDK's writer does."""
        message_dict = message.to_dict()
        # Formatting it here spares the encoder a call back into Python for every record.
        extracted = message_dict.get("time_extracted")
        if isinstance(extracted, dt.datetime):
            message_dict["time_extracted"] = extracted.isoformat(sep="T")
        return serialize_message_dict(message_dict)

    def write_message(self, message: Message) -> None:
        """Buffer a RECORD line, or write the buffer and any other message to stdout."""
        line = self.format_message(message) + "\n"
        self._lines.append(line)
        self._characters += len(line)
        if (
            message.type is not SingerMessageType.RECORD
            or self._characters >= FLUSH_AT_CHARACTERS
            or time.monotonic() - self._last_flush >= FLUSH_AT_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        """Write every buffered line in one call and flush stdout."""
        if self._lines:
            sys.stdout.write("".join(self._lines))
            self._lines.clear()
            self._characters = 0
        sys.stdout.flush()
        self._last_flush = time.monotonic()

    def _flush_at_exit(self) -> None:
        if not self._lines:
            return
        try:
            self.flush()
        except (OSError, ValueError) as error:
            # The reader of stdout is gone or stdout is closed, so the lines cannot be sent.
            logger.warning("Could not write %d buffered Singer lines: %s", len(self._lines), error)
