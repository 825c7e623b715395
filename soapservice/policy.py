"""The delivery policy as pure functions: no I/O, no Twisted, no Peewee; ``now`` and the
random source are parameters, so every rule is a table test.

- backoff: the configured schedule, each delay with up to ±``JITTER`` random spread so
  that many deliveries failing together do not retry in lockstep; while the receiver does
  not look down, a failure is taken as an isolated one and its first retries come sooner
  (``QUICK_RETRY_SEC``), so a receiver failing now and then keeps up with its load;
- an attempt succeeds on 2xx only (no redirects followed);
- ``failureCount`` counts consecutive failed attempts and returns to 0 on any success;
- a delivery that failed its last scheduled attempt deactivates its webhook;
- a webhook whose receiver looks down (a run of failures) gets one request at a time
  (a probe), only for deliveries that already failed, until one succeeds;
- the capacity is shared round-robin over the webhooks with free slots, each webhook's
  limit shrunk to its fair share of the process's limit while others wait, and to what
  the loop learned of its receiver (a hanging one gets one request at a time);
- events for an inactive webhook are buffered within the window after deactivation and
  dropped (only counted) after it;
- deliveries about one subscriber to one URL keep their order (the ordering key).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

JITTER = 0.1
# The first retries of an isolated failure (the receiver does not look down), each never
# later than the schedule's: a delivery that fails at random is retried within seconds,
# not after 10 s and then 60 s while its subscriber's later events wait behind it. They
# use up the schedule's first entries as any retry (deactivation comes after the whole
# schedule's count of attempts, a few minutes sooner than the schedule alone says).
QUICK_RETRY_SEC = (1.0, 2.0, 5.0, 10.0, 20.0)
QUICK_JITTER = 0.5  # ±50 %: deliveries failing together at a hiccup spread out


def retry_delay(failed_attempts: int, schedule: Sequence[float],
                rand: Callable[[], float], failure_count: int | None = None) -> float:
    """Seconds to wait after the ``failed_attempts``-th failed attempt (1-based).

    ``rand()`` returns a float in [0, 1); the delay is the schedule's value spread
    uniformly over ±JITTER of itself. ``failure_count`` is the webhook's run of
    consecutive failures, this one included: while the receiver does not look down
    (:func:`probing` is false) the failure is an isolated one and the first
    ``len(QUICK_RETRY_SEC)`` retries wait ``QUICK_RETRY_SEC`` (±QUICK_JITTER) where
    that is sooner than the schedule. A receiver that looks down gets the schedule, so
    a dead one still backs off. ``None`` (the caller does not know): the schedule.
    """
    base = schedule[failed_attempts - 1]
    if (failure_count is not None and not probing(failure_count)
            and failed_attempts <= len(QUICK_RETRY_SEC)
            and QUICK_RETRY_SEC[failed_attempts - 1] < base):
        quick = QUICK_RETRY_SEC[failed_attempts - 1]
        return quick * (1.0 + QUICK_JITTER * (2.0 * rand() - 1.0))
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


def subscriber_of(data: dict[str, object]) -> str | None:
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


# A webhook's receiver "looks down" after this many consecutive failed attempts; before
# that, a failure is only retried (a receiver failing now and then keeps its full load).
PROBE_AFTER_FAILURES = 10


def probing(failure_count: int) -> bool:
    """True while the webhook gets one request at a time (a circuit breaker, half open):
    after a run of failures, until an attempt succeeds. The probe is a delivery that
    already failed, sent when its own retry is due, so a dead receiver is asked about as
    often as the retry schedule says, not once per fresh event."""
    return failure_count >= PROBE_AFTER_FAILURES


# A receiver that has requests running and answered none of them for this long (or
# STALE_FACTOR times its usual answer time, if that is longer) counts as hanging: no
# further request starts for its webhook until one ends (an answer or the delivery
# timeout). One slow answer among quick ones does not count: the others answer.
STALE_SEC = 1.0
STALE_FACTOR = 4.0


def stale_after(usual_sec: float | None) -> float:
    """How long a webhook's request may go unanswered before the webhook counts as
    hanging, given how long its receiver usually takes to answer (None: not known)."""
    return max(STALE_SEC, STALE_FACTOR * (usual_sec or 0.0))


# While webhooks wait for the process's slots, one whose receiver has not answered
# lately gets this many requests at once until it answers: a receiver that never
# answers holds one slot of the process, not its whole share.
INITIAL_LIMIT = 1
# ... and such webhooks together hold at most the process's limit less this part of it:
# the rest stays for receivers that answer, however many webhooks hang (more than the
# process's limit: each holds one slot, and would hold them all).
UNHEARD_RESERVE = 1 / 8


def limit_after_answer(previous: int, per_webhook: int, timed_out: bool) -> int:
    """A webhook's limit learned from its answers (additive increase, multiplicative
    decrease): halved at each attempt that timed out, one more at each answer, up to
    ``per_webhook``. Failed answers (5xx, refused) are answers: they do not lower it."""
    if timed_out:
        return max(1, previous // 2)
    return min(per_webhook, previous + 1)


def learned_limits(after_timeouts: Mapping[int, int], unanswered_since: Mapping[int, float],
                   usual_sec: Mapping[int, float], now: float) -> dict[int, int]:
    """The lower limits the loop knows of its receivers: the one learned from time-outs
    (:func:`limit_after_answer`), and 1 for a webhook with requests running whose
    receiver has been silent (``unanswered_since``: the oldest running request's start,
    or its latest answer if later) longer than :func:`stale_after` (hanging)."""
    limits = dict(after_timeouts)
    for hook_id, since in unanswered_since.items():
        if now - since >= stale_after(usual_sec.get(hook_id)):
            limits[hook_id] = 1
    return limits


@dataclass(frozen=True)
class Limits:
    """How many requests a webhook may have running, for :func:`fair_share`.

    ``per_webhook``: SOAPSERVICE_WEBHOOK_CONCURRENCY. ``total``: the process's limit
    (SOAPSERVICE_GLOBAL_CONCURRENCY); when given, a webhook's limit shrinks to its fair
    share of it while other webhooks wait (:func:`share_of`), so webhooks whose requests
    hang never hold every slot. ``active``: webhooks that had requests lately; they count
    as waiting for their share even at a moment when nothing of theirs is due (a
    receiver that answers at once has nothing running most of the time, and would
    otherwise leave its room to the ones whose requests pile up). ``learned``: lower
    limits per webhook from what the loop saw of its receiver (:func:`learned_limits`).
    ``heard``: when given, while the total is shared (the share is below
    ``per_webhook``), a webhook not among them gets at most ``initial`` at once, and
    such webhooks together hold at most the total less :data:`UNHEARD_RESERVE` of it.
    """

    per_webhook: int
    total: int | None = None
    active: AbstractSet[int] = frozenset()
    learned: Mapping[int, int] = field(default_factory=dict)
    heard: AbstractSet[int] | None = None  # webhooks whose receivers answered lately
    initial: int = INITIAL_LIMIT


def share_of(demands: Sequence[int], total: int, idle: int = 0, idle_demand: int = 0
             ) -> int:
    """The fair (max-min) share of ``total`` slots: the largest number per webhook such
    that every contender fits, each holding or wanting ``min(demand, share)``.
    ``demands``: one per contender (its limit when it has due work, or what it runs if
    more; what it runs when it has none); ``idle`` more contenders each wanting
    ``idle_demand``. When all fit at their demand: the largest demand."""
    blocks = sorted([(demand, 1) for demand in demands] + [(idle_demand, idle)])
    left = len(demands) + idle
    used = 0
    for demand, count in blocks:
        if not count:
            continue
        if used + demand * left > total:
            return (total - used) // left
        used += demand * count
        left -= count
    return max((demand for demand, count in blocks if count), default=total)


def _share(wanted: Mapping[int, int], in_flight: Mapping[int, int], limits: Limits) -> int:
    """:func:`share_of` the total among the webhooks with due work (``wanted``: their
    limits), those running requests and those active lately. Cheap in the two common
    cases: all fit (the per-webhook limit) and more contenders than slots (one)."""
    assert limits.total is not None
    active = limits.active
    others = []  # what webhooks without due work hold
    counted = 0  # contenders that are in ``active`` (counted, not by walking it: 10,000)
    for hook_id, count in in_flight.items():
        if count > 0 and hook_id not in wanted:
            others.append(count)
            counted += hook_id in active
    counted += sum(1 for hook_id in wanted if hook_id in active)
    idle = len(active) - counted
    contenders = len(wanted) + len(others) + idle
    if contenders * limits.per_webhook <= limits.total:
        return limits.per_webhook  # all fit at the per-webhook limit: no cap
    if contenders >= limits.total:
        return 1  # each wants one at least: one each (at most one round of the total)
    demands = [max(limit, in_flight.get(hook_id, 0)) for hook_id, limit in wanted.items()]
    return share_of(demands + others, limits.total, idle, limits.per_webhook)


def fair_share(fronts: Sequence[tuple[int, bool]], in_flight: dict[int, int],
               capacity: int, per_webhook: int | Limits) -> dict[int, int]:
    """How many due deliveries each webhook may start now.

    ``fronts`` lists (webhook id, probing) of the webhooks with due work, the one whose
    work waits longest first; ``in_flight`` the requests already running per webhook.
    The capacity goes round-robin, one per webhook per round, to webhooks with a free
    slot: a healthy webhook up to ``per_webhook`` at once (or :class:`Limits`: the
    smaller of that, its learned limit and its fair share of the total), a probing one a
    single request. A webhook at its limit takes nothing, so however many hang, the
    others get the capacity; and no webhook takes a second slot while another waits for
    its first.
    """
    limits = per_webhook if isinstance(per_webhook, Limits) else Limits(per_webhook)
    per, learned = limits.per_webhook, limits.learned
    wanted: dict[int, int] = {}
    for hook_id, is_probing in fronts:
        wanted[hook_id] = 1 if is_probing else max(1, min(per, learned.get(hook_id, per)))
    if limits.total is not None and wanted:
        share = _share(wanted, in_flight, limits)
        if share < per and limits.heard is not None:
            heard, initial = limits.heard, limits.initial
            wanted = {hook_id: limit if hook_id in heard else min(limit, initial)
                      for hook_id, limit in wanted.items()}
            share = _share(wanted, in_flight, limits)
        if share < per:
            wanted = {hook_id: min(limit, max(1, share)) for hook_id, limit in wanted.items()}
    free = {}
    for hook_id, limit in wanted.items():
        slots = limit - in_flight.get(hook_id, 0)
        if slots > 0:
            free[hook_id] = slots
    unheard: set[int] = set()  # webhooks not heard from lately, with a free slot
    unheard_left = 0  # slots they may still take, in all
    if limits.total is not None and limits.heard is not None:
        heard = limits.heard
        unheard = {hook_id for hook_id in free if hook_id not in heard}
        held = sum(count for hook_id, count in in_flight.items() if hook_id not in heard)
        unheard_left = limits.total - int(limits.total * UNHEARD_RESERVE) - held
    shares: dict[int, int] = {}
    left = capacity
    while left > 0 and free:
        for hook_id in list(free):
            if left == 0:
                break
            if hook_id in unheard:
                if unheard_left <= 0:
                    del free[hook_id]
                    continue
                unheard_left -= 1
            shares[hook_id] = shares.get(hook_id, 0) + 1
            left -= 1
            free[hook_id] -= 1
            if not free[hook_id]:
                del free[hook_id]
    return shares
