"""Receivers steer delivery (SPEC §7, Standard Webhooks semantics), as pure functions
beside :mod:`soapservice.policy`: no I/O, ``now`` is a parameter.

- ``410 Gone``: the URL is gone for good; the webhook is deactivated at once (reason
  ``gone (410)``), as after a used-up schedule;
- ``429`` and ``503`` with ``Retry-After`` (delta-seconds or an HTTP-date): the whole
  webhook waits until then, at most ``max_sec`` (SOAPSERVICE_MAX_RETRY_AFTER) ahead;
  the attempt still counts as failed. Without a usable ``Retry-After`` they are plain
  failures (the retry schedule applies);
- nothing else steers: a 2xx with ``webhook-delivery: disable`` (Svix's hosted
  extension) is not honoured.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

GONE_REASON = "gone (410)"
PAUSING_STATUSES = frozenset({429, 503})
DEFAULT_MAX_RETRY_AFTER_SEC = 3600.0


class Steer(enum.Enum):
    NONE = "none"      # the retry policy decides, as for any answer
    GONE = "gone"      # deactivate the webhook now
    PAUSE = "pause"    # no request to the webhook before ``until``


@dataclass(frozen=True)
class Steering:
    steer: Steer
    until: float | None = None  # PAUSE: the time the webhook may be sent to again
    reason: str | None = None   # GONE: the deactivation reason


NO_STEERING = Steering(Steer.NONE)


def retry_after(value: str | None, now: float) -> float | None:
    """The time ``Retry-After`` names (RFC 9110 §10.2.3: delta-seconds or an
    HTTP-date), or None when it is absent or unreadable. A date in the past is now."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return now + int(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:  # RFC 9110 dates are in GMT
        return None
    return max(now, moment.timestamp())


def steering(status: int | None, retry_after_header: str | None, now: float,
             max_sec: float = DEFAULT_MAX_RETRY_AFTER_SEC) -> Steering:
    """What the receiver's answer asks for."""
    if status == 410:
        return Steering(Steer.GONE, reason=GONE_REASON)
    if status in PAUSING_STATUSES:
        until = retry_after(retry_after_header, now)
        if until is not None:
            return Steering(Steer.PAUSE, until=min(until, now + max(0.0, max_sec)))
    return NO_STEERING
