"""Who may go next: the head of each ordering key, kept as store state.

Deliveries sharing an ``order_key`` (account + URL + subscriber, across all webhooks
of the account at that URL) go out in ``seq`` (event id) order. Each pending delivery
carries ``blocked``:

- ``READY`` (0): it is a head: no earlier undelivered delivery of its key exists; it may
  be claimed once due. Deliveries without a key (no subscriber) are always heads.
- ``WAITING`` (1): an earlier delivery of its key is pending (due, in flight or retried).
- ``HELD`` (2): an earlier delivery of its key is buffered (an inactive webhook's):
  SPEC §7 "Order across webhooks, with a buffer"; it goes after the replay, or when
  that buffer is discarded or its webhook deleted.

The claim reads only READY rows, from the index (webhook, state, blocked, next_at, seq):
rows waiting behind a head are never scanned, whatever their number. The flag changes
only where the picture of a key changes:

- ingest decides it for each new row from two index probes on its key;
- a delivered head promotes the next row(s) of its key (:func:`promote`, an index probe
  per key, in the outcome transaction);
- deactivation, replay, discard, delete and the buffer's expiry recompute the keys they
  touch (:func:`refresh`).

On PostgreSQL an ingest and an outcome touching the same key take a transaction-level
advisory lock on the key (:func:`lock_keys`, in sorted order): without it, an ingest
could judge its row WAITING from a head that an outcome is delivering at the same time,
and nobody would promote it. The bulk recomputations run under the ingest lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from soapservice.models import BUFFERED, HELD, PENDING, READY, WAITING, Delivery
from soapservice.store import is_postgres

_CHUNK = 500


def _db():
    return Delivery._meta.database.obj


def lock_keys(keys: Iterable[str | None]) -> None:
    """PostgreSQL: hold the advisory lock of each key until the transaction ends (sorted:
    two transactions never wait on each other in a cycle)."""
    if not is_postgres():
        return
    wanted = sorted({k for k in keys if k is not None})
    if wanted:
        _db().execute_sql(
            "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT "
            "hashtextextended(k, 0) AS h FROM unnest(%s::text[]) k ORDER BY h) s",
            (wanted,))


def state_for_new(key: str | None) -> int:
    """``blocked`` of a delivery about to be queued last in its key."""
    if key is None:
        return READY
    p = _db().param
    buffered, pending = _db().execute_sql(
        f"SELECT (SELECT 1 FROM delivery WHERE order_key = {p} AND state = {p} LIMIT 1), "
        f"(SELECT 1 FROM delivery WHERE order_key = {p} AND state = {p} LIMIT 1)",
        (key, BUFFERED, key, PENDING)).fetchone()
    if buffered:
        return HELD
    return WAITING if pending else READY


_PROMOTE_SQLITE = """
UPDATE delivery SET blocked = 0
WHERE order_key = ?1 AND state = 0 AND blocked <> 0
  AND seq = (SELECT MIN(seq) FROM delivery WHERE order_key = ?1 AND state = 0)
  AND NOT EXISTS (SELECT 1 FROM delivery b WHERE b.order_key = ?1 AND b.state = 1
                  AND b.seq < delivery.seq)
"""
_PROMOTE_PG = """
UPDATE delivery d SET blocked = 0
FROM (SELECT k, (SELECT MIN(e.seq) FROM delivery e WHERE e.order_key = k AND e.state = 0)
      AS s FROM unnest(%s::text[]) k) m
WHERE d.order_key = m.k AND d.seq = m.s AND d.state = 0 AND d.blocked <> 0
  AND NOT EXISTS (SELECT 1 FROM delivery b WHERE b.order_key = m.k AND b.state = 1
                  AND b.seq < m.s)
"""


def promote(keys: Iterable[str | None]) -> None:
    """The heads of ``keys`` were delivered (or removed): their next pending rows become
    heads, unless a buffered row still comes first (then they stay held)."""
    wanted = sorted({k for k in keys if k is not None})
    if not wanted:
        return
    if is_postgres():
        _db().execute_sql(_PROMOTE_PG, (wanted,))
    else:
        _db().cursor().executemany(_PROMOTE_SQLITE, [(k,) for k in wanted])


_REFRESH = """
UPDATE delivery SET blocked = CASE
  WHEN EXISTS (SELECT 1 FROM delivery e WHERE e.order_key = delivery.order_key
               AND e.state = 1 AND e.seq < delivery.seq) THEN 2
  WHEN EXISTS (SELECT 1 FROM delivery e WHERE e.order_key = delivery.order_key
               AND e.state = 0 AND e.seq < delivery.seq) THEN 1
  ELSE 0 END
WHERE state = 0 AND order_key IN ({marks})
"""


def refresh(keys: Iterable[str | None]) -> None:
    """Recompute ``blocked`` of every pending row of ``keys`` (after rows of these keys
    changed state in bulk or were deleted)."""
    wanted = sorted({k for k in keys if k is not None})
    p = _db().param
    for start in range(0, len(wanted), _CHUNK):
        part = wanted[start:start + _CHUNK]
        _db().execute_sql(_REFRESH.format(marks=", ".join([p] * len(part))), part)


def keys_of_webhook(webhook_id: int, states: Sequence[int] = (PENDING, BUFFERED)
                    ) -> list[str]:
    """The ordering keys of the webhook's undelivered rows."""
    return [k for (k,) in Delivery.select(Delivery.order_key).distinct().where(
        (Delivery.webhook == webhook_id) & Delivery.state.in_(list(states))
        & Delivery.order_key.is_null(False)).tuples()]


def held_behind(keys: Sequence[str], webhook_id: int) -> int:
    """Pending deliveries of other webhooks held behind ``keys`` (for the notification)."""
    count = 0
    for start in range(0, len(keys), _CHUNK):
        count += Delivery.select().where(
            Delivery.order_key.in_(list(keys[start:start + _CHUNK]))
            & (Delivery.state == PENDING) & (Delivery.blocked == HELD)
            & (Delivery.webhook != webhook_id)).count()
    return count


def recompute_all() -> None:
    """Every pending row's flag from scratch (schema step 4, for stores made before)."""
    database = _db()
    database.execute_sql("UPDATE delivery SET blocked = 0 WHERE order_key IS NULL")
    database.execute_sql(_REFRESH.replace("AND order_key IN ({marks})",
                                          "AND order_key IS NOT NULL"))


# -- fronts: which webhooks may have due heads -------------------------------------------
#
# ``webhook_front.front_at`` is a lower bound of when the webhook's earliest ready head is
# due (NULL: it has none), so a claim reads only the webhooks whose front has come
# (store.claims) instead of probing every active webhook. It is lowered by triggers,
# whatever writes the row (ingest, promotion, refresh, release, replay, resend, plain
# SQL): a delivery row that becomes a ready pending head, or a head whose claimable
# time (``max(next_at, lease_until)``: a lease given back, an earlier retry) moves
# earlier; and a webhook that is activated, whose failure count falls (probing ends) or
# whose pause is shortened goes to FLOOR ("look at me"). Only the claim raises it
# (:func:`raise_fronts`), to the exact value, after it looked: a leased head counts as
# due when its lease ends.
#
# PostgreSQL: a claim's snapshot does not see a head that another transaction is adding;
# raising the front past it would hide that head. So every lowering first takes the
# webhook's advisory lock shared (class FRONT_LOCK, key = webhook id), and a claim raises
# only the fronts whose lock it gets exclusively at once (pg_try_advisory_xact_lock): a
# writer in progress makes the claim leave that front low (looked at again next time),
# and a writer that comes after waits for the claim's commit and then sees its value.

FLOOR = -1e15
FRONT_LOCK = 0x736F6170  # the class of the (int, int) advisory keys ("soap")
# A probing webhook with fresh heads but no retrying one (an operator reset, an erase)
# is looked at again this often, not at every claim.
PROBING_RECHECK_SEC = 5.0

_HEAD_ROW = "NEW.state = 0 AND NEW.blocked = 0"
# A head may be claimed from max(next_at, lease_until): a claim's lease moves that later
# (no lowering), a lease given back or an earlier retry moves it earlier.
_EARLIER = ("(OLD.state <> 0 OR OLD.blocked <> 0 OR {max}(NEW.next_at, "
            "COALESCE(NEW.lease_until, NEW.next_at)) < {max}(OLD.next_at, "
            "COALESCE(OLD.lease_until, OLD.next_at)))")
_HOOK_RESET = ("(NEW.active AND NOT OLD.active) OR NEW.failure_count < OLD.failure_count "
               "OR (OLD.paused_until IS NOT NULL AND (NEW.paused_until IS NULL "
               "OR NEW.paused_until < OLD.paused_until))")
_SQLITE_LOWER = """
INSERT INTO webhook_front (webhook_id, front_at) VALUES ({hook}, {at})
ON CONFLICT (webhook_id) DO UPDATE SET front_at = excluded.front_at
WHERE webhook_front.front_at IS NULL OR webhook_front.front_at > excluded.front_at;
"""
_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER IF NOT EXISTS delivery_front_insert AFTER INSERT ON delivery "
    f"WHEN {_HEAD_ROW} BEGIN {_SQLITE_LOWER.format(hook='NEW.webhook_id', at='NEW.next_at')}"
    f" END",
    f"CREATE TRIGGER IF NOT EXISTS delivery_front_update AFTER UPDATE OF state, blocked, "
    f"next_at, lease_until ON delivery WHEN {_HEAD_ROW} AND {_EARLIER.format(max='MAX')} "
    f"BEGIN "
    f"{_SQLITE_LOWER.format(hook='NEW.webhook_id', at='NEW.next_at')} END",
    f"CREATE TRIGGER IF NOT EXISTS webhook_front_reset AFTER UPDATE OF active, "
    f"failure_count, paused_until ON webhook WHEN {_HOOK_RESET} BEGIN "
    f"{_SQLITE_LOWER.format(hook='NEW.id', at=FLOOR)} END",
)
_PG_TRIGGERS = (
    f"""CREATE OR REPLACE FUNCTION soapservice_front_lower(hook integer, at double precision)
    RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_xact_lock_shared({FRONT_LOCK}, hook);
      UPDATE webhook_front SET front_at = at
        WHERE webhook_id = hook AND (front_at IS NULL OR front_at > at);
      IF NOT FOUND THEN
        INSERT INTO webhook_front (webhook_id, front_at) VALUES (hook, at)
          ON CONFLICT (webhook_id) DO NOTHING;
      END IF;
    END $$""",
    """CREATE OR REPLACE FUNCTION soapservice_delivery_front() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN PERFORM soapservice_front_lower(NEW.webhook_id, NEW.next_at); RETURN NULL; END $$""",
    f"""CREATE OR REPLACE FUNCTION soapservice_webhook_front() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN PERFORM soapservice_front_lower(NEW.id, {FLOOR}); RETURN NULL; END $$""",
    "DROP TRIGGER IF EXISTS delivery_front_insert ON delivery",
    f"CREATE TRIGGER delivery_front_insert AFTER INSERT ON delivery FOR EACH ROW "
    f"WHEN ({_HEAD_ROW}) EXECUTE FUNCTION soapservice_delivery_front()",
    "DROP TRIGGER IF EXISTS delivery_front_update ON delivery",
    f"CREATE TRIGGER delivery_front_update AFTER UPDATE OF state, blocked, next_at, "
    f"lease_until ON delivery FOR EACH ROW WHEN ({_HEAD_ROW} AND "
    f"{_EARLIER.format(max='GREATEST')}) "
    f"EXECUTE FUNCTION soapservice_delivery_front()",
    "DROP TRIGGER IF EXISTS webhook_front_reset ON webhook",
    f"CREATE TRIGGER webhook_front_reset AFTER UPDATE OF active, failure_count, "
    f"paused_until ON webhook FOR EACH ROW WHEN ({_HOOK_RESET}) "
    f"EXECUTE FUNCTION soapservice_webhook_front()",
)


def create_front_triggers(database) -> None:
    """The triggers that lower fronts (run whenever the schema is made or migrated)."""
    for sql in (_PG_TRIGGERS if is_postgres(database) else _SQLITE_TRIGGERS):
        database.execute_sql(sql)


def recompute_fronts(database) -> None:
    """Every webhook's front from its ready heads (schema step 13)."""
    database.execute_sql("DELETE FROM webhook_front")
    database.execute_sql(
        "INSERT INTO webhook_front (webhook_id, front_at) SELECT id, (SELECT MIN(d.next_at) "
        "FROM delivery d WHERE d.webhook_id = webhook.id AND d.state = 0 AND d.blocked = 0) "
        "FROM webhook")


# Per webhook: its earliest ready head free of a lease, its earliest retrying one, and
# the earliest expiry of a lease on a ready head (from the partial index of leased rows;
# the heads' ranges skip the leased rows, at most the leases the webhook holds).
def free_of_lease(now: str, alias: str = "f") -> str:
    """SQL: the row holds no unexpired lease (``now``: the time's parameter mark, or a
    ``{now}`` left for a template). Every query of due or ready heads says it so."""
    return f"({alias}.lease_until IS NULL OR {alias}.lease_until <= {now})"


_FREE = "AND " + free_of_lease("{now}")
_EXACT = """
SELECT w.id, w.active, w.failure_count, w.paused_until,
  (SELECT f.next_at FROM delivery f WHERE f.webhook_id = w.id AND f.state = 0
   AND f.blocked = 0 {free} ORDER BY f.next_at LIMIT 1),
  (SELECT f.next_at FROM delivery f {retry_index} WHERE f.webhook_id = w.id AND f.state = 0
   AND f.blocked = 0 AND f.attempts > 0 {free} ORDER BY f.next_at LIMIT 1),
  (SELECT MIN(f.lease_until) FROM delivery f WHERE f.webhook_id = w.id
   AND f.lease_until > {now} AND f.state = 0 AND f.blocked = 0)
FROM webhook w WHERE w.id IN ({marks})
"""


# PostgreSQL: the fronts whose lock the claim gets, their exact values (as
# :func:`exact_front` computes them) and the update, in one statement; a front that
# keeps its value is not written again.
_RAISE_PG = f"""
WITH mine AS MATERIALIZED (
  SELECT w FROM unnest(%(hooks)s::int[]) AS w
  WHERE pg_try_advisory_xact_lock({FRONT_LOCK}, w)),
exact AS (
  SELECT w.id, w.active, w.failure_count >= %(probe)s AS probing, w.paused_until,
    LEAST((SELECT f.next_at FROM delivery f WHERE f.webhook_id = w.id AND f.state = 0
           AND f.blocked = 0 AND {free_of_lease("%(now)s")}
           ORDER BY f.next_at LIMIT 1), l.t) AS front,
    LEAST((SELECT f.next_at FROM delivery f WHERE f.webhook_id = w.id AND f.state = 0
           AND f.blocked = 0 AND f.attempts > 0
           AND {free_of_lease("%(now)s")}
           ORDER BY f.next_at LIMIT 1), l.t) AS retry
  FROM mine JOIN webhook w ON w.id = mine.w
  LEFT JOIN LATERAL (SELECT MIN(f.lease_until) AS t FROM delivery f
    WHERE f.webhook_id = w.id AND f.lease_until > %(now)s AND f.state = 0
    AND f.blocked = 0) l ON true),
v AS (
  SELECT id, paused_until, CASE WHEN NOT active THEN NULL
    WHEN probing THEN COALESCE(retry, CASE WHEN front IS NOT NULL
                                           THEN %(now)s + {PROBING_RECHECK_SEC} END)
    ELSE front END AS base
  FROM exact)
UPDATE webhook_front f SET front_at = GREATEST(v.base, v.paused_until)
FROM v WHERE f.webhook_id = v.id AND f.front_at IS DISTINCT FROM (
  CASE WHEN v.base IS NULL THEN NULL ELSE GREATEST(v.base, v.paused_until) END)
"""


def exact_front(failures: int, paused_until: float | None, front: float | None,
                retry_front: float | None, now: float, probe_after: int) -> float | None:
    """The front a claim sets: the earliest ready head (the earliest retrying one while
    probing: fresh heads wait), not before the receiver's pause ends."""
    if failures >= probe_after:
        if retry_front is not None:
            front = retry_front
        elif front is not None:
            front = now + PROBING_RECHECK_SEC
    if front is not None and paused_until is not None:
        front = max(front, paused_until)
    return front


def raise_fronts(hook_ids: Iterable[int], now: float, probe_after: int) -> None:
    """Set the fronts of ``hook_ids`` to their exact values (in the claim's transaction;
    on PostgreSQL only those no writer is lowering at the moment)."""
    wanted = sorted(set(hook_ids))
    if not wanted:
        return
    database = _db()
    if is_postgres():
        database.execute_sql(_RAISE_PG, {"hooks": wanted, "now": now,
                                         "probe": probe_after})
        return
    p = database.param
    values = []
    for start in range(0, len(wanted), _CHUNK):
        part = wanted[start:start + _CHUNK]
        sql = _EXACT.format(marks=", ".join([p] * len(part)), retry_index=(
            "" if is_postgres() else "INDEXED BY delivery_retry_heads"), now=p,
            free=_FREE.format(now=p))
        for hook_id, active, failures, paused, front, retry, leased in database.execute_sql(
                sql, [now, now, now, *part]):
            if leased is not None:  # a leased head is due again when its lease ends
                front = leased if front is None else min(front, leased)
                retry = leased if retry is None else min(retry, leased)
            # (an inactive webhook is never claimed, its pending rows are its buffer
            # until moved; activation puts its front to the floor)
            values.append((exact_front(failures, paused, front, retry, now, probe_after)
                           if active else None, hook_id))
    database.cursor().executemany(
        "UPDATE webhook_front SET front_at = ? WHERE webhook_id = ? "
        "AND front_at IS NOT ?", [(t, w, t) for t, w in values])
