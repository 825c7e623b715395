"""Operator events (SPEC §7 "Operators"): ``webhook.failing``, ``.deactivated``,
``.reactivated``, ``.recovered``, ``.dropping``, ``.created``, ``.deleted``,
``.secret_rotated``.

:func:`emit` runs inside the transaction of the transition it reports, so each one is
written exactly once, also with several workers on PostgreSQL (the transition itself
happens once: outcomes are fenced by their lease and lock the webhook). It writes the
audit row (``soapservice audit``) and, when SOAPSERVICE_OPERATOR_WEBHOOK_URL is set, an
event and a delivery for the operator's webhook: a hidden webhook of a hidden system
account, delivered by the same outbox as any other (durable, retried, signed, in order
per customer webhook). The system account cannot log in (its password hash verifies
nothing) and is left out of every listing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from soapservice import policy
from soapservice.models import (
    BUFFERED,
    PENDING,
    Account,
    Delivery,
    Event,
    OperatorEvent,
    Webhook,
)
from soapservice.store import heads, notify_due, write_transaction

SYSTEM_ACCOUNT = "~operator"
SYSTEM_EVENT = "operator"  # the system webhook's event: no customer event has it
SYSTEM_APP = "soapservice"
NO_LOGIN = "!"  # a password hash that no password verifies against

KINDS = ("webhook.failing", "webhook.deactivated", "webhook.reactivated",
         "webhook.recovered", "webhook.dropping", "webhook.created", "webhook.deleted",
         "webhook.secret_rotated")


def _iso(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def system_account_id() -> int | None:
    row = Account.select(Account.id).where(Account.username == SYSTEM_ACCOUNT).first()
    return None if row is None else row.id


def is_system(account_name: str) -> bool:
    return account_name == SYSTEM_ACCOUNT


def _system_webhook() -> Webhook | None:
    return (Webhook.select(Webhook.id, Webhook.account, Webhook.url, Webhook.active)
            .join(Account).where(Account.username == SYSTEM_ACCOUNT).first())


def configure(url: str | None, secret: str | None, now: float) -> int | None:
    """Make the system webhook match the configuration (at every start): created,
    its URL or secret updated, reactivated with its buffer replayed if it had been
    deactivated (the operator's receiver was down a whole schedule), or deleted with
    its backlog when no operator URL is configured. Returns its id, or None."""
    with write_transaction():
        account = Account.get_or_none(Account.username == SYSTEM_ACCOUNT)
        hook = None if account is None else Webhook.get_or_none(Webhook.account == account.id)
        if not url:
            if hook is not None:
                Delivery.delete().where(Delivery.webhook == hook.id).execute()
                hook.delete_instance()
            return None
        if account is None:
            account = Account.create(username=SYSTEM_ACCOUNT, password_hash=NO_LOGIN,
                                     email=None, created_at=now)
        if hook is None:
            hook = Webhook.create(account=account.id, app=SYSTEM_APP, event=SYSTEM_EVENT,
                                  url=url, secret=secret, active=True, created_at=now)
            return hook.id
        changes = {}
        if hook.url != url:
            changes["url"] = url
        if hook.secret != secret:
            changes["secret"] = secret
        if not hook.active:
            changes.update(active=True, failure_count=0, deactivated_at=None)
            Delivery.update(state=PENDING, attempts=0, next_at=now, lease_owner=None,
                            lease_token=None, lease_until=None).where(
                (Delivery.webhook == hook.id) & (Delivery.state == BUFFERED)).execute()
            notify_due()
        if changes:
            Webhook.update(**changes).where(Webhook.id == hook.id).execute()
        return hook.id


def emit(kind: str, hook: Webhook, now: float, **counts) -> None:
    """Record operator event ``kind`` about ``hook`` (call inside the transition's
    transaction). ``counts``: what the event reports beside the webhook's own fields."""
    assert kind in KINDS, kind
    account = Account.select(Account.username).where(Account.id == hook.account_id).first()
    if account is None or is_system(account.username):
        return  # never about the operator's own webhook (it would report on itself)
    payload = {"type": kind, "timestamp": _iso(now), "data": {
        "account": account.username, "webhookId": hook.id, "url": hook.url,
        "app": hook.app, "event": hook.event, **counts}}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    OperatorEvent.insert(kind=kind, account_id=hook.account_id,
                         account_name=account.username, webhook_id=hook.id, url=hook.url,
                         at=now, data=body).execute()
    target = _system_webhook()
    if target is None:
        return
    # One ordering key per customer webhook: its transitions reach the operator in the
    # order they happened; different webhooks' events go concurrently.
    subscriber = f"webhook-{hook.id}"
    event_id = Event.insert(account=target.account_id, name=kind, body=body,
                            subscriber=subscriber, created_at=now).execute()
    key = policy.order_key(target.account_id, target.url, subscriber)
    heads.lock_keys([key])  # its place in the key (store.heads), as ingest takes it
    Delivery.insert(event=event_id, webhook=target.id, order_key=key, seq=event_id,
                    state=PENDING if target.active else BUFFERED,
                    blocked=heads.state_for_new(key), attempts=0,
                    next_at=now, created_at=now).execute()
    notify_due()


def first_drop_since_deactivation(hook_id: int, deactivated_at: float | None) -> bool:
    """True unless ``webhook.dropping`` was already emitted for this deactivation."""
    query = OperatorEvent.select(OperatorEvent.id).where(
        (OperatorEvent.webhook_id == hook_id) & (OperatorEvent.kind == "webhook.dropping"))
    if deactivated_at is not None:
        query = query.where(OperatorEvent.at >= deactivated_at)
    return query.first() is None


def audit(account: str | None = None, webhook_id: int | None = None,
          kind: str | None = None, limit: int = 100) -> list[OperatorEvent]:
    """The newest operator events first."""
    query = OperatorEvent.select()
    if account is not None:
        query = query.where(OperatorEvent.account_name == account)
    if webhook_id is not None:
        query = query.where(OperatorEvent.webhook_id == webhook_id)
    if kind is not None:
        query = query.where(OperatorEvent.kind == kind)
    return list(query.order_by(OperatorEvent.at.desc(), OperatorEvent.id.desc())
                .limit(limit))


def backlog() -> int:
    """Operator events not yet delivered to the operator's URL (due, retried or
    buffered)."""
    target = _system_webhook()
    if target is None:
        return 0
    return Delivery.select().where((Delivery.webhook == target.id)
                                   & Delivery.state.in_([PENDING, BUFFERED])).count()
