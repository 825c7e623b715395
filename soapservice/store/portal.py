"""What the customer portal reads (SPEC §7): an account's webhooks with their health and
counts, and the charts of their attempts.

The charts come from ``attempt_hours`` (models.AttemptHour): one row per webhook and
hour with the attempts that succeeded (2xx) and failed and a histogram of their
durations, added to in the outcome batch (:func:`count_attempts`, called where the
attempts are inserted). Counting the attempt log itself reads one row per attempt
(100,000 for a busy webhook's week); the rollup reads one per hour. Response-time
percentiles are estimated from the duration buckets (linear within a bucket).

The overview is four indexed queries whatever the number of webhooks: the webhooks, the
buffered counts, the held counts, the last 24 hours of the rollup. Everything here
blocks: call it from a pool thread.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from peewee import EXCLUDED, Tuple

from soapservice import policy, portal_links
from soapservice.models import Attempt, AttemptHour, Notification, Webhook
from soapservice.store import existing_secret, server_secret
from soapservice.store import webhooks as webhook_rows
from soapservice.store.prepared import Prepared

HOUR = 3600
DAY = 86400
# Upper bounds (ms) of the duration buckets; the last bucket is everything above.
DURATION_BOUNDS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
# Rollup rows older than this are no longer shown (the longest chart is 7 days).
KEEP_HOURS = 8 * 24
# The server key of the reactivation links (notify.KEY_NAME), from which the portal
# links' key is derived (soapservice.portal_links).
SERVER_KEY_NAME = "reactivation_key"

HEALTHY, FAILING, INACTIVE = "healthy", "failing", "inactive"


def health(hook: Webhook) -> str:
    """``inactive`` (deactivated), ``failing`` (active, failed since its last success:
    ``failureCount`` > 0), else ``healthy``: the states of ``soapservice webhooks``."""
    if not hook.active:
        return INACTIVE
    return FAILING if hook.failure_count > 0 else HEALTHY


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bar of a chart: attempts that started in [start, start + length)."""

    start: float  # UNIX seconds
    succeeded: int
    failed: int
    p50_ms: float | None = None  # None: no attempt in the bucket
    p95_ms: float | None = None


@dataclass(frozen=True)
class WebhookOverview:
    """One row of the portal's overview (the GetWebHooks fields a customer reads, plus
    the health and the last 24 hours)."""

    id: int
    app: str
    event: str
    url: str
    active: bool
    health: str  # healthy | failing | inactive
    failure_count: int
    buffered: int
    held: int
    dropped: int
    last_success_at: float | None
    last_failure_at: float | None
    last_error: str | None
    deactivated_at: float | None
    hours: list[Bucket]  # 24 hourly buckets, oldest first, the last one the current hour


@dataclass(frozen=True)
class Chart:
    """A webhook's chart data: 24 hourly and 7 daily (UTC days) buckets, oldest first
    (the last ones are the current hour and today), and the percentiles over each span."""

    webhook_id: int
    hours: list[Bucket]
    days: list[Bucket]
    p50_ms_24h: float | None
    p95_ms_24h: float | None
    p50_ms_7d: float | None
    p95_ms_7d: float | None


# -- recording ---------------------------------------------------------------------------
def bucket_of(duration_ms: float) -> int:
    """The duration bucket of an attempt (an index into DURATION_BOUNDS_MS, or its
    length for the open top bucket)."""
    return bisect.bisect_left(DURATION_BOUNDS_MS, duration_ms)


_DURATIONS = [getattr(AttemptHour, f"d{i}") for i in range(len(DURATION_BOUNDS_MS) + 1)]
_COUNTS = [AttemptHour.succeeded, AttemptHour.failed, *_DURATIONS]


def _tally(counts: dict[tuple[int, int], list[int]], webhook_id: int, at: float,
           status: int | None, duration_ms: float | None) -> None:
    row = counts.setdefault((int(webhook_id), int(at // HOUR)), [0] * len(_COUNTS))
    row[0 if policy.is_success(status) else 1] += 1
    row[2 + bucket_of(duration_ms or 0.0)] += 1


def count_attempts(rows: Iterable[Sequence]) -> None:
    """Add attempts to the hourly rollup. ``rows``: the outcome batch's attempt rows
    ``(delivery_id, webhook_id, at, status, error, duration_ms, ...)``. Runs as the
    outcome transaction's last statement: every worker's batches add to the same rows,
    in (webhook, hour) order, so their row locks are held for the commit only."""
    counts: dict[tuple[int, int], list[int]] = {}
    for row in rows:
        _tally(counts, row[1], row[2], row[3], row[5])
    if counts:
        _add(counts)


def _add(counts: dict[tuple[int, int], list[int]]) -> None:
    """One upsert: new (webhook, hour) rows inserted, existing ones added to."""
    _ADD.execute(*[(w, h, *values) for (w, h), values in sorted(counts.items())])


# The upsert's SQL text built once per number of rows (Peewee built it at every outcome
# batch: 14 columns x 20 webhooks took ~40 us per delivery, a third of the batch's CPU).
_ADD = Prepared(AttemptHour, lambda *rows: AttemptHour.insert_many(
    rows, fields=[AttemptHour.webhook_id, AttemptHour.hour, *_COUNTS],
).on_conflict(
    conflict_target=[AttemptHour.webhook_id, AttemptHour.hour],
    update={field: field + getattr(EXCLUDED, field.column_name) for field in _COUNTS},
))


def backfill(since: float) -> int:
    """Fill the rollup from the attempt log since ``since`` (the schema step that adds
    the rollup, on a store that already has attempts). Returns the attempts counted."""
    counts: dict[tuple[int, int], list[int]] = {}
    total = 0
    query = (Attempt.select(Attempt.webhook_id, Attempt.at, Attempt.status,
                            Attempt.duration_ms)
             .where(Attempt.at >= since).tuples())
    for webhook_id, at, status, duration in query.iterator():
        _tally(counts, webhook_id, at, status, duration)
        total += 1
    AttemptHour.delete().execute()
    items = sorted(counts.items())
    for start in range(0, len(items), 200):
        _add(dict(items[start:start + 200]))
    return total


def purge_rollup(now: float, chunk: int = 1000) -> int:
    """Delete up to ``chunk`` rollup rows older than KEEP_HOURS (a step of the retention
    purge, on the hour index); returns how many. A deleted webhook's rows age out the
    same way (its id is never given again)."""
    keys = list(AttemptHour.select(AttemptHour.webhook_id, AttemptHour.hour)
                .where(AttemptHour.hour < int(now // HOUR) - KEEP_HOURS)
                .limit(chunk).tuples())
    if not keys:
        return 0
    return AttemptHour.delete().where(
        Tuple(AttemptHour.webhook_id, AttemptHour.hour).in_(keys)).execute()


# -- reading -----------------------------------------------------------------------------
def _rows(query) -> list[tuple]:
    """The rows of a rollup SELECT as the driver returns them: every column is an
    integer, so Peewee's per-row conversion (two thirds of the overview's time at
    2,400 rows, cProfile) has nothing to do."""
    return list(AttemptHour._meta.database.execute(query).fetchall())


def _percentile(histogram: Sequence[int], fraction: float) -> float | None:
    """The duration (ms) below which ``fraction`` of the attempts fall, interpolated
    linearly inside its bucket (the open top bucket answers its lower bound)."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            if index >= len(DURATION_BOUNDS_MS):
                return float(DURATION_BOUNDS_MS[-1])
            low = DURATION_BOUNDS_MS[index - 1] if index else 0
            high = DURATION_BOUNDS_MS[index]
            return round(low + (high - low) * (rank - seen) / count, 1)
        seen += count
    return float(DURATION_BOUNDS_MS[-1])


def _bucket(start: float, counts: list[int]) -> Bucket:
    histogram = counts[2:]
    return Bucket(start, counts[0], counts[1], _percentile(histogram, 0.5),
                  _percentile(histogram, 0.95))


def overview(account_id: int, now: float | None = None,
             webhook_ids: Sequence[int] | None = None) -> list[WebhookOverview]:
    """The account's webhooks (oldest first; only ``webhook_ids`` when given, still only
    the account's), each with its health, counts, last success/failure and 24 hourly
    buckets of (succeeded, failed) attempts ending with the current hour."""
    now = time.time() if now is None else now
    query = Webhook.select().where(Webhook.account == account_id)
    if webhook_ids is not None:
        query = query.where(Webhook.id.in_(list(webhook_ids)))
    # (a subquery, not 100 ids: Peewee builds a node per listed value)
    account_hooks = query.select(Webhook.id)
    hooks = list(query.order_by(Webhook.id))
    if not hooks:
        return []
    ids = [h.id for h in hooks]
    buffered = webhook_rows.buffered_counts(hooks)
    held = webhook_rows.held_counts(hooks)
    this_hour = int(now // HOUR)
    first = this_hour - 23
    counts: dict[int, list[list[int]]] = {i: [[0, 0] for _ in range(24)] for i in ids}
    rows = (AttemptHour.select(AttemptHour.webhook_id, AttemptHour.hour,
                               AttemptHour.succeeded, AttemptHour.failed)
            .where(AttemptHour.webhook_id.in_(account_hooks) & (AttemptHour.hour >= first)
                   & (AttemptHour.hour <= this_hour)))
    for webhook_id, hour, ok, bad in _rows(rows):
        counts[webhook_id][hour - first] = [ok, bad]
    return [WebhookOverview(
        h.id, h.app, h.event, h.url, bool(h.active), health(h), h.failure_count, b, k,
        h.dropped_events, h.last_success_at, h.last_failure_at, h.last_error,
        h.deactivated_at,
        [Bucket(float((first + i) * HOUR), ok, bad)
         for i, (ok, bad) in enumerate(counts[h.id])])
        for h, b, k in zip(hooks, buffered, held, strict=True)]


def chart(account_id: int, webhook_id: int, now: float | None = None) -> Chart | None:
    """The webhook's chart: 24 hourly buckets ending with the current hour and 7 UTC
    days ending today, succeeded vs failed attempts, with estimated p50/p95 response
    times (of all attempts) per bucket and per span. None when the account has no such
    webhook."""
    now = time.time() if now is None else now
    if webhook_rows.get(account_id, webhook_id) is None:
        return None
    this_hour = int(now // HOUR)
    first_hour = this_hour - 23
    first_day = int(now // DAY) * DAY - 6 * DAY
    width = len(_COUNTS)
    hours = [[0] * width for _ in range(24)]
    days = [[0] * width for _ in range(7)]
    rows = (AttemptHour.select(AttemptHour.hour, *_COUNTS)
            .where((AttemptHour.webhook_id == webhook_id)
                   & (AttemptHour.hour >= first_day // HOUR)
                   & (AttemptHour.hour <= this_hour)))
    for hour, *values in _rows(rows):
        targets = [days[(hour * HOUR - first_day) // DAY]]
        if hour >= first_hour:
            targets.append(hours[hour - first_hour])
        for target in targets:
            for i, value in enumerate(values):
                target[i] += value
    span_24h = [sum(h[i] for h in hours) for i in range(2, width)]
    span_7d = [sum(d[i] for d in days) for i in range(2, width)]
    return Chart(
        webhook_id,
        [_bucket(float((first_hour + i) * HOUR), row) for i, row in enumerate(hours)],
        [_bucket(float(first_day + i * DAY), row) for i, row in enumerate(days)],
        _percentile(span_24h, 0.5), _percentile(span_24h, 0.95),
        _percentile(span_7d, 0.5), _percentile(span_7d, 0.95))


# -- links -------------------------------------------------------------------------------
def link_key(create: bool = True) -> bytes | None:
    """The server key the portal links are signed under (portal_links derives its own
    key from it). ``create=False`` (a GET checking a link): None when none exists yet,
    rather than creating it."""
    return server_secret(SERVER_KEY_NAME) if create else existing_secret(SERVER_KEY_NAME)


def make_link(base_url: str, account_id: int, webhook_id: int, expires_at: float) -> str:
    """A signed portal link for a notification (creates the server key if needed)."""
    key = link_key()
    assert key is not None
    return portal_links.make_link(key, base_url, account_id, webhook_id, expires_at)


def open_link(token: str, now: float | None = None) -> portal_links.PortalLink:
    """What a portal link's token names, checked against the store: its signature and
    expiry (:class:`portal_links.LinkError`), and that the webhook still belongs to the
    account (else LinkError too, ``expired`` False)."""
    now = time.time() if now is None else now
    key = link_key(create=False)
    if key is None:
        raise portal_links.LinkError("the link is not valid")
    link = portal_links.verify(key, token, now)
    if webhook_rows.get(link.account_id, link.webhook_id) is None:
        raise portal_links.LinkError("the webhook of this link no longer exists")
    return link


def latest_notification(account_id: int, webhook_id: int) -> Notification | None:
    """The webhook's newest notification (its reason and links), or None."""
    return (Notification.select()
            .where((Notification.account == account_id)
                   & (Notification.webhook_id == webhook_id))
            .order_by(Notification.created_at.desc(), Notification.id.desc()).first())
