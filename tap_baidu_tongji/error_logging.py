"""Tracebacks only where they help: errors whose message states the fix are logged without one.

The Singer SDK's CLI logs any error that ends a run with its traceback. For the tap's own
errors (a Tongji API error naming method, site and day; a missing authorization; an unusable
token store) the message is the whole story, so the traceback is kept for DEBUG only.
"""

from __future__ import annotations

import logging

from tap_baidu_tongji.auth import AuthorizationRequired, TokenStoreError
from tap_baidu_tongji.errors import TongjiAPIError

SELF_EXPLAINING_ERRORS = (TongjiAPIError, AuthorizationRequired, TokenStoreError)


class SelfExplainingErrorFilter(logging.Filter):
    """Drop the traceback from records of self-explaining errors unless DEBUG is on."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record; strip `exc_info` where the message already explains the error."""
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, SELF_EXPLAINING_ERRORS) and not self._logger.isEnabledFor(
            logging.DEBUG
        ):
            record.exc_info = None
            record.exc_text = None
        return True


def install(logger: logging.Logger) -> None:
    """Attach the filter to `logger` once; the SDK's CLI logs run-ending errors there."""
    if not any(isinstance(f, SelfExplainingErrorFilter) for f in logger.filters):
        logger.addFilter(SelfExplainingErrorFilter(logger))
