"""The store queries behind the operator commands (``soapservice webhooks``, ``queue``,
``activate``, ``erase``, ``export``, ``deliveries``): across every account, no customer
password involved. Everything here blocks; the CLI calls it directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from peewee import JOIN, fn

from soapservice.models import (
    BUFFERED,
    DELIVERED,
    PENDING,
    READY,
    Account,
    Attempt,
    Delivery,
    Event,
    IdempotencyKey,
    Notification,
    OperatorEvent,
    Webhook,
)
from soapservice.store import is_postgres, operator_events, write_transaction
from soapservice.store import webhooks as webhook_rows


class UnknownAccount(LookupError):
    """No account of that name."""


class UnknownWebhook(LookupError):
    """No webhook of that id."""


def _account(name: str) -> Account:
    account = Account.get_or_none(Account.username == name)
    if account is None or operator_events.is_system(name):
        raise UnknownAccount(name)
    return account


def _customers():
    """Customer accounts only: the hidden system account (operator events) is none."""
    return Account.username != operator_events.SYSTEM_ACCOUNT


# -- webhooks ---------------------------------------------------------------------------
@dataclass(frozen=True)
class WebhookRow:
    hook: Webhook
    account: str
    buffered: int
    held: int

    @property
    def state(self) -> str:
        """``inactive``, ``failing`` (active, failed since its last success), ``active``."""
        if not self.hook.active:
            return "inactive"
        return "failing" if self.hook.failure_count > 0 else "active"


def held_condition(delivery=Delivery):
    """A pending delivery that waits behind an earlier event of the same subscriber to
    the same URL, still pending or buffered (SPEC §3/§7 order per subscriber): not the
    head of its ordering key (``blocked``, kept by store.heads)."""
    return (delivery.state == PENDING) & (delivery.blocked != READY)


def list_webhooks(account: str | None = None, inactive: bool = False,
                  failing: bool = False) -> list[WebhookRow]:
    """Every account's webhooks (or one account's), oldest first. ``inactive``: only
    inactive ones; ``failing``: failing or inactive ones (every webhook in trouble)."""
    query = (Webhook.select(Webhook, Account.id, Account.username).join(Account).where(_customers())
             .order_by(Account.username, Webhook.id))
    if account is not None:
        query = query.where(Webhook.account == _account(account).id)
    if inactive:
        query = query.where(Webhook.active == False)  # noqa: E712
    elif failing:
        query = query.where((Webhook.active == False) | (Webhook.failure_count > 0))  # noqa: E712
    hooks = list(query)
    if not hooks:
        return []
    ids = [h.id for h in hooks]
    buffered = webhook_rows.buffered_by_id(ids)
    held = dict(Delivery.select(Delivery.webhook, fn.COUNT(Delivery.id))
                .where(Delivery.webhook.in_(ids) & held_condition())
                .group_by(Delivery.webhook).tuples())
    return [WebhookRow(h, h.account.username, buffered.get(h.id, 0), held.get(h.id, 0))
            for h in hooks]


def find_webhook(webhook_id: int) -> WebhookRow:
    hook = (Webhook.select(Webhook, Account.id, Account.username).join(Account)
            .where((Webhook.id == webhook_id) & _customers()).first())
    if hook is None:
        raise UnknownWebhook(webhook_id)
    return WebhookRow(hook, hook.account.username, webhook_rows.buffered_count(hook.id), 0)


def activate(webhook_id: int, replay: bool, now: float | None = None
             ) -> tuple[Webhook, int]:
    """ActivateWebHook for an operator: the same store operation, found by id alone."""
    hook = find_webhook(webhook_id).hook
    outcome = webhook_rows.activate(hook.account_id, webhook_id, replay, now)
    if outcome is None:  # deleted meanwhile
        raise UnknownWebhook(webhook_id)
    return outcome


# -- the queue --------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueRow:
    account: str
    due: int
    in_flight: int
    retrying: int
    held: int
    buffered: int
    oldest_due_age_sec: float | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def queue(now: float) -> list[QueueRow]:
    """Per account: deliveries ``due`` (may start now), ``in_flight`` (under a lease),
    ``retrying`` (waiting for their next attempt), ``held`` (waiting behind an earlier
    event of the same subscriber), ``buffered``, and how long the oldest due one has
    been due. The four pending classes do not overlap."""
    # (a claim leaves next_at where it was: a row is in flight while its lease runs)
    leased = Delivery.lease_until.is_null(False) & (Delivery.lease_until > now)
    free = Delivery.lease_until.is_null() | (Delivery.lease_until <= now)
    held = held_condition() & free

    def per_account(cond, value=None):
        value = fn.COUNT(Delivery.id) if value is None else value
        rows = (Delivery.select(Webhook.account, value)
                .join(Webhook, on=(Delivery.webhook == Webhook.id))
                .where(cond).group_by(Webhook.account).tuples())
        return dict(rows)

    pending = Delivery.state == PENDING
    not_held = ~held_condition()
    due = per_account(pending & (Delivery.next_at <= now) & not_held & free)
    oldest = per_account(pending & (Delivery.next_at <= now) & not_held & free,
                         fn.MIN(Delivery.next_at))
    in_flight = per_account(pending & leased)
    retrying = per_account(pending & free & (Delivery.next_at > now) & not_held)
    held_counts = per_account(held)
    buffered = per_account(Delivery.state == BUFFERED)
    rows = []
    for account in (Account.select(Account.id, Account.username).where(_customers())
                    .order_by(Account.username)):
        first_due = oldest.get(account.id)
        rows.append(QueueRow(
            account.username, due.get(account.id, 0), in_flight.get(account.id, 0),
            retrying.get(account.id, 0), held_counts.get(account.id, 0),
            buffered.get(account.id, 0),
            None if first_due is None else max(0.0, now - first_due)))
    return rows


# -- erasure ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Erased:
    events: int
    deliveries: int
    buffered: int
    attempts: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def erase_subscriber(account: str, subscriber: str) -> Erased:
    """Delete every stored event of ``subscriber`` (the events' ``subscriber_id``) in
    ``account``, their deliveries (due, buffered, delivered) and their attempts, in one
    transaction. Events stored later are not affected. A request in flight for one of
    them may still reach its receiver; its outcome finds no row to update."""
    with write_transaction():
        found = _account(account)
        if is_postgres():  # webhooks before deliveries, as every writer locks them
            list(Webhook.select(Webhook.id).where(Webhook.account == found.id)
                 .order_by(Webhook.id).for_update("FOR NO KEY UPDATE"))
        events = Event.select(Event.id).where((Event.account == found.id)
                                              & (Event.subscriber == subscriber))
        deliveries = Delivery.select(Delivery.id).where(Delivery.event.in_(events))
        buffered = Delivery.select().where(Delivery.event.in_(events)
                                           & (Delivery.state == BUFFERED)).count()
        attempts = Attempt.delete().where(Attempt.delivery_id.in_(deliveries)).execute()
        # An Idempotency-Key naming an erased event keeps a hash of its data: it goes
        # too (a retry with that key within the day then stores the event anew).
        IdempotencyKey.delete().where(IdempotencyKey.event_id.in_(events)).execute()
        removed = Delivery.delete().where(Delivery.event.in_(events)).execute()
        erased = Event.delete().where((Event.account == found.id)
                                      & (Event.subscriber == subscriber)).execute()
        return Erased(erased, removed, buffered, attempts)


# -- export -----------------------------------------------------------------------------
def _time(value: float | None) -> str | None:
    import datetime
    if value is None:
        return None
    return datetime.datetime.fromtimestamp(value, datetime.UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


STATE_NAMES = {PENDING: "pending", BUFFERED: "buffered", DELIVERED: "delivered"}
_CHUNK = 1000


def _chunks(query, id_field) -> Iterator:
    """Rows of ``query`` in id order, read ``_CHUNK`` at a time (bounded memory)."""
    last = 0
    while True:
        rows = list(query.where(id_field > last).order_by(id_field).limit(_CHUNK))
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def export_account(account: str, subscriber: str | None = None) -> Iterator[dict]:
    """Everything stored for ``account`` (or only what concerns ``subscriber``) as
    records with a ``type``: the account, its webhooks (without their secrets), its
    events with their data, their deliveries and attempts, its audit trail (operator
    events), its notifications."""
    found = _account(account)
    if subscriber is None:
        yield {"type": "account", "username": found.username, "email": found.email,
               "created": _time(found.created_at)}
        for hook in Webhook.select().where(Webhook.account == found.id).order_by(Webhook.id):
            yield {"type": "webhook", "id": hook.id, "app": hook.app, "event": hook.event,
                   "url": hook.url, "active": bool(hook.active),
                   "created": _time(hook.created_at),
                   "deactivatedAt": _time(hook.deactivated_at),
                   "failureCount": hook.failure_count, "droppedEvents": hook.dropped_events,
                   "lastSuccessAt": _time(hook.last_success_at),
                   "lastFailureAt": _time(hook.last_failure_at),
                   "lastError": hook.last_error}
    events = Event.select().where(Event.account == found.id)
    if subscriber is not None:
        events = events.where(Event.subscriber == subscriber)
    for event in _chunks(events, Event.id):
        yield {"type": "event", "id": event.id, "event": event.name,
               "subscriberId": event.subscriber, "created": _time(event.created_at),
               "data": json.loads(event.body)}
        for delivery in Delivery.select().where(Delivery.event == event.id).order_by(
                Delivery.id):
            yield {"type": "delivery", "id": delivery.id, "eventId": event.id,
                   "webhookId": delivery.webhook_id,
                   "state": STATE_NAMES.get(delivery.state, str(delivery.state)),
                   "attemptCount": delivery.attempts, "created": _time(delivery.created_at),
                   "deliveredAt": _time(delivery.delivered_at)}
            for attempt in Attempt.select().where(Attempt.delivery_id == delivery.id
                                                  ).order_by(Attempt.id):
                record = {"type": "attempt", "deliveryId": delivery.id,
                          "at": _time(attempt.at), "status": attempt.status,
                          "error": attempt.error, "durationMs": attempt.duration_ms,
                          "responseSnippet": attempt.response_snippet}
                yield record
    if subscriber is None:
        for row in OperatorEvent.select().where(OperatorEvent.account_id == found.id
                                                ).order_by(OperatorEvent.id):
            yield {"type": "audit", "kind": row.kind, "at": _time(row.at),
                   "event": json.loads(row.data)}
        for note in Notification.select().where(Notification.account == found.id
                                                ).order_by(Notification.id):
            yield {"type": "notification", "id": note.id, "webhookId": note.webhook_id,
                   "reason": note.reason, "lastError": note.last_error,
                   "failureCount": note.failure_count,
                   "bufferedEvents": note.buffered_events,
                   "created": _time(note.created_at)}


# -- the attempt log --------------------------------------------------------------------
def recent_attempts(account: str | None = None, webhook_id: int | None = None,
                    limit: int = 50) -> list[Attempt]:
    """The newest attempts (of one account or webhook), each with its webhook's URL and
    account and its delivery's event id (``event_id``: None once the delivery is
    purged or erased)."""
    query = (Attempt.select(Attempt, Webhook.url, Account.username,
                            Delivery.event.alias("event_id"))
             .join(Webhook, on=(Attempt.webhook_id == Webhook.id))
             .join(Account, on=(Webhook.account == Account.id))
             .switch(Attempt)
             .join(Delivery, JOIN.LEFT_OUTER, on=(Attempt.delivery_id == Delivery.id)))
    query = query.where(_customers())
    if account is not None:
        query = query.where(Webhook.account == _account(account).id)
    if webhook_id is not None:
        query = query.where(Attempt.webhook_id == webhook_id)
    return list(query.order_by(Attempt.at.desc(), Attempt.id.desc()).limit(limit).objects())
