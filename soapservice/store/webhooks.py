"""Webhook rows and the operations the SOAP API performs on them."""

from __future__ import annotations

import time

from peewee import fn

from soapservice.models import BUFFERED, DELIVERED, HELD, PENDING, Account, Delivery, Webhook
from soapservice.store import (
    INGEST_LOCK,
    advisory_lock,
    heads,
    is_postgres,
    notify_due,
    operator_events,
    write_transaction,
)
from soapservice.store.prepared import Prepared


class LimitReached(Exception):
    """The account already has as many webhooks as it may."""


class Duplicate(Exception):
    """The account has a webhook with the same app, event and URL: ``args[0]``."""


def create(account_id: int, app: str, event: str, url: str, secret: str,
           limit: int) -> Webhook:
    """An exact duplicate (same app, event and URL) of one of the account's webhooks
    is not created again (:class:`Duplicate` names the existing one), so a retried
    create never doubles deliveries. Checked under the account's lock (PostgreSQL) or
    SQLite's write lock: two creates at once make one webhook."""
    with write_transaction():
        if is_postgres():  # two creates at once must not both pass the limit
            list(Account.select(Account.id).where(Account.id == account_id)
                 .for_update("FOR NO KEY UPDATE"))
        existing = (Webhook.select().where(Webhook.account == account_id,
                                           Webhook.app == app, Webhook.event == event,
                                           Webhook.url == url)
                    .order_by(Webhook.id).first())
        if existing is not None:
            raise Duplicate(existing)
        count = Webhook.select().where(Webhook.account == account_id).count()
        if count >= limit:
            raise LimitReached(limit)
        hook = Webhook.create(account=account_id, app=app, event=event, url=url,
                              secret=secret, active=True, created_at=time.time())
        operator_events.emit("webhook.created", hook, hook.created_at)
        return hook


def listing(account_id: int, app: str | None = None,
            event: str | None = None) -> list[tuple[Webhook, int]]:
    """The account's webhooks (oldest first) with their buffered-event counts."""
    values = tuple(v for v in (account_id, app, event) if v is not None)
    hooks = _LISTING.rows(*values, shape=(app is not None, event is not None))
    return [(hook, count) for hook, count in zip(hooks, buffered_counts(hooks), strict=True)]


def _listing_query(shape: tuple[bool, bool], account_id: int, *filters):
    """The listing's SELECT; ``shape`` says which of (app, event) ``filters`` holds."""
    query = Webhook.select().where(Webhook.account == account_id)
    fields = [f for f, on in zip((Webhook.app, Webhook.event), shape, strict=True) if on]
    for field, value in zip(fields, filters, strict=True):
        query = query.where(field == value)
    return query.order_by(Webhook.id)


_LISTING = Prepared(Webhook, _listing_query)


def buffered_by_id(webhook_ids: list[int]) -> dict[int, int]:
    """Buffered events per webhook id (the one count of buffered events; absent: 0).
    An inactive webhook's pending deliveries count too: the rest of its deactivation,
    still on its way to the buffer (store.keeping.buffer_step)."""
    if not webhook_ids:
        return {}
    counts = dict(Delivery.select(Delivery.webhook, fn.COUNT(Delivery.id))
                  .where(Delivery.webhook.in_(webhook_ids), Delivery.state == BUFFERED)
                  .group_by(Delivery.webhook).tuples())
    inactive = [w for (w,) in Webhook.select(Webhook.id).where(
        Webhook.id.in_(webhook_ids), Webhook.active == False).tuples()]  # noqa: E712
    if inactive:
        for hook_id, count in (Delivery.select(Delivery.webhook, fn.COUNT(Delivery.id))
                               .where(Delivery.webhook.in_(inactive),
                                      Delivery.state == PENDING)
                               .group_by(Delivery.webhook).tuples()):
            counts[hook_id] = counts.get(hook_id, 0) + count
    return counts


def buffered_count(webhook_id: int) -> int:
    return buffered_by_id([webhook_id]).get(webhook_id, 0)


def buffered_counts(hooks: list[Webhook]) -> list[int]:
    """Each webhook's buffered events (only an inactive webhook has any)."""
    counts = buffered_by_id([h.id for h in hooks if not h.active])
    return [counts.get(h.id, 0) for h in hooks]


def held_counts(hooks: list[Webhook]) -> list[int]:
    """Per webhook, its deliveries held behind another webhook's buffer (SPEC §7,
    ``heldEvents``): one indexed count over the listed webhooks."""
    counts: dict[int, int] = {}
    ids = [h.id for h in hooks]
    if ids:
        counts = dict(Delivery.select(Delivery.webhook, fn.COUNT(Delivery.id))
                      .where(Delivery.webhook.in_(ids), Delivery.state == PENDING,
                             Delivery.blocked == HELD)
                      .group_by(Delivery.webhook).tuples())
    return [counts.get(h.id, 0) for h in hooks]


def _order_lock() -> None:
    """PostgreSQL: recomputing keys in bulk runs under the ingest lock, taken first (as
    ingest takes it): an event stored meanwhile sees the buffer before or after, never
    halfway (store.heads)."""
    if is_postgres():
        advisory_lock(INGEST_LOCK)


def get(account_id: int, webhook_id: int, *, lock: str | None = None) -> Webhook | None:
    """``lock`` (``"FOR UPDATE"``, ...): on PostgreSQL hold the row until the transaction
    ends (a webhook is locked before its deliveries, everywhere)."""
    query = Webhook.select().where((Webhook.id == webhook_id)
                                   & (Webhook.account == account_id))
    if lock and is_postgres():
        query = query.for_update(lock)
    return query.first()


def count(account_id: int) -> int:
    """How many webhooks the account has (active or not)."""
    return Webhook.select().where(Webhook.account == account_id).count()


def get_by_id(webhook_id: int) -> Webhook | None:
    return Webhook.get_or_none(Webhook.id == webhook_id)


def activate(account_id: int, webhook_id: int, replay: bool,
             now: float | None = None) -> tuple[Webhook, int] | None:
    """Make the webhook active with a clean failure count.

    With ``replay`` its buffered deliveries become due now, in their order (they keep
    their event sequence, so they go before newer events of the same subscriber);
    without it the buffer is discarded. Returns (webhook, replayed count), or None when
    the account has no such webhook. An active webhook is left as it is.
    """
    now = time.time() if now is None else now
    with write_transaction():
        _order_lock()
        hook = get(account_id, webhook_id, lock="FOR NO KEY UPDATE")
        if hook is None:
            return None
        if hook.active:
            return hook, 0
        # The buffer: its rows, and the rest of the deactivation not moved there yet
        # (pending rows of an inactive webhook: store.keeping.buffer_step).
        buffered = (Delivery.webhook == hook.id) & Delivery.state.in_([BUFFERED, PENDING])
        discarded = 0
        keys = heads.keys_of_webhook(hook.id, (BUFFERED, PENDING))
        if replay:
            replayed = (Delivery.update(state=PENDING, attempts=0, next_at=now,
                                        lease_owner=None, lease_token=None,
                                        lease_until=None)
                        .where(buffered).execute())
            if replayed:
                notify_due()
        else:
            discarded = Delivery.delete().where(buffered).execute()
            replayed = 0
        # Replayed: they go first in their keys, what waited behind them is no longer
        # held; discarded: what waited behind them may go.
        heads.refresh(keys)
        Webhook.update(active=True, failure_count=0, deactivated_at=None).where(
            Webhook.id == hook.id).execute()
        hook = Webhook.get_by_id(hook.id)
        operator_events.emit("webhook.reactivated", hook, now, replayedEvents=replayed,
                             discardedEvents=discarded)
        return hook, replayed


def delete(account_id: int, webhook_id: int) -> bool:
    """Remove the webhook and every undelivered delivery of it."""
    with write_transaction():
        _order_lock()
        hook = get(account_id, webhook_id, lock="FOR UPDATE")
        if hook is None:
            return False
        keys = heads.keys_of_webhook(hook.id)
        removed = Delivery.delete().where((Delivery.webhook == hook.id)
                                          & (Delivery.state != DELIVERED)).execute()
        Delivery.delete().where(Delivery.webhook == hook.id).execute()
        heads.refresh(keys)  # what waited behind its deliveries may go
        operator_events.emit("webhook.deleted", hook, time.time(), undeliveredEvents=removed)
        hook.delete_instance()
        return True


def rotate_secret(account_id: int, webhook_id: int, secret: str, grace_sec: float,
                  now: float | None = None) -> Webhook | None:
    """Give the webhook ``secret``; the current one keeps signing beside it for
    ``grace_sec`` (0: not at all). None when the account has no such webhook."""
    now = time.time() if now is None else now
    with write_transaction():
        hook = get(account_id, webhook_id, lock="FOR NO KEY UPDATE")
        if hook is None:
            return None
        Webhook.update(secret=secret,
                       previous_secret=hook.secret if grace_sec > 0 else None,
                       previous_secret_until=now + grace_sec if grace_sec > 0 else None
                       ).where(Webhook.id == hook.id).execute()
        hook = Webhook.get_by_id(hook.id)
        operator_events.emit("webhook.secret_rotated", hook, now, graceSeconds=grace_sec)
        return hook
