"""The outbox: events, their deliveries, claims under a lease, outcomes, the buffer.

A delivery is *due* when ``state = PENDING`` and ``next_at <= now``. Claiming one sets a
lease (owner, token) and moves ``next_at`` to the lease's expiry, so a delivery whose
worker died becomes due again by itself when the lease runs out, and one query serves
both fresh and abandoned work. Outcomes are recorded only while the lease token still
matches (a fenced update): a worker that stalled past its lease cannot overwrite the
newer attempt.

On PostgreSQL several processes share the outbox; row locks are the coordination:
ingest holds an advisory lock so event ids commit in id order (a worker never sees a
later event of a subscriber before an earlier one); claims run one at a time under an
advisory lock and lock their rows ``FOR UPDATE SKIP LOCKED``; outcomes lock the
webhooks and then the deliveries they touch (always in that order, so no deadlock), so
failure counts, deactivation and its notification happen exactly once.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from peewee import SQL, fn

from soapservice import policy
from soapservice.models import (
    BUFFERED,
    DELIVERED,
    PENDING,
    Account,
    Attempt,
    Delivery,
    Event,
    Webhook,
)
from soapservice.store import (
    CLAIM_LOCK,
    INGEST_LOCK,
    advisory_lock,
    is_postgres,
    notify_due,
    write_transaction,
)
from soapservice.store.accounts import find as find_account
from soapservice.store.prepared import Prepared


class UnknownAccount(LookupError):
    pass


def _locked(query, mode: str = "FOR UPDATE", skip_locked: bool = False):
    """``query`` with a row lock on PostgreSQL (SQLite's write lock covers it)."""
    if is_postgres():
        return query.for_update(mode, skip_locked=skip_locked or None)
    return query


# Hooks for metrics (soapservice.metrics): called with a count, never raising.
on_lease_takeover: list[Callable[[int], None]] = []


@dataclass(frozen=True)
class Claim:
    """One delivery handed to a worker: everything needed to send it."""

    delivery_id: int
    token: str
    webhook_id: int
    url: str
    secret: str
    app: str
    event: str
    body: str
    event_id: int
    created_at: float


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    token: str
    webhook_id: int
    status: int | None
    error: str | None
    duration_ms: float

    @property
    def success(self) -> bool:
        return policy.is_success(self.status)


# -- ingest -----------------------------------------------------------------------------
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
        due = False
        for account_name, event, body, subscriber in events:
            account = accounts[account_name]
            if account is None:
                results.append(UnknownAccount(account_name))
                continue
            event_id = _insert_event(account.id, event, body, subscriber, now)
            rows, dropped = [], []
            for hook in hooks_of[account.id, event]:
                admission = policy.admit(hook.active, hook.deactivated_at, now, window_sec)
                if admission is policy.Admission.DROP:
                    dropped.append(hook.id)
                    continue
                rows.append((
                    event_id, hook.id, policy.order_key(account.id, hook.url, subscriber),
                    event_id, PENDING if admission is policy.Admission.DUE else BUFFERED,
                    0, now, now))
            if rows:
                _insert_deliveries(rows)
                due = True
            if dropped:
                Webhook.update(dropped_events=Webhook.dropped_events + 1).where(
                    Webhook.id.in_(dropped)).execute()
            results.append((event_id, len(rows)))
        if due:
            notify_due()
    return results


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
    for hook in _locked(_hooks_query(cond), "FOR SHARE"):
        hooks_of[hook.account_id, hook.event].append(hook)
    return hooks_of


def _hooks_query(cond):
    return (Webhook.select(Webhook.id, Webhook.account, Webhook.event, Webhook.url,
                           Webhook.active, Webhook.deactivated_at)
            .where(cond).order_by(Webhook.id))


_HOOKS_OF = Prepared(Webhook, lambda _shape, account_id, event: _locked(_hooks_query(
    (Webhook.account == account_id) & (Webhook.event == event)), "FOR SHARE"))


# Ingest's two inserts as plain parameterised SQL: Peewee rebuilt the same INSERT for
# every event, 70 % of the store thread's time per event (cProfile), the database
# itself under 5 %.
_EVENT_COLUMNS = (Event.account, Event.name, Event.body, Event.subscriber, Event.created_at)
_DELIVERY_COLUMNS = (Delivery.event, Delivery.webhook, Delivery.order_key, Delivery.seq,
                     Delivery.state, Delivery.attempts, Delivery.next_at, Delivery.created_at)


def _insert_sql(model, columns) -> str:
    param = model._meta.database.obj.param
    return (f'INSERT INTO "{model._meta.table_name}" '
            f'({", ".join(f"{chr(34)}{c.column_name}{chr(34)}" for c in columns)}) '
            f'VALUES ({", ".join([param] * len(columns))})')


def _insert_event(account_id: int, name: str, body: str, subscriber: str | None,
                  now: float) -> int:
    params = (account_id, name, body, subscriber, now)
    database = Event._meta.database.obj
    if is_postgres():
        sql = _insert_sql(Event, _EVENT_COLUMNS) + f' RETURNING "{Event.id.column_name}"'
        return database.execute_sql(sql, params).fetchone()[0]
    return database.execute_sql(_insert_sql(Event, _EVENT_COLUMNS), params).lastrowid


def _insert_deliveries(rows: list[tuple]) -> None:
    """Rows of (event, webhook, order_key, seq, state, attempts, next_at, created_at)."""
    cursor = Delivery._meta.database.obj.cursor()
    cursor.executemany(_insert_sql(Delivery, _DELIVERY_COLUMNS), rows)


def _by_id_only(state: int):
    """``state = ?`` written so that no index can serve it (``state + 0``), beside an
    ``id IN (...)`` list: else SQLite walks the (state, next_at) index over every
    pending row (11 ms per query at 20,000 pending) instead of looking the ids up."""
    return (Delivery.state + SQL("0")) == state


# -- claims -----------------------------------------------------------------------------
def _due_candidates(now: float, limit: int, per_webhook: int):
    """Due deliveries that may start: first in line for their ordering key, not held
    back by a failing webhook (only already-failed ones are probed), at most
    ``per_webhook`` per webhook so that one webhook's backlog never starves another.

    Per active webhook, a correlated subquery takes its first ``per_webhook`` due rows
    from the (webhook, state, next_at, seq) index: the cost grows with the number of
    webhooks, not with the backlog (ranking every due row with a window function cost
    ~60 ms per claim at 20,000 due rows)."""
    if is_postgres():
        return _due_candidates_lateral(now, limit, per_webhook)
    rows = _CANDIDATES.tuples(PENDING, now, PENDING, per_webhook, True, limit)
    return [policy.Candidate(d_id, hook_id, attempts, failures > 0)
            for d_id, hook_id, attempts, failures in rows]


def _candidates_query(pending, now, also_pending, per_webhook, active, limit):
    first = Delivery.alias("first")
    earlier = Delivery.alias("earlier")
    blocked = earlier.select(SQL("1")).where(
        (earlier.order_key == first.order_key) & (earlier.state == also_pending)
        & (earlier.seq < first.seq))
    heads = (first.select(first.id)
             .where((first.webhook == Webhook.id) & (first.state == pending)
                    & (first.next_at <= now)
                    & ((Webhook.failure_count == SQL("0")) | (first.attempts > SQL("0")))
                    & ~fn.EXISTS(blocked))
             .order_by(first.next_at, first.seq)
             .limit(per_webhook))
    return (Webhook
            .select(Delivery.id, Delivery.webhook, Delivery.attempts, Webhook.failure_count)
            .join(Delivery, on=Delivery.id.in_(heads))
            .where(Webhook.active == active)
            .order_by(Delivery.next_at, Delivery.seq)
            .limit(limit))


_CANDIDATES = Prepared(Delivery, _candidates_query)


# PostgreSQL runs the correlated subquery above once per (webhook, delivery) pair (2.4 s
# at 4,500 due rows); LATERAL states the same query as "per webhook, its first rows"
# and takes well under a millisecond.
_LATERAL_CANDIDATES = """
SELECT d.id, d.webhook_id, d.attempts, w.failure_count
FROM webhook w CROSS JOIN LATERAL (
    SELECT f.id, f.webhook_id, f.attempts, f.next_at, f.seq FROM delivery f
    WHERE f.webhook_id = w.id AND f.state = %(pending)s AND f.next_at <= %(now)s
      AND (w.failure_count = 0 OR f.attempts > 0)
      AND NOT EXISTS (SELECT 1 FROM delivery e WHERE e.order_key = f.order_key
                      AND e.state = %(pending)s AND e.seq < f.seq)
    ORDER BY f.next_at, f.seq LIMIT %(per_webhook)s) d
WHERE w.active
ORDER BY d.next_at, d.seq LIMIT %(limit)s
"""


def _due_candidates_lateral(now: float, limit: int, per_webhook: int):
    cursor = Delivery._meta.database.execute_sql(_LATERAL_CANDIDATES, {
        "pending": PENDING, "now": now, "per_webhook": per_webhook, "limit": limit})
    return [policy.Candidate(d_id, hook_id, attempts, failures > 0)
            for d_id, hook_id, attempts, failures in cursor.fetchall()]


def claim_due(owner: str, now: float, lease_sec: float, capacity: int,
              in_flight: dict[int, int], per_webhook: int) -> list[Claim]:
    """Lease up to ``capacity`` due deliveries to ``owner`` (see :func:`policy.choose`)."""
    if capacity <= 0:
        return []
    with write_transaction():
        if is_postgres():
            # One claim at a time across processes: the ordering, probe and
            # per-webhook rules read the leases of every worker, so two claims must not
            # decide on the same picture.
            advisory_lock(CLAIM_LOCK)
        running = _leased_per_webhook(now)
        for hook_id, count in in_flight.items():
            running[hook_id] = max(running.get(hook_id, 0), count)
        candidates = _due_candidates(now, capacity * 4, per_webhook)
        chosen = policy.choose(candidates, running, capacity, per_webhook)
        if not chosen:
            return []
        token = secrets.token_hex(8)
        # Lock them (skipping rows an outcome is being written for); the update below
        # still checks that each is due.
        held = dict(_CLAIMABLE.tuples([c.delivery_id for c in chosen], PENDING, now))
        if not held:
            return []
        ids = list(held)
        takeovers = sum(1 for previous in held.values() if previous is not None)
        if takeovers:
            for hook in on_lease_takeover:
                hook(takeovers)
        _LEASE.execute(now + lease_sec, owner, token, now + lease_sec, ids, PENDING, now)
        rows = _CLAIMED.tuples(ids, token)
        return [Claim(d_id, token, hook_id, url, secret, app, event, body, event_id, created)
                for d_id, hook_id, created, url, secret, app, event, event_id, body in rows]


# The claim's statements, built once (Peewee rebuilt their SQL on every claim: a fifth
# of the delivery loop's CPU, py-spy). Lists are the ``IN`` of delivery ids.
_CLAIMABLE = Prepared(Delivery, lambda ids, pending, now: _locked(
    Delivery.select(Delivery.id, Delivery.lease_token).where(
        Delivery.id.in_(ids) & _by_id_only(pending) & (Delivery.next_at <= now))
    .order_by(Delivery.id), skip_locked=True))
_LEASE = Prepared(Delivery, lambda next_at, owner, token, lease_until, ids, pending, now:
                  Delivery.update(lease_owner=owner, lease_token=token,
                                  lease_until=lease_until, next_at=next_at).where(
                      Delivery.id.in_(ids) & _by_id_only(pending)
                      & (Delivery.next_at <= now)))
_CLAIMED = Prepared(Delivery, lambda ids, token: (
    Delivery.select(Delivery.id, Delivery.webhook, Delivery.created_at, Webhook.url,
                    Webhook.secret, Webhook.app, Webhook.event, Event.id, Event.body)
    .join(Webhook, on=(Delivery.webhook == Webhook.id))
    .switch(Delivery).join(Event, on=(Delivery.event == Event.id))
    .where(Delivery.id.in_(ids) & (Delivery.lease_token == token))
    .order_by(Delivery.seq)))
_LEASED = Prepared(Delivery, lambda pending, now: (
    Delivery.select(Delivery.webhook, fn.COUNT(Delivery.id)).where(
        (Delivery.state == pending) & (Delivery.next_at > now)
        & Delivery.lease_token.is_null(False)).group_by(Delivery.webhook)))
_NEXT_DUE = Prepared(Delivery, lambda pending, now: (
    Delivery.select(fn.MIN(Delivery.next_at))
    .where((Delivery.state == pending) & (Delivery.next_at > now))))


def _leased_per_webhook(now: float) -> dict[int, int]:
    """Requests running per webhook, in every process (unexpired leases)."""
    return dict(_LEASED.tuples(PENDING, now))


def next_due_at(now: float) -> float | None:
    """When the next delivery becomes due (a retry, or an expiring lease). Deliveries
    due already but held back wait for an outcome, which wakes the loop anyway."""
    return _NEXT_DUE.tuples(PENDING, now)[0][0]


def release(owner: str, now: float, delivery_ids: Sequence[int] | None = None) -> int:
    """Give leased deliveries back (shutdown): due again at once, for anyone."""
    query = Delivery.update(lease_owner=None, lease_token=None, lease_until=None, next_at=now)
    cond = (Delivery.lease_owner == owner) & (Delivery.state == PENDING)
    if delivery_ids is not None:
        cond &= Delivery.id.in_(list(delivery_ids))
    with write_transaction():
        released = query.where(cond).execute()
        if released:
            notify_due()
    return released


def release_orphans(is_dead: Callable[[str], bool], now: float) -> dict[str, int]:
    """Give back the leases of every owner ``is_dead`` judges gone (at startup, after a
    crash): due again at once. Returns {owner: deliveries released}."""
    owners = [o for (o,) in Delivery.select(Delivery.lease_owner).distinct().where(
        (Delivery.state == PENDING) & Delivery.lease_owner.is_null(False)).tuples()]
    released = {}
    for owner in owners:
        if is_dead(owner):
            with write_transaction():
                count = release(owner, now)
            if count:
                released[owner] = count
    return released


# -- outcomes ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Deactivation:
    webhook_id: int
    account_id: int
    deactivations: int
    failure_count: int
    last_error: str
    buffered: int
    at: float


def record_outcomes(outcomes: Sequence[Outcome], now: float, schedule: Sequence[float],
                    rand: Callable[[], float],
                    on_deactivate: Callable[[Deactivation], None] | None = None,
                    ) -> list[Deactivation]:
    """Record a batch of attempts in one transaction (a group commit).

    Applies the policy: success → delivered, failure count 0; failure → count + 1 and a
    retry after the schedule's delay, or, once the schedule is used up, deactivation:
    the webhook turns inactive and all its undelivered deliveries go to its buffer.
    ``on_deactivate`` runs inside the transaction (it stores the notification).
    """
    if not outcomes:
        return []
    deactivated: list[Deactivation] = []
    with write_transaction():
        ids = [o.delivery_id for o in outcomes]
        # Lock order: webhooks (in id order), then deliveries, as everywhere. NO KEY
        # UPDATE: what the webhook update takes anyway; it does not wait for the key
        # share that inserting a delivery puts on its webhook.
        if is_postgres():
            list(_locked(Webhook.select(Webhook.id).where(
                Webhook.id.in_(sorted({o.webhook_id for o in outcomes}))).order_by(Webhook.id),
                "FOR NO KEY UPDATE"))
        held = dict(_HELD.tuples(ids, PENDING))
        live = [o for o in outcomes if held.get(o.delivery_id) == o.token]
        _insert_attempts([(o.delivery_id, o.webhook_id, now, o.status, o.error, o.duration_ms)
                          for o in outcomes])
        if not live:
            return []
        delivered = [o.delivery_id for o in live if o.success]
        if delivered:
            _DELIVERED.execute(DELIVERED, None, None, None, now, delivered)
        hooks = {h.id: h for h in _HOOKS.rows(sorted({o.webhook_id for o in live}))}
        failed_ids = [o.delivery_id for o in live if not o.success]
        attempts = dict(_ATTEMPTS.tuples(failed_ids)) if failed_ids else {}
        touched: dict[int, dict] = {}
        for outcome in live:
            hook = hooks[outcome.webhook_id]
            if not hook.active:
                continue
            hook.failure_count = policy.failure_count_after(hook.failure_count,
                                                            outcome.success)
            changes = touched.setdefault(hook.id, {})
            changes["failure_count"] = hook.failure_count
            if outcome.success:
                changes["last_success_at"] = now
                continue
            error = policy.describe_failure(outcome.status, outcome.error)
            changes.update(last_failure_at=now, last_error=error[:1000])
            failed = attempts[outcome.delivery_id] + 1
            if policy.schedule_exhausted(failed, schedule):
                Delivery.update(attempts=failed).where(
                    Delivery.id == outcome.delivery_id).execute()
                event = _deactivate(hook, now, error, changes)
                deactivated.append(event)
                if on_deactivate is not None:
                    on_deactivate(event)
            else:
                Delivery.update(attempts=failed, lease_owner=None, lease_token=None,
                                lease_until=None,
                                next_at=now + policy.retry_delay(failed, schedule, rand)
                                ).where(Delivery.id == outcome.delivery_id).execute()
        # One UPDATE per distinct set of changes, not per webhook: in a batch of
        # successes every webhook gets the same two values.
        groups: dict[tuple, list[int]] = {}
        for hook_id, changes in touched.items():
            groups.setdefault(tuple(sorted(changes.items())), []).append(hook_id)
        for changes, hook_ids in groups.items():
            ordered = sorted(changes, key=lambda item: _WEBHOOK_FIELDS.index(item[0]))
            _HOOK_CHANGES.execute(*(value for _name, value in ordered), hook_ids,
                                  shape=tuple(name for name, _value in ordered))
    return deactivated


# The outcome batch's statements, built once (see the claim's).
_HELD = Prepared(Delivery, lambda ids, pending: _locked(
    Delivery.select(Delivery.id, Delivery.lease_token).where(
        Delivery.id.in_(ids) & _by_id_only(pending)).order_by(Delivery.id)))
# (SET values go in the model's field order: Peewee writes them so.)
_DELIVERED = Prepared(Delivery, lambda state, owner, token, until, now, ids: Delivery.update(
    state=state, delivered_at=now, attempts=Delivery.attempts + SQL("1"), lease_owner=owner,
    lease_token=token, lease_until=until).where(Delivery.id.in_(ids)))
_HOOKS = Prepared(Webhook, lambda ids: Webhook.select().where(Webhook.id.in_(ids)))
_ATTEMPTS = Prepared(Delivery, lambda ids: Delivery.select(Delivery.id, Delivery.attempts)
                     .where(Delivery.id.in_(ids)))
_WEBHOOK_FIELDS = Webhook._meta.sorted_field_names
_HOOK_CHANGES = Prepared(Webhook, lambda names, *values: Webhook.update(
    **dict(zip(names, values[:-1], strict=True))).where(Webhook.id.in_(values[-1])))
_ATTEMPT_COLUMNS = (Attempt.delivery_id, Attempt.webhook_id, Attempt.at, Attempt.status,
                    Attempt.error, Attempt.duration_ms)


def _insert_attempts(rows: list[tuple]) -> None:
    cursor = Attempt._meta.database.obj.cursor()
    cursor.executemany(_insert_sql(Attempt, _ATTEMPT_COLUMNS), rows)


def _deactivate(hook: Webhook, now: float, error: str, changes: dict) -> Deactivation:
    hook.active = False
    changes.update(active=False, deactivated_at=now, deactivations=hook.deactivations + 1)
    # Everything undelivered moves to the buffer; replay sends it in event order (the
    # failing delivery is the oldest of its subscriber, so it goes first).
    Delivery.update(state=BUFFERED, lease_owner=None, lease_token=None, lease_until=None
                    ).where((Delivery.webhook == hook.id) & (Delivery.state == PENDING)
                            ).execute()
    buffered = Delivery.select().where((Delivery.webhook == hook.id)
                                       & (Delivery.state == BUFFERED)).count()
    return Deactivation(hook.id, hook.account_id, hook.deactivations + 1, hook.failure_count,
                        error, buffered, now)


# -- operators --------------------------------------------------------------------------
def recent_attempts(account_name: str, webhook_id: int | None = None, limit: int = 50):
    query = (Attempt.select(Attempt, Webhook.url)
             .join(Webhook, on=(Attempt.webhook_id == Webhook.id))
             .join(Account, on=(Webhook.account == Account.id))
             .where(Account.username == account_name))
    if webhook_id is not None:
        query = query.where(Attempt.webhook_id == webhook_id)
    return list(query.order_by(Attempt.at.desc(), Attempt.id.desc()).limit(limit))


def purge(now: float, retention_sec: float, chunk: int = 5000) -> int:
    """Delete delivered deliveries, attempts and finished events past the retention."""
    cutoff = now - retention_sec
    removed = 0
    while True:
        with write_transaction():
            ids = [d.id for d in Delivery.select(Delivery.id).where(
                (Delivery.state == DELIVERED) & (Delivery.delivered_at < cutoff)).limit(chunk)]
            if not ids:
                break
            removed += Delivery.delete().where(Delivery.id.in_(ids)).execute()
    with write_transaction():
        Attempt.delete().where(Attempt.at < cutoff).execute()
        Event.delete().where((Event.created_at < cutoff) & ~fn.EXISTS(
            Delivery.select(SQL("1")).where(Delivery.event == Event.id))).execute()
    return removed
