"""Ingest: events and their deliveries, stored in one transaction per batch.

Each new delivery gets its place in its ordering key (``blocked``, see store.heads) from
two index probes on the key, so the claim never has to look behind a head.
"""

from __future__ import annotations

from collections.abc import Sequence

from soapservice import policy
from soapservice.models import BUFFERED, PENDING, Account, Delivery, Event, Webhook
from soapservice.store import (
    INGEST_LOCK,
    advisory_lock,
    heads,
    is_postgres,
    notify_due,
    operator_events,
    write_transaction,
)
from soapservice.store.accounts import find as find_account
from soapservice.store.prepared import Prepared
from soapservice.store.sql import insert_sql, locked


class UnknownAccount(LookupError):
    pass


def store_event(account_name: str, event: str, body: str, subscriber: str | None,
                now: float, window_sec: float) -> tuple[int, int]:
    """Store an event and a delivery per matching webhook, in one transaction.

    Active webhooks get a due delivery; inactive ones within the buffer window a
    buffered one; the others only count the event as dropped. Returns (event id, number
    of webhooks it was queued for, buffered included).
    """
    result = store_events([(account_name, event, body, subscriber)], now, window_sec)[0]
    if isinstance(result, UnknownAccount):
        raise result
    return result


def store_events(events: Sequence[tuple[str, str, str, str | None]], now: float,
                 window_sec: float) -> list[tuple[int, int] | UnknownAccount]:
    """:func:`store_event` for several (account, event, body, subscriber) in ONE
    transaction (a group commit: one write lock and one commit for the lot). Returns a
    result per event, in order; an unknown account's event gets an
    :class:`UnknownAccount` in its place and stores nothing, the others are stored."""
    results: list[tuple[int, int] | UnknownAccount] = []
    with write_transaction():
        if is_postgres():
            advisory_lock(INGEST_LOCK)
        accounts: dict[str, Account | None] = {}
        for account_name, _event, _body, _subscriber in events:
            if account_name not in accounts:
                accounts[account_name] = find_account(account_name)
        hooks_of = _webhooks_of({(accounts[name].id, event) for name, event, _b, _s in events
                                 if accounts[name] is not None})
        if is_postgres():  # before any row is read: see store.heads
            heads.lock_keys(policy.order_key(accounts[name].id, hook.url, subscriber)
                            for name, event, _b, subscriber in events
                            if accounts[name] is not None
                            for hook in hooks_of[accounts[name].id, event])
        due = False
        for account_name, event, body, subscriber in events:
            account = accounts[account_name]
            if account is None:
                results.append(UnknownAccount(account_name))
                continue
            event_id = _insert_event(account.id, event, body, subscriber, now)
            rows, dropped, places = [], [], {}
            for hook in hooks_of[account.id, event]:
                admission = policy.admit(hook.active, hook.deactivated_at, now, window_sec)
                if admission is policy.Admission.DROP:
                    dropped.append(hook.id)
                    continue
                key = policy.order_key(account.id, hook.url, subscriber)
                if key not in places:  # one place per key: the same event at one URL
                    places[key] = heads.state_for_new(key)
                rows.append((
                    event_id, hook.id, key, event_id,
                    PENDING if admission is policy.Admission.DUE else BUFFERED,
                    places[key], 0, now, now))
            if rows:
                insert_deliveries(rows)
                due = True
            if dropped:
                Webhook.update(dropped_events=Webhook.dropped_events + 1).where(
                    Webhook.id.in_(dropped)).execute()
                _report_first_drops(dropped, now)
            results.append((event_id, len(rows)))
        if due:
            notify_due()
    return results


def _report_first_drops(hook_ids: list[int], now: float) -> None:
    """``webhook.dropping`` for the first event a webhook drops after its buffer
    window (once per deactivation; ingest is serialized, so once also on PostgreSQL)."""
    for hook in Webhook.select().where(Webhook.id.in_(hook_ids)):
        if operator_events.first_drop_since_deactivation(hook.id, hook.deactivated_at):
            operator_events.emit("webhook.dropping", hook, now,
                                 droppedEvents=hook.dropped_events,
                                 deactivatedAt=operator_events._iso(hook.deactivated_at))


def _webhooks_of(pairs: set[tuple[int, str]]) -> dict[tuple[int, str], list[Webhook]]:
    """The webhooks of each (account id, event), read in one statement. On PostgreSQL
    they are locked FOR SHARE, in id order like every webhook lock (no deadlock with an
    outcome transaction): a concurrent deactivation or activation commits first and is
    seen (else a delivery could be buffered for a webhook just reactivated)."""
    hooks_of: dict[tuple[int, str], list[Webhook]] = {pair: [] for pair in pairs}
    if not pairs:
        return hooks_of
    if len(pairs) == 1:  # the usual batch: one account's events of one kind
        (pair,) = pairs
        hooks_of[pair] = _HOOKS_OF.rows(*pair, shape="one")
        return hooks_of
    cond = None
    for account_id, event in sorted(pairs):
        term = (Webhook.account == account_id) & (Webhook.event == event)
        cond = term if cond is None else (cond | term)
    for hook in locked(_hooks_query(cond), "FOR SHARE"):
        hooks_of[hook.account_id, hook.event].append(hook)
    return hooks_of


def _hooks_query(cond):
    return (Webhook.select(Webhook.id, Webhook.account, Webhook.event, Webhook.url,
                           Webhook.active, Webhook.deactivated_at)
            .where(cond).order_by(Webhook.id))


_HOOKS_OF = Prepared(Webhook, lambda _shape, account_id, event: locked(_hooks_query(
    (Webhook.account == account_id) & (Webhook.event == event)), "FOR SHARE"))

_EVENT_COLUMNS = (Event.account, Event.name, Event.body, Event.subscriber, Event.created_at)
DELIVERY_COLUMNS = (Delivery.event, Delivery.webhook, Delivery.order_key, Delivery.seq,
                    Delivery.state, Delivery.blocked, Delivery.attempts, Delivery.next_at,
                    Delivery.created_at)


def _insert_event(account_id: int, name: str, body: str, subscriber: str | None,
                  now: float) -> int:
    params = (account_id, name, body, subscriber, now)
    database = Event._meta.database.obj
    if is_postgres():
        sql = insert_sql(Event, _EVENT_COLUMNS) + f' RETURNING "{Event.id.column_name}"'
        return database.execute_sql(sql, params).fetchone()[0]
    return database.execute_sql(insert_sql(Event, _EVENT_COLUMNS), params).lastrowid


def insert_deliveries(rows: list[tuple]) -> None:
    """Rows of :data:`DELIVERY_COLUMNS`: (event, webhook, order_key, seq, state, blocked,
    attempts, next_at, created_at). ``blocked`` from :func:`heads.state_for_new` (taken
    before the rows of the same key are inserted)."""
    cursor = Delivery._meta.database.obj.cursor()
    cursor.executemany(insert_sql(Delivery, DELIVERY_COLUMNS), rows)


def queue_again(rows: Sequence[tuple[int, int, str | None, int]], now: float) -> int:
    """Queue new pending deliveries (a resend) of (event id, webhook id, order key, seq),
    in this order, each behind the undelivered ones of its key. Call inside a write
    transaction (after locking the webhooks); on PostgreSQL it takes the ingest lock."""
    if is_postgres():
        advisory_lock(INGEST_LOCK)
        heads.lock_keys(key for _e, _w, key, _s in rows)
    for event_id, hook_id, key, seq in rows:
        insert_deliveries([(event_id, hook_id, key, seq, PENDING, heads.state_for_new(key),
                            0, now, now)])
    if rows:
        notify_due()
    return len(rows)
