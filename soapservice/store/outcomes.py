"""Outcomes: a batch of attempts recorded in one transaction (a group commit).

Success: delivered, the webhook's failure count back to 0, the next delivery of the
ordering key becomes its head (store.heads.promote). Failure: count + 1 and a retry
after the schedule's delay, or, once the schedule is used up, deactivation: the webhook
turns inactive, all its undelivered deliveries go to its buffer, and the deliveries of
other webhooks at the same URL behind them are held (SPEC §7).

The receiver steers (soapservice.steering): a 410 deactivates at once (reason
``gone (410)``); a 429/503 with Retry-After pauses the whole webhook
(``webhook.paused_until``, which the claim respects) and retries the failed delivery at
the later of the pause's end and the schedule's time.

On PostgreSQL outcomes lock the webhooks whose state they change, then the deliveries,
then the ordering keys they touch (always in that order, as ingest does, so no
deadlock): failure counts, deactivation and its notification happen exactly once, and
a head is promoted after any row an ingest adds to its key. A batch of successes on
healthy webhooks (failure count 0, last attempt a success: read without a lock) locks
no webhook row: it only moves ``last_success_at`` forward, at most once per
SUCCESS_GRAIN_SEC and as its last statement (several workers' batches for the same
webhooks waited on each other's webhook locks: issue #19).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from peewee import SQL

from soapservice import policy, steering
from soapservice.models import BUFFERED, DELIVERED, PENDING, Attempt, Delivery, Webhook
from soapservice.store import (
    durable_commit,
    heads,
    is_postgres,
    keeping,
    notify_due,
    operator_events,
    portal,
    write_transaction,
)
from soapservice.store.prepared import Prepared
from soapservice.store.sql import by_id_only, insert_sql, locked


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    token: str
    webhook_id: int
    status: int | None
    error: str | None
    duration_ms: float
    snippet: str | None = None  # the first 1 KiB of the answer's body, as text
    retry_after: str | None = None  # the answer's Retry-After header (steering)

    @property
    def success(self) -> bool:
        return policy.is_success(self.status)


@dataclass(frozen=True)
class Deactivation:
    webhook_id: int
    account_id: int
    deactivations: int
    failure_count: int
    last_error: str
    buffered: int
    at: float
    held: int = 0  # deliveries of other webhooks at the same URL waiting behind the buffer
    notification_id: int | None = None  # set once the notification is stored


def record_outcomes(outcomes: Sequence[Outcome], now: float, schedule: Sequence[float],
                    rand: Callable[[], float],
                    on_deactivate: Callable[[Deactivation], int | None] | None = None,
                    max_retry_after: float = steering.DEFAULT_MAX_RETRY_AFTER_SEC,
                    ) -> list[Deactivation]:
    """Record a batch of attempts in one transaction and apply the policy.
    ``on_deactivate`` runs inside the transaction (it stores the notification)."""
    if not outcomes:
        return []
    deactivated: list[Deactivation] = []
    # Relaxed (PostgreSQL): losing this commit in a crash of PostgreSQL means the batch's
    # deliveries go out again, as after a worker's crash; a deactivation waits for the
    # disk (durable_commit) since its notification mail may go out before a crash.
    with write_transaction(relaxed=True):
        ids = [o.delivery_id for o in outcomes]
        # Lock order: webhooks (in id order), then deliveries, then keys, as everywhere;
        # but only the webhooks whose state this batch may change (see the module's
        # docstring): a success on a healthy webhook locks no webhook row.
        # (the health columns only: the whole rows of the webhooks that change follow)
        hooks = {h.id: h for h in _HEALTH.rows(sorted({o.webhook_id for o in outcomes}))}
        changing = _changing(outcomes, hooks)
        if changing:
            if is_postgres():
                # NO KEY UPDATE: what the webhook update takes anyway; it does not wait
                # for the key share that inserting a delivery puts on its webhook.
                list(locked(Webhook.select(Webhook.id).where(Webhook.id.in_(changing))
                            .order_by(Webhook.id), "FOR NO KEY UPDATE"))
            hooks.update({h.id: h for h in _HOOKS.rows(changing)})  # as now locked
        held = {d_id: (token, key, attempts)
                for d_id, token, key, attempts in _HELD.tuples(ids, PENDING)}
        live = [o for o in outcomes if held.get(o.delivery_id, (None,))[0] == o.token]
        attempts = [(o.delivery_id, o.webhook_id, now, o.status, o.error, o.duration_ms,
                     o.snippet) for o in outcomes]
        _insert_attempts(attempts)
        if not live:
            portal.count_attempts(attempts)
            return []
        # Their slots are free again: tell the other workers (PostgreSQL; a worker that
        # found every slot taken otherwise sleeps until an ingest or its sweep).
        notify_due()
        delivered = [o.delivery_id for o in live if o.success]
        if delivered:
            keys = [held[d_id][1] for d_id in delivered]
            heads.lock_keys(keys)
            _DELIVERED.execute(DELIVERED, None, None, None, now, delivered)
            heads.promote(keys)
        touched: dict[int, dict] = {}
        healthy: set[int] = set()
        for outcome in live:
            hook = hooks[outcome.webhook_id]
            if not hook.active:
                continue
            if hook.id not in changing:  # a success on a healthy webhook
                if hook.last_success_at is None or (
                        hook.last_success_at < now - SUCCESS_GRAIN_SEC):
                    healthy.add(hook.id)  # (else already moved within the grain)
                continue
            previous = hook.failure_count
            hook.failure_count = policy.failure_count_after(hook.failure_count,
                                                            outcome.success)
            changes = touched.setdefault(hook.id, {})
            changes["failure_count"] = hook.failure_count
            if outcome.success:
                changes["last_success_at"] = now
                if previous or _failed_last(hook):  # (a reactivation reset the count)
                    operator_events.emit("webhook.recovered", hook, now,
                                         failuresBefore=previous)
                hook.last_success_at = now
                continue
            steer = steering.steering(outcome.status, outcome.retry_after, now,
                                      max_retry_after)
            error = steer.reason or policy.describe_failure(outcome.status, outcome.error)
            changes.update(last_failure_at=now, last_error=error[:1000])
            if not previous:
                operator_events.emit("webhook.failing", hook, now,
                                     failureCount=hook.failure_count, lastError=error)
            hook.last_failure_at = now
            failed = held[outcome.delivery_id][2] + 1
            if steer.steer is steering.Steer.GONE or policy.schedule_exhausted(failed,
                                                                               schedule):
                Delivery.update(attempts=failed).where(
                    Delivery.id == outcome.delivery_id).execute()
                durable_commit()
                event = _deactivate(hook, now, error, changes)
                if on_deactivate is not None:  # stores the notification: its id
                    event = replace(event, notification_id=on_deactivate(event))
                deactivated.append(event)
            else:
                next_at = now + policy.retry_delay(failed, schedule, rand,
                                                   hook.failure_count)
                if steer.steer is steering.Steer.PAUSE:
                    until = max(steer.until, hook.paused_until or 0.0)
                    hook.paused_until = changes["paused_until"] = until
                    next_at = max(next_at, until)
                Delivery.update(attempts=failed, lease_owner=None, lease_token=None,
                                lease_until=None, next_at=next_at
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
        if healthy:  # late: a row lock (if any) is held only until the commit
            _last_success(sorted(healthy), now)
        # The portal's hourly rollup last: its rows (one per webhook and hour) are shared
        # by every worker's batches, so their row locks are held for the commit only,
        # not while this batch's other statements run (at 8 workers 1.9 backends waited
        # on them when the upsert came first).
        portal.count_attempts(attempts)
    return deactivated


# A healthy webhook's ``last_success_at`` is rewritten at most this often: at hundreds
# of deliveries per second every outcome batch would otherwise update (and on
# PostgreSQL lock) the row of every webhook it touches.
SUCCESS_GRAIN_SEC = 1.0


# PostgreSQL: the rows in id order and never waiting (an UPDATE alone locks them in the
# table's physical order, which deadlocked with ingest's FOR SHARE in id order); a row
# another transaction holds is left for a later batch.
_LAST_SUCCESS_PG = """
UPDATE webhook SET last_success_at = %s WHERE id IN (
  SELECT id FROM webhook WHERE id = ANY(%s) AND (last_success_at IS NULL
    OR last_success_at < %s) ORDER BY id FOR NO KEY UPDATE SKIP LOCKED)
"""


def _last_success(hook_ids: list[int], now: float) -> None:
    """Healthy webhooks' ``last_success_at`` moved to ``now`` if older than the grain."""
    if is_postgres():
        Webhook._meta.database.execute_sql(_LAST_SUCCESS_PG, (
            now, hook_ids, now - SUCCESS_GRAIN_SEC))
    else:
        _LAST_SUCCESS.execute(now, hook_ids, now - SUCCESS_GRAIN_SEC)


def _changing(outcomes: Sequence[Outcome], hooks: dict[int, Webhook]) -> list[int]:
    """The webhooks whose state the batch may change, in id order: those with a failed
    attempt (failure count, pause, deactivation, ``webhook.failing``) and those with a
    success after failures (count back to 0, ``webhook.recovered``)."""
    changing = set()
    for outcome in outcomes:
        hook = hooks.get(outcome.webhook_id)
        if hook is None or not hook.active:
            continue
        if not outcome.success or hook.failure_count or _failed_last(hook):
            changing.add(hook.id)
    return sorted(changing)


def _failed_last(hook: Webhook) -> bool:
    """The webhook's latest attempt failed (its count may have been reset since)."""
    return hook.last_failure_at is not None and (
        hook.last_success_at is None or hook.last_failure_at > hook.last_success_at)


# The outcome batch's statements, built once.
_HELD = Prepared(Delivery, lambda ids, pending: locked(
    Delivery.select(Delivery.id, Delivery.lease_token, Delivery.order_key,
                    Delivery.attempts).where(
        Delivery.id.in_(ids) & by_id_only(pending)).order_by(Delivery.id)))
# (SET values go in the model's field order: Peewee writes them so.)
_DELIVERED = Prepared(Delivery, lambda state, owner, token, until, now, ids: Delivery.update(
    state=state, delivered_at=now, attempts=Delivery.attempts + SQL("1"), lease_owner=owner,
    lease_token=token, lease_until=until).where(Delivery.id.in_(ids)))
_HOOKS = Prepared(Webhook, lambda ids: Webhook.select().where(Webhook.id.in_(ids)))
# What tells a healthy webhook's success (no change of state) from the rest.
_HEALTH = Prepared(Webhook, lambda ids: Webhook.select(
    Webhook.id, Webhook.active, Webhook.failure_count, Webhook.last_success_at,
    Webhook.last_failure_at).where(Webhook.id.in_(ids)))
_LAST_SUCCESS = Prepared(Webhook, lambda now, ids, before: Webhook.update(
    last_success_at=now).where(Webhook.id.in_(ids) & (
        Webhook.last_success_at.is_null() | (Webhook.last_success_at < before))))
_WEBHOOK_FIELDS = Webhook._meta.sorted_field_names
_HOOK_CHANGES = Prepared(Webhook, lambda names, *values: Webhook.update(
    **dict(zip(names, values[:-1], strict=True))).where(Webhook.id.in_(values[-1])))
_ATTEMPT_COLUMNS = (Attempt.delivery_id, Attempt.webhook_id, Attempt.at, Attempt.status,
                    Attempt.error, Attempt.duration_ms, Attempt.response_snippet)


# PostgreSQL: the batch's attempts in one statement, a column array each (psycopg2's
# executemany sends one INSERT per row: a round trip and a parse per attempt, the
# larger part of the statements a delivery cost on PostgreSQL).
_INSERT_ATTEMPTS_PG = (
    f'INSERT INTO "attempt" ({", ".join(c.column_name for c in _ATTEMPT_COLUMNS)}) '
    "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::float8[], %s::int[], "
    "%s::text[], %s::float8[], %s::text[])")


def _insert_attempts(rows: list[tuple]) -> None:
    database = Attempt._meta.database.obj
    if is_postgres():
        database.execute_sql(_INSERT_ATTEMPTS_PG,
                             [list(column) for column in zip(*rows, strict=True)])
    else:
        database.cursor().executemany(insert_sql(Attempt, _ATTEMPT_COLUMNS), rows)


def _deactivate(hook: Webhook, now: float, error: str, changes: dict) -> Deactivation:
    hook.active = False
    changes.update(active=False, deactivated_at=now, deactivations=hook.deactivations + 1)
    # Everything undelivered goes to the buffer; replay sends it in event order (the
    # failing delivery is the oldest of its subscriber, so it goes first). What other
    # webhooks at the same URL queued behind it is held until then. The first
    # keeping.BUFFER_CHUNK rows move here, the rest in short steps after this
    # transaction (keeping.buffer_step): a queue of 100,000 would hold the write lock
    # for seconds. Counted in the buffer from now on either way.
    _moved, keys = keeping.buffer_chunk(hook.id, keeping.BUFFER_CHUNK)
    buffered = Delivery.select().where((Delivery.webhook == hook.id) & (
        Delivery.state.in_([PENDING, BUFFERED]))).count()
    operator_events.emit("webhook.deactivated", hook, now, failureCount=hook.failure_count,
                         bufferedEvents=buffered, lastError=error)
    return Deactivation(hook.id, hook.account_id, hook.deactivations + 1, hook.failure_count,
                        error, buffered, now, heads.held_behind(keys, hook.id))
