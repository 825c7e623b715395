"""Webhook rows and the operations the SOAP API performs on them."""

from __future__ import annotations

import time

from peewee import fn

from soapservice.models import BUFFERED, PENDING, Account, Delivery, Webhook
from soapservice.store import is_postgres, notify_due, write_transaction
from soapservice.store.prepared import Prepared


class LimitReached(Exception):
    """The account already has as many webhooks as it may."""


def create(account_id: int, app: str, event: str, url: str, secret: str,
           limit: int) -> Webhook:
    with write_transaction():
        if is_postgres():  # two creates at once must not both pass the limit
            list(Account.select(Account.id).where(Account.id == account_id)
                 .for_update("FOR NO KEY UPDATE"))
        count = Webhook.select().where(Webhook.account == account_id).count()
        if count >= limit:
            raise LimitReached(limit)
        return Webhook.create(account=account_id, app=app, event=event, url=url,
                              secret=secret, active=True, created_at=time.time())


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


def buffered_counts(hooks: list[Webhook]) -> list[int]:
    inactive = [h.id for h in hooks if not h.active]
    counts: dict[int, int] = {}
    if inactive:
        rows = (Delivery.select(Delivery.webhook, fn.COUNT(Delivery.id))
                .where(Delivery.webhook.in_(inactive), Delivery.state == BUFFERED)
                .group_by(Delivery.webhook).tuples())
        counts = dict(rows)
    return [counts.get(h.id, 0) for h in hooks]


def get(account_id: int, webhook_id: int, *, lock: str | None = None) -> Webhook | None:
    """``lock`` (``"FOR UPDATE"``, ...): on PostgreSQL hold the row until the transaction
    ends (a webhook is locked before its deliveries, everywhere)."""
    query = Webhook.select().where((Webhook.id == webhook_id)
                                   & (Webhook.account == account_id))
    if lock and is_postgres():
        query = query.for_update(lock)
    return query.first()


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
        hook = get(account_id, webhook_id, lock="FOR NO KEY UPDATE")
        if hook is None:
            return None
        if hook.active:
            return hook, 0
        buffered = (Delivery.webhook == hook.id) & (Delivery.state == BUFFERED)
        if replay:
            replayed = (Delivery.update(state=PENDING, attempts=0, next_at=now,
                                        lease_owner=None, lease_token=None,
                                        lease_until=None)
                        .where(buffered).execute())
            if replayed:
                notify_due()
        else:
            Delivery.delete().where(buffered).execute()
            replayed = 0
        Webhook.update(active=True, failure_count=0, deactivated_at=None).where(
            Webhook.id == hook.id).execute()
        hook = Webhook.get_by_id(hook.id)
        return hook, replayed


def delete(account_id: int, webhook_id: int) -> bool:
    """Remove the webhook and every undelivered delivery of it."""
    with write_transaction():
        hook = get(account_id, webhook_id, lock="FOR UPDATE")
        if hook is None:
            return False
        Delivery.delete().where(Delivery.webhook == hook.id).execute()
        hook.delete_instance()
        return True
