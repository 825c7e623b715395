"""ResendWebHookEvents (SPEC §7): new deliveries of events a webhook had, with the
webhook-id its receiver saw the first time, in event order, each behind the undelivered
deliveries of its subscriber.

Order per subscriber runs on ``seq`` (the event id, store.heads): a resent delivery
needs a place after everything queued so far and before every later event. Each resent
event is therefore stored once more as a copy (same account, name, body, subscriber and
time; a new id, which is the place), and the delivery of the copy carries
``message_of``, the delivery whose ``webhook-id`` it repeats.
"""

from __future__ import annotations

from dataclasses import dataclass

from peewee import fn

from soapservice import policy
from soapservice.models import DELIVERED, PENDING, Delivery, Event, Webhook
from soapservice.store import INGEST_LOCK, advisory_lock, events, is_postgres, write_transaction
from soapservice.store.sql import locked

MAX_EVENTS = 10_000


@dataclass(frozen=True)
class TooMany(Exception):
    count: int


def _matching(webhook_id: int, event_id: int | None, since: float, until: float):
    """(event, first delivery) of each event the webhook had delivered or failed
    (pending after a failed attempt), oldest event first."""
    resent = (Delivery.state == DELIVERED) | (
        (Delivery.state == PENDING) & (Delivery.attempts > 0))
    cond = ((Delivery.webhook == webhook_id) & resent & (Event.created_at >= since)
            & (Event.created_at <= until))
    if event_id is not None:
        cond &= Event.id == event_id
    # One per webhook-id the receiver saw: an earlier resend (a copy) repeats its
    # original's, whose event comes first.
    message = fn.COALESCE(Delivery.message_of, Delivery.id)
    return (Delivery.select(fn.MIN(Event.id), message)
            .join(Event, on=(Delivery.event == Event.id)).where(cond)
            .group_by(message).order_by(fn.MIN(Event.id)))


def resend(account_id: int, webhook_id: int, event_id: int | None, since: float,
           until: float, now: float) -> int | None:
    """Queue the resend; the number queued, None when the webhook is not the account's.
    Raises :class:`TooMany` past :data:`MAX_EVENTS` (nothing queued) and ValueError for
    an inactive webhook."""
    with write_transaction():
        # PostgreSQL: the ingest lock first, then the webhook, as ingest and activation
        # take them (the other way round, an ingest waiting on the webhook's row while
        # holding the ingest lock would deadlock with us).
        if is_postgres():
            advisory_lock(INGEST_LOCK)
        hook = locked(Webhook.select().where(
            (Webhook.id == webhook_id) & (Webhook.account == account_id)),
            "FOR NO KEY UPDATE").first()
        if hook is None:
            return None
        if not hook.active:
            raise ValueError("inactive")
        found = list(_matching(hook.id, event_id, since, until).limit(MAX_EVENTS + 1)
                     .tuples())
        if len(found) > MAX_EVENTS:
            raise TooMany(len(found))
        if not found:
            return 0
        originals = {e.id: e for e in Event.select().where(
            Event.id.in_([e for e, _m in found]))}
        rows, marks = [], []
        for original_id, message_of in found:
            original = originals[original_id]
            copy_id = Event.insert(account=original.account_id, name=original.name,
                                   body=original.body, subscriber=original.subscriber,
                                   created_at=original.created_at).execute()
            rows.append((copy_id, hook.id,
                         policy.order_key(account_id, hook.url, original.subscriber),
                         copy_id))
            marks.append((message_of, copy_id))
        queued = events.queue_again(rows, now)
        for message_of, copy_id in marks:
            Delivery.update(message_of=message_of).where(
                (Delivery.event == copy_id) & (Delivery.webhook == hook.id)).execute()
        return queued
