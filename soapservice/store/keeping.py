"""How long personal data is kept beyond the delivery retention (SPEC §7 "Operators"):
buffered events at most ``SOAPSERVICE_BUFFER_KEEP_DAYS`` after their webhook's
deactivation (then dropped and counted in ``droppedEvents``), notifications and their
spent reactivation links with the retention, the audit trail (operator events) for
``SOAPSERVICE_AUDIT_DAYS``.

Each step is bounded: one transaction of at most ``chunk`` rows, so a large backlog
never holds the write lock for long (a DELETE of 100,000s of rows in one statement holds
SQLite's write lock for seconds). The delivery loop's purge (soapservice.purging) runs
them after the retention purge, :data:`STEP_CHUNK` rows at a time with a pause between
transactions; :func:`run` runs them back to back (operators, tests).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from peewee import SQL, fn

from soapservice.models import (
    BUFFERED,
    PENDING,
    Delivery,
    IdempotencyKey,
    Notification,
    OperatorEvent,
    Webhook,
)
from soapservice.store import INGEST_LOCK, advisory_lock, heads, is_postgres, write_transaction

log = logging.getLogger(__name__)

CHUNK = 2000
# Rows per transaction when the delivery loop runs the steps (a few ms each).
STEP_CHUNK = 200
# A deactivation moves at most this many rows to the buffer in its own (the outcome
# batch's) transaction; the rest follows in steps (:func:`buffer_step`).
BUFFER_CHUNK = 500


@dataclass(frozen=True)
class Kept:
    """What one run of :func:`run` removed."""

    buffered_dropped: int = 0
    notifications: int = 0
    audit: int = 0
    idempotency_keys: int = 0


def buffer_chunk(hook_id: int, chunk: int) -> tuple[int, list[str]]:
    """Move up to ``chunk`` pending deliveries of the (inactive) webhook to its buffer,
    oldest first, and recompute their keys (what other webhooks queued behind them is
    held now). The caller holds the locks (a write transaction; PostgreSQL: the webhook
    row). Returns (rows moved, keys touched)."""
    rows = list(Delivery.select(Delivery.id, Delivery.order_key).where(
        (Delivery.webhook == hook_id) & (Delivery.state == PENDING))
        .order_by(Delivery.seq).limit(chunk).tuples())
    if not rows:
        return 0, []
    Delivery.update(state=BUFFERED, lease_owner=None, lease_token=None, lease_until=None
                    ).where(Delivery.id.in_([d_id for d_id, _k in rows])).execute()
    keys = sorted({k for _d, k in rows if k is not None})
    heads.refresh(keys)
    return len(rows), keys


def buffer_step(chunk: int = STEP_CHUNK) -> int:
    """The rest of a deactivation: up to ``chunk`` pending deliveries of an inactive
    webhook moved to its buffer in one transaction (a deactivation moves the first
    :data:`BUFFER_CHUNK` itself, so no outcome batch holds the write lock for a queue of
    100,000). Until then they are part of the buffer all the same: the claim skips
    inactive webhooks, what waits behind them in their keys waits (``WAITING`` rather
    than ``HELD``), and activation replays or discards them with the buffer
    (store.webhooks.activate). Returns how many moved; 0 when nothing is left."""
    with write_transaction():
        if is_postgres():  # keys recomputed: the ingest lock first, as ingest takes it
            advisory_lock(INGEST_LOCK)
        query = (Webhook.select(Webhook.id).where(
            (Webhook.active == False) & fn.EXISTS(  # noqa: E712
                Delivery.select(SQL("1")).where((Delivery.webhook == Webhook.id)
                                                & (Delivery.state == PENDING))))
            .order_by(Webhook.id).limit(1))
        if is_postgres():
            query = query.for_update("FOR NO KEY UPDATE")
        hook = query.first()
        if hook is None:
            return 0
        return buffer_chunk(hook.id, chunk)[0]


def drop_expired_buffers(now: float, keep_sec: float, chunk: int = CHUNK) -> int:
    """Delete the buffered deliveries of webhooks deactivated more than ``keep_sec``
    ago and still inactive, counting each in the webhook's ``droppedEvents``. Returns
    how many were dropped."""
    dropped = 0
    while True:
        count = drop_step(now, keep_sec, chunk)
        dropped += count
        if not count:
            break
    if dropped:
        log.info("dropped %d buffered events kept longer than %.4g days after their "
                 "webhook's deactivation", dropped, keep_sec / 86400)
    return dropped


def drop_step(now: float, keep_sec: float, chunk: int = CHUNK) -> int:
    """One transaction of :func:`drop_expired_buffers`: up to ``chunk`` buffered
    deliveries of the first expired webhook; 0 when none is left."""
    cutoff = now - keep_sec
    expired = (Webhook.select(Webhook.id)
               .where((Webhook.active == False) & (Webhook.deactivated_at < cutoff)  # noqa: E712
                      & fn.EXISTS(Delivery.select(SQL("1")).where(
                          (Delivery.webhook == Webhook.id) & (Delivery.state == BUFFERED))))
               .order_by(Webhook.id))
    for (hook_id,) in list(expired.limit(10).tuples()):
        count = _drop_chunk(hook_id, cutoff, chunk)
        if count:
            return count
    return 0


def _drop_chunk(hook_id: int, cutoff: float, chunk: int) -> int:
    with write_transaction():
        if is_postgres():  # keys recomputed below: see store.heads
            advisory_lock(INGEST_LOCK)
        # The webhook first (as every writer locks it), and still expired under the
        # lock: an activation that committed meanwhile keeps its buffer.
        query = Webhook.select(Webhook.id).where(
            (Webhook.id == hook_id) & (Webhook.active == False)  # noqa: E712
            & (Webhook.deactivated_at < cutoff))
        if is_postgres():
            query = query.for_update("FOR NO KEY UPDATE")
        if query.first() is None:
            return 0
        ids = [d_id for (d_id,) in Delivery.select(Delivery.id).where(
            (Delivery.webhook == hook_id) & (Delivery.state == BUFFERED))
            .order_by(Delivery.id).limit(chunk).tuples()]
        if not ids:
            return 0
        keys = [k for (k,) in Delivery.select(Delivery.order_key).distinct().where(
            Delivery.id.in_(ids)).tuples()]
        count = Delivery.delete().where(Delivery.id.in_(ids)).execute()
        heads.refresh(keys)  # what was held behind them may go
        Webhook.update(dropped_events=Webhook.dropped_events + count).where(
            Webhook.id == hook_id).execute()
        return count


def _spent_notifications(now: float, retention_sec: float, link_ttl_sec: float):
    live_link = fn.EXISTS(Webhook.select(SQL("1")).where(
        (Webhook.id == Notification.webhook_id) & (Webhook.active == False)  # noqa: E712
        & (Webhook.deactivated_at <= Notification.created_at)))
    spent = (Notification.created_at < now - link_ttl_sec) | ~live_link
    return (Notification.created_at < now - retention_sec) & spent


def _delete_step(model, cond, chunk: int) -> int:
    """Delete up to ``chunk`` rows of ``model`` matching ``cond``, oldest id first, in
    one transaction; the rows deleted."""
    with write_transaction():
        ids = [r_id for (r_id,) in model.select(model.id).where(cond)
               .order_by(model.id).limit(chunk).tuples()]
        return model.delete().where(model.id.in_(ids)).execute() if ids else 0


def notifications_step(now: float, retention_sec: float, link_ttl_sec: float,
                       chunk: int = CHUNK) -> int:
    """One transaction of :func:`purge_notifications`."""
    return _delete_step(Notification, _spent_notifications(now, retention_sec, link_ttl_sec),
                        chunk)


def audit_step(now: float, audit_sec: float, chunk: int = CHUNK) -> int:
    """One transaction of :func:`purge_audit`."""
    return _delete_step(OperatorEvent, OperatorEvent.at < now - audit_sec, chunk)


def idempotency_step(now: float, chunk: int = CHUNK) -> int:
    """One transaction of :func:`purge_idempotency_keys`."""
    from soapservice.store.idempotency import KEEP_SEC
    return _delete_step(IdempotencyKey, IdempotencyKey.created_at < now - KEEP_SEC, chunk)


def _all(step, *args, chunk: int) -> int:
    removed = 0
    while True:
        count = step(*args, chunk=chunk)
        removed += count
        if count < chunk:
            return removed


def purge_notifications(now: float, retention_sec: float, link_ttl_sec: float,
                        chunk: int = CHUNK) -> int:
    """Delete notifications older than the retention whose reactivation link is spent:
    the webhook is gone, active again or deactivated anew since, or the link expired.
    A notification whose link still works (the webhook waits inactive) stays until the
    link expires."""
    return _all(notifications_step, now, retention_sec, link_ttl_sec, chunk=chunk)


def purge_audit(now: float, audit_sec: float, chunk: int = CHUNK) -> int:
    """Delete operator events (the audit trail) older than ``audit_sec``."""
    return _all(audit_step, now, audit_sec, chunk=chunk)


def purge_idempotency_keys(now: float, chunk: int = CHUNK) -> int:
    """Delete Idempotency-Keys older than their day (ingest also drops them when it
    stores a keyed event; this covers a store where none arrive any more)."""
    return _all(idempotency_step, now, chunk=chunk)


def steps(now: float, *, keep_sec: float, retention_sec: float, link_ttl_sec: float,
          audit_sec: float | None = None, chunk: int = STEP_CHUNK) -> list:
    """Every keeping step as (name, function, args): each call of a function is one
    short transaction deleting at most ``chunk`` rows; called again until it returns 0
    (the delivery loop pauses in between: soapservice.purging)."""
    found = [("deactivated deliveries buffered", buffer_step, (chunk,)),
             ("buffered_dropped", drop_step, (now, keep_sec, chunk)),
             ("notifications", notifications_step, (now, retention_sec, link_ttl_sec, chunk)),
             ("idempotency_keys", idempotency_step, (now, chunk))]
    if audit_sec is not None:
        found.insert(2, ("audit", audit_step, (now, audit_sec, chunk)))
    return found


def run(now: float, *, keep_sec: float, retention_sec: float, link_ttl_sec: float,
        audit_sec: float | None = None, chunk: int = CHUNK) -> Kept:
    """Every keeping step, each in bounded transactions."""
    return Kept(drop_expired_buffers(now, keep_sec, chunk),
                purge_notifications(now, retention_sec, link_ttl_sec, chunk),
                0 if audit_sec is None else purge_audit(now, audit_sec, chunk),
                purge_idempotency_keys(now, chunk))
