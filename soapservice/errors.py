"""The envelope's error codes, as the legacy platform numbers them (SPEC §1)."""

from enum import IntEnum


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
