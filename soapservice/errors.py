"""The envelope's error codes, as the legacy platform numbers them (SPEC §1), and the
one way an unexpected error is logged."""

from __future__ import annotations

import logging
import sys
import uuid
from enum import IntEnum
from typing import Any


class Error(IntEnum):
    OK = 0
    AUTH_FAILED = 1
    MISSING_PARAMETER = 2
    UNKNOWN_EVENT = 3
    INVALID_URL = 4
    NOT_FOUND = 5
    INVALID_VALUE = 6
    LIMIT_REACHED = 7
    THROTTLED = 8
    INTERNAL = 99


DESCRIPTIONS = {
    Error.OK: "success",
    Error.AUTH_FAILED: "authentication failed",
    Error.MISSING_PARAMETER: "a required parameter is missing",
    Error.UNKNOWN_EVENT: "unknown event",
    Error.INVALID_URL: "invalid URL",
    Error.NOT_FOUND: "webhook not found",
    Error.INVALID_VALUE: "invalid parameter value",
    Error.LIMIT_REACHED: "webhook limit of the account reached",
    Error.THROTTLED: "too many requests or failed logins",
    Error.INTERNAL: "internal error",
}

EVENTS = ("optin_finalized", "optout_finalized", "profilemanager_finalized")


def log_internal_error(logger: logging.Logger, what: str, failure: Any = None) -> str:
    """Log an unexpected error once as ``<what>: internal error, reference <ref>`` with
    its traceback, and return the reference, which the client's answer carries so that
    an operator finds the traceback by it. ``failure``: a Twisted ``Failure``; without
    it, the exception being handled."""
    reference = uuid.uuid4().hex[:12]
    exc_info: Any = True
    if failure is not None:
        exc_info = (failure.type, failure.value, failure.getTracebackObject())
    exc = failure.value if failure is not None else sys.exc_info()[1]
    from soapservice import outage
    if exc is not None and outage.is_store_error(exc):
        # The store is failing: one line per episode with the real cause, no traceback.
        outage.STORE.failed(exc, what)
        return reference
    logger.error("%s: internal error, reference %s", what, reference, exc_info=exc_info)
    return reference
