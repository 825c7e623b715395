"""The delivery policy as pure functions: no I/O, no Twisted, no Peewee; ``now`` and the
random source are parameters, so every rule is a table test.

- backoff: the configured schedule, each delay with up to ±``JITTER`` random spread so
  that many deliveries failing together do not retry in lockstep;
- an attempt succeeds on 2xx only (no redirects followed);
- ``failureCount`` counts consecutive failed attempts and returns to 0 on any success;
- a delivery that failed its last scheduled attempt deactivates its webhook;
- a failing webhook gets one request at a time (a probe), and only for deliveries that
  already failed, until one succeeds;
- events for an inactive webhook are buffered within the window after deactivation and
  dropped (only counted) after it;
- deliveries about one subscriber to one URL keep their order (the ordering key).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

JITTER = 0.1


def retry_delay(failed_attempts: int, schedule: Sequence[float],
                rand: Callable[[], float]) -> float:
    """Seconds to wait after the ``failed_attempts``-th failed attempt (1-based).

    ``rand()`` returns a float in [0, 1); the delay is the schedule's value spread
    uniformly over ±JITTER of itself.
    """
    base = schedule[failed_attempts - 1]
    return max(0.0, base * (1.0 + JITTER * (2.0 * rand() - 1.0)))


def schedule_exhausted(failed_attempts: int, schedule: Sequence[float]) -> bool:
    """True once a delivery has failed its first attempt and every scheduled retry."""
    return failed_attempts > len(schedule)


def is_success(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def describe_failure(status: int | None, error: str | None) -> str:
    """The ``lastError`` text a customer sees."""
    if error:
        return error
    if status is not None and 300 <= status < 400:
        return f"HTTP {status} (redirects are not followed)"
    return f"HTTP {status}"


def failure_count_after(previous: int, success: bool) -> int:
    return 0 if success else previous + 1


class Admission(enum.Enum):
    DUE = "due"
    BUFFER = "buffer"
    DROP = "drop"


def admit(active: bool, deactivated_at: float | None, now: float,
          window_sec: float) -> Admission:
    """What happens to a new event for a webhook: sent, buffered or dropped."""
    if active:
        return Admission.DUE
    if deactivated_at is not None and now - deactivated_at <= window_sec:
        return Admission.BUFFER
    return Admission.DROP


def subscriber_of(data: dict) -> str | None:
    """The subscriber an event is about (``subscriber_id``), or None: it stands alone."""
    value = data.get("subscriber_id")
    if value is None or isinstance(value, bool) or isinstance(value, dict | list):
        return None
    return str(value)


def order_key(account_id: int, url: str, subscriber: str | None) -> str | None:
    """Deliveries with the same key reach the URL strictly in event order."""
    if subscriber is None:
        return None
    raw = f"{account_id}\0{url}\0{subscriber}".encode()
    return hashlib.sha256(raw).hexdigest()[:40]


@dataclass(frozen=True)
class Candidate:
    delivery_id: int
    webhook_id: int
    attempts: int
    failing: bool  # the webhook's failureCount > 0


def choose(candidates: Sequence[Candidate], in_flight: dict[int, int], capacity: int,
           per_webhook: int) -> list[Candidate]:
    """Pick due deliveries to start now, in the candidates' order.

    ``in_flight`` maps webhook id to requests already running. A healthy webhook gets up
    to ``per_webhook`` at once; a failing one only a single probe, and only for a
    delivery that has already failed (fresh ones wait until the webhook recovers), so a
    dead URL costs one slot and never delays the others.
    """
    chosen: list[Candidate] = []
    running = dict(in_flight)
    for cand in candidates:
        if len(chosen) >= capacity:
            break
        busy = running.get(cand.webhook_id, 0)
        if cand.failing:
            if busy or cand.attempts == 0:
                continue
        elif busy >= per_webhook:
            continue
        running[cand.webhook_id] = busy + 1
        chosen.append(cand)
    return chosen
