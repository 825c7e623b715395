"""Claims: due heads handed to a worker under a lease, shared fairly across webhooks.

A delivery is *due* when ``state = PENDING``, ``blocked = READY`` (the head of its
ordering key, see store.heads), ``next_at <= now`` and it holds no unexpired lease
(``lease_until`` NULL or past). Claiming one sets a lease (owner, token, ``lease_until``)
and nothing else: ``next_at`` stays, so the row keeps its entries in the head indexes
and a claim writes one index entry per leased row (the small partial index of leased
rows, ``delivery_leases``), not three. A delivery whose worker died becomes due again by
itself when its lease runs out: the claim's range of due heads skips the rows under an
unexpired lease (at most the leases its webhook holds), and a webhook's front counts a
leased head as due at its lease's expiry. Outcomes are recorded only while the lease
token still matches (store.outcomes).

A claim costs what it hands out, not what waits:

1. the fronts: the webhooks whose front (store.heads: a lower bound of when their
   earliest ready head is due) has come, from the (front_at, webhook) index, each with
   its first due head (a probing webhook's first due *retrying* head, from the partial
   index of retrying heads); webhooks without due work are not read at all;
2. the share: :func:`policy.fair_share` hands the free capacity round-robin to the
   webhooks with free slots (a webhook at its limit, e.g. a hanging receiver, takes
   nothing and hides nobody); with several live workers (heartbeats in
   ``worker_beat``) one worker takes at most its share of a webhook's slots;
3. per chosen webhook, its first ``share`` due heads (one index range each);
4. the fronts it read for nothing, and those of the webhooks that ran out of due heads
   (fewer leased than their share), are raised to their exact values; a webhook that
   got its whole share keeps its front (it may have more due heads: the next claim
   reads it again, and raises it if not), so a claim spread over many webhooks does
   not recompute a front per webhook it served.

On PostgreSQL claims run in parallel: no global lock; the chosen rows are locked
``FOR UPDATE SKIP LOCKED``, so two workers never lease the same row. Two claims at the
same moment read the same running counts, so a webhook may briefly get up to twice its
per-webhook limit (and a probing webhook two probes) across processes; order per key is
exact all the same, since only heads are claimed.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from peewee import SQL, fn

from soapservice import policy
from soapservice.models import PENDING, Delivery, Event, Webhook, WorkerBeat
from soapservice.store import heads, is_postgres, notify_due, write_transaction
from soapservice.store.prepared import Prepared
from soapservice.store.sql import by_id_only, locked


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
    previous_secret: str | None = None  # signs too until previous_secret_until
    previous_secret_until: float | None = None
    account_id: int | None = None  # whose lookups these are (bounded per account)
    message_of: int | None = None  # a resend: the delivery whose webhook-id it repeats

    @property
    def message_delivery_id(self) -> int:
        """The delivery id in the ``webhook-id`` (a resend repeats its original's)."""
        return self.message_of if self.message_of is not None else self.delivery_id

    def signing_secrets(self, now: float) -> tuple[str, str | None]:
        """The secret and, during a rotation's grace period, the previous one."""
        if self.previous_secret and (self.previous_secret_until or 0) > now:
            return self.secret, self.previous_secret
        return self.secret, None


# The literals (state = 0, blocked = 0, attempts > 0) stay in the text: SQLite uses the
# partial index of retrying heads only when the query names its condition verbatim.
_HEAD = ("f.webhook_id = w.id AND f.state = 0 AND f.blocked = 0 AND f.next_at <= {now} "
         "AND " + heads.free_of_lease("{now}"))
_FIRST = """CASE WHEN w.failure_count >= {probe}
    THEN (SELECT f.{column} FROM delivery f {retry_index} WHERE {head} AND f.attempts > 0
          ORDER BY f.next_at, f.seq LIMIT 1)
    ELSE (SELECT f.{column} FROM delivery f WHERE {head}
          ORDER BY f.next_at, f.seq LIMIT 1) END"""
# The webhooks whose front has come (store.heads), in front order from the
# (front_at, webhook) index, after a (front, webhook) cursor; per webhook its first due
# head (id and due time), NULL when the front was low for nothing.
_FRONTS = """
SELECT h.webhook_id, h.front_at, w.failure_count, w.active, w.paused_until,
  {first_id} AS first_id, {first_at} AS first_at
FROM (SELECT webhook_id, front_at FROM webhook_front WHERE front_at <= {now}
      AND (front_at > {after_at} OR (front_at = {after_at} AND webhook_id > {after_id}))
      ORDER BY front_at, webhook_id LIMIT {limit}) h
JOIN webhook w ON w.id = h.webhook_id
"""
_ROWS = f"""
SELECT f.id FROM delivery f {{index}} WHERE f.webhook_id = {{hook}} AND f.state = 0
  AND f.blocked = 0 AND f.next_at <= {{now}} AND {heads.free_of_lease("{now}")}
  {{retrying}} ORDER BY f.next_at, f.seq LIMIT {{count}}
"""
_RETRY_INDEX = "INDEXED BY delivery_retry_heads"
_ROWS_PG = f"""
SELECT d.id FROM unnest(%(hooks)s::bigint[], %(counts)s::int[]) AS c(w, n)
CROSS JOIN LATERAL (SELECT f.id FROM delivery f WHERE f.webhook_id = c.w AND f.state = 0
  AND f.blocked = 0 AND f.next_at <= %(now)s
  AND {heads.free_of_lease("%(now)s")} {{retrying}}
  ORDER BY f.next_at, f.seq LIMIT c.n) d
"""
# Fronts read per claim beyond the capacity and the webhooks at their limit (fronts
# that were low for nothing are raised as they are read), and rounds of reading.
_SLACK, _ROUNDS = 64, 4


def _sql(template: str, **names) -> str:
    return template.format(**names)


# PostgreSQL: the same, each webhook row and its first due head read per front in a
# nested loop (LATERAL, kept by its LIMIT; the planner hashed the whole webhook table for
# a few hundred fronts), the head and its time from one index probe.
_FRONTS_PG = f"""
SELECT h.webhook_id, h.front_at, w.failure_count, w.active, w.paused_until,
  COALESCE(a.id, b.id), COALESCE(a.next_at, b.next_at)
FROM (SELECT webhook_id, front_at FROM webhook_front WHERE front_at <= %(now)s
      AND (front_at > %(after_at)s OR (front_at = %(after_at)s
                                       AND webhook_id > %(after_id)s))
      ORDER BY front_at, webhook_id LIMIT %(limit)s) h
CROSS JOIN LATERAL (SELECT w.failure_count, w.active, w.paused_until FROM webhook w
                    WHERE w.id = h.webhook_id LIMIT 1) w
LEFT JOIN LATERAL (SELECT f.id, f.next_at FROM delivery f
  WHERE w.failure_count < %(probe)s AND f.webhook_id = h.webhook_id AND f.state = 0
  AND f.blocked = 0 AND f.next_at <= %(now)s
  AND {heads.free_of_lease("%(now)s")}
  ORDER BY f.next_at, f.seq LIMIT 1) a ON true
LEFT JOIN LATERAL (SELECT f.id, f.next_at FROM delivery f
  WHERE w.failure_count >= %(probe)s AND f.webhook_id = h.webhook_id AND f.state = 0
  AND f.blocked = 0 AND f.attempts > 0 AND f.next_at <= %(now)s
  AND {heads.free_of_lease("%(now)s")}
  ORDER BY f.next_at, f.seq LIMIT 1) b ON true
ORDER BY h.front_at, h.webhook_id
"""


def _fronts_sql() -> str:
    if is_postgres():
        return _FRONTS_PG
    # SQLite's planner prefers the head index and filters it for attempts > 0 (a scan
    # of every fresh head of a probing webhook): name the partial index.
    marks = {k: f":{k}" for k in ("now", "probe", "after_at", "after_id", "limit")}
    index = _RETRY_INDEX
    head = _sql(_HEAD, now=marks["now"])
    first = {f"first_{name}": _sql(_FIRST, probe=marks["probe"], retry_index=index,
                                   head=head, column=column)
             for name, column in (("id", "id"), ("at", "next_at"))}
    return _sql(_FRONTS, now=marks["now"], after_at=marks["after_at"],
                after_id=marks["after_id"], limit=marks["limit"], **first)


@dataclass
class Fronts:
    """What a claim read of the fronts: webhooks with a due head (id, probing), oldest
    head first; each one's first due head; the webhooks read for nothing (no due head,
    paused or inactive), whose fronts the claim raises."""

    candidates: list[tuple[int, bool]]
    firsts: dict[int, int]
    stale: set[int]


def fronts(now: float, limit: int, rounds: int = _ROUNDS, enough: int | None = None
           ) -> Fronts:
    """The webhooks whose front has come: ``limit`` per round, another round while the
    last was full and fewer than ``enough`` (default ``limit``) had a due head."""
    sql = _fronts_sql()
    database = Delivery._meta.database
    found: list[tuple[float, int, bool]] = []
    firsts: dict[int, int] = {}
    stale: set[int] = set()
    after = (heads.FLOOR - 1.0, 0)
    enough = limit if enough is None else enough
    for _ in range(rounds):
        rows = database.execute_sql(sql, {
            "now": now, "probe": policy.PROBE_AFTER_FAILURES, "after_at": after[0],
            "after_id": after[1], "limit": limit}).fetchall()
        for hook_id, _front, failures, active, paused, first_id, first_at in rows:
            if first_id is None or not active or (paused is not None and paused > now):
                stale.add(hook_id)
                continue
            found.append((first_at, hook_id, policy.probing(failures)))
            firsts[hook_id] = first_id
        if len(rows) < limit or len(found) >= enough:
            break
        after = (rows[-1][1], rows[-1][0])
    found.sort()
    return Fronts([(hook_id, probing) for _at, hook_id, probing in found], firsts, stale)


def due_heads(shares: dict[int, int], probing: set[int], now: float) -> list[int]:
    """Up to ``shares[w]`` due heads of each webhook ``w``, oldest first (a probing
    webhook's from its retrying heads)."""
    ids: list[int] = []
    database = Delivery._meta.database
    for retrying in (False, True):
        part = {w: n for w, n in shares.items() if (w in probing) == retrying and n > 0}
        if not part:
            continue
        extra = "AND f.attempts > 0" if retrying else ""
        if is_postgres():
            ids += [r[0] for r in database.execute_sql(_sql(_ROWS_PG, retrying=extra), {
                "hooks": list(part), "counts": list(part.values()), "now": now}).fetchall()]
            continue
        sql = _sql(_ROWS, hook=":hook", now=":now", retrying=extra, count=":count",
                   index=_RETRY_INDEX if retrying else "")
        for hook_id, count in part.items():
            ids += [r[0] for r in database.execute_sql(
                sql, {"hook": hook_id, "now": now, "count": count})]
    return ids


def worker_shares(candidates: list[tuple[int, bool]], running: dict[int, int],
                  own: dict[int, int], capacity: int, per_webhook: int | policy.Limits,
                  workers: int) -> dict[int, int]:
    """What this worker starts per webhook: :func:`policy.fair_share` of its own
    capacity over its own requests (the process's limit is its own), each webhook's
    limit cut to this worker's share of its slots (``ceil(per_webhook / workers)``: a
    worker that claims again as soon as its outcomes commit does not keep every slot),
    then no more than the webhook's slots left free by every worker's leases (a probing
    webhook: one request in all)."""
    limits = per_webhook if isinstance(per_webhook, policy.Limits) else policy.Limits(
        per_webhook)
    mine = limits
    if workers > 1:
        mine = replace(limits, per_webhook=max(1, -(-limits.per_webhook // workers)))
    shares = policy.fair_share(candidates, own, capacity, mine)
    for hook_id, probing in candidates:
        if hook_id in shares:
            free = (1 if probing else limits.per_webhook) - running.get(hook_id, 0)
            if free < shares[hook_id]:
                if free > 0:
                    shares[hook_id] = free
                else:
                    del shares[hook_id]
    return shares


def claim_due(owner: str, now: float, lease_sec: float, capacity: int,
              in_flight: dict[int, int], per_webhook: int | policy.Limits,
              on_takeover: Callable[[int], None] | None = None) -> list[Claim]:
    """Lease up to ``capacity`` due heads to ``owner``, shared round-robin over the
    webhooks with free slots (see :func:`policy.fair_share`). ``on_takeover`` is told
    how many of them had an expired lease of another claim (metrics; never raising)."""
    if capacity <= 0:
        return []
    with write_transaction(relaxed=True):  # a lost lease means a redelivery (docs)
        workers = live_workers(owner, now)
        running = leased_per_webhook(now)
        for hook_id, count in in_flight.items():
            running[hook_id] = max(running.get(hook_id, 0), count)
        # Webhooks at their limit are among ``running``: read enough fronts past them.
        found = fronts(now, capacity + len(running) + _SLACK, enough=capacity + len(running))
        shares = worker_shares(found.candidates, running, in_flight, capacity, per_webhook,
                               workers)
        probing = {w for w, is_probing in found.candidates if is_probing}
        chosen = [found.firsts[w] for w, n in shares.items() if n == 1]
        more = {w: n for w, n in shares.items() if n > 1}
        if is_postgres():  # the lease statement reads the non-probing ones' heads itself
            heads_of = {w: n for w, n in more.items() if w not in probing}
            more = {w: n for w, n in more.items() if w in probing}
        else:
            heads_of = {}
        chosen += due_heads(more, probing, now)
        claims = (_lease(owner, now, lease_sec, chosen, on_takeover, heads_of)
                  if chosen or heads_of else [])
        # A webhook that got its whole share may have more due heads: its front stays
        # (come; the next claim reads it again, and raises it if it has none left).
        leased = Counter(c.webhook_id for c in claims)
        ran_out = {w for w, n in shares.items() if leased[w] < n}
        heads.raise_fronts(found.stale | ran_out, now, policy.PROBE_AFTER_FAILURES)
        return claims


# PostgreSQL: the chosen heads (the given ids, and the first ``counts`` due heads of each
# of ``hooks``), locked (skipping rows another worker or an outcome holds; a row changed
# meanwhile is checked again as it is locked), leased and read back in one statement:
# one round trip instead of four. (``= ANY(ARRAY(...))``: the ids first, then looked up
# by the primary key; with ``IN (SELECT ...)`` the planner may hash a scan of the table.)
_LEASE_PG = f"""
WITH wanted AS (
  SELECT unnest(%(ids)s::bigint[]) AS id
  UNION ALL
  SELECT d.id FROM unnest(%(hooks)s::bigint[], %(counts)s::int[]) AS c(w, n)
  CROSS JOIN LATERAL (SELECT f.id FROM delivery f WHERE f.webhook_id = c.w AND f.state = 0
    AND f.blocked = 0 AND f.next_at <= %(now)s
    AND {heads.free_of_lease("%(now)s")}
    ORDER BY f.next_at, f.seq LIMIT c.n) d),
held AS (
  SELECT d.id, d.lease_token AS previous FROM delivery d
  WHERE d.id = ANY(ARRAY(SELECT id FROM wanted)) AND d.state = 0 AND d.next_at <= %(now)s
    AND {heads.free_of_lease("%(now)s", "d")}
  ORDER BY d.id FOR UPDATE SKIP LOCKED),
leased AS (
  UPDATE delivery d SET lease_owner = %(owner)s, lease_token = %(token)s,
    lease_until = %(until)s
  FROM held WHERE d.id = held.id
  RETURNING d.id, d.webhook_id, d.created_at, d.event_id, d.message_of, d.seq, held.previous)
SELECT l.id, l.webhook_id, l.created_at, w.url, w.secret, w.app, w.event, e.id, e.body,
  w.previous_secret, w.previous_secret_until, w.account_id, l.message_of, l.previous
FROM leased l JOIN webhook w ON w.id = l.webhook_id JOIN event e ON e.id = l.event_id
ORDER BY l.seq
"""


def _lease(owner: str, now: float, lease_sec: float, chosen: list[int],
           on_takeover: Callable[[int], None] | None,
           heads_of: dict[int, int] | None = None) -> list[Claim]:
    token = secrets.token_hex(8)
    if is_postgres():
        rows = Delivery._meta.database.execute_sql(_LEASE_PG, {
            "ids": sorted(chosen), "hooks": list(heads_of or {}),
            "counts": list((heads_of or {}).values()), "now": now, "owner": owner,
            "token": token, "until": now + lease_sec}).fetchall()
        takeovers = sum(1 for row in rows if row[-1] is not None)
        if takeovers and on_takeover is not None:
            on_takeover(takeovers)
        return [Claim(d_id, token, hook_id, url, secret, app, event, body, event_id,
                      created, old, old_until, account_id, message_of)
                for d_id, hook_id, created, url, secret, app, event, event_id, body, old,
                old_until, account_id, message_of, _previous in rows]
    # Lock them (skipping rows another worker or an outcome holds); the update below
    # still checks that each is due.
    held = dict(_CLAIMABLE.tuples(sorted(chosen), PENDING, now, now))
    if not held:
        return []
    ids = list(held)
    takeovers = sum(1 for previous in held.values() if previous is not None)
    if takeovers and on_takeover is not None:
        on_takeover(takeovers)
    _LEASE.execute(owner, token, now + lease_sec, ids, PENDING, now, now)
    rows = _CLAIMED.tuples(ids, token)
    return [Claim(d_id, token, hook_id, url, secret, app, event, body, event_id, created,
                  old, old_until, account_id, message_of)
            for d_id, hook_id, created, url, secret, app, event, event_id, body, old,
            old_until, account_id, message_of in rows]


# Workers' heartbeats: written by a claim at most every BEAT_SEC; a worker whose last
# claim is older than LIVE_SEC (an idle one still claims at every sweep) is gone.
BEAT_SEC, LIVE_SEC = 2.0, 15.0
_beats: dict[tuple[int, str], float] = {}


def live_workers(owner: str, now: float) -> int:
    """Delivery workers claiming from this store (this one included)."""
    database = Delivery._meta.database
    key = (id(database.obj), owner)
    last = _beats.get(key)
    if last is None or not (0.0 <= now - last < BEAT_SEC):
        _BEAT.execute(owner, now, now)
        WorkerBeat.delete().where(WorkerBeat.seen_at < now - 3600.0).execute()
        _beats[key] = now
    others = _OTHERS.tuples(owner, now - LIVE_SEC)[0][0]
    return others + 1


_BEAT = Prepared(WorkerBeat, lambda owner, now, again: WorkerBeat.insert(
    owner=owner, seen_at=now).on_conflict(conflict_target=[WorkerBeat.owner],
                                          update={WorkerBeat.seen_at: again}))
_OTHERS = Prepared(WorkerBeat, lambda owner, since: WorkerBeat.select(fn.COUNT(
    WorkerBeat.owner)).where((WorkerBeat.owner != owner) & (WorkerBeat.seen_at > since)))


# The claim's statements, built once. Lists are the ``IN`` of delivery ids.
def _due(now, again):
    """Due by its time and free of an unexpired lease (``now`` bound twice)."""
    return (Delivery.next_at <= now) & (Delivery.lease_until.is_null()
                                        | (Delivery.lease_until <= again))


_CLAIMABLE = Prepared(Delivery, lambda ids, pending, now, again: locked(
    Delivery.select(Delivery.id, Delivery.lease_token).where(
        Delivery.id.in_(ids) & by_id_only(pending) & _due(now, again))
    .order_by(Delivery.id), skip_locked=True))
_LEASE = Prepared(Delivery, lambda owner, token, lease_until, ids, pending, now, again:
                  Delivery.update(lease_owner=owner, lease_token=token,
                                  lease_until=lease_until).where(
                      Delivery.id.in_(ids) & by_id_only(pending) & _due(now, again)))
_CLAIMED = Prepared(Delivery, lambda ids, token: (
    Delivery.select(Delivery.id, Delivery.webhook, Delivery.created_at, Webhook.url,
                    Webhook.secret, Webhook.app, Webhook.event, Event.id, Event.body,
                    Webhook.previous_secret, Webhook.previous_secret_until, Webhook.account,
                    Delivery.message_of)
    .join(Webhook, on=(Delivery.webhook == Webhook.id))
    .switch(Delivery).join(Event, on=(Delivery.event == Event.id))
    .where(Delivery.id.in_(ids) & (Delivery.lease_token == token))
    .order_by(Delivery.seq)))
# Unexpired leases, from the partial index of leased rows (delivery_leases): a lease is
# cleared whenever its delivery is delivered, retried, buffered or released.
# (``+webhook_id``: SQLite would walk the webhook index over every row to group them.)
_LEASED = Prepared(Delivery, lambda now, pending: (
    Delivery.select(Delivery.webhook, fn.COUNT(Delivery.id)).where(
        (Delivery.lease_until > now) & ((Delivery.state + SQL("0")) == pending))
    .group_by(Delivery.webhook if is_postgres() else SQL("+webhook_id"))))
# The next retry, from the (state, next_at) index, or the next lease's end, from the
# partial index of leased rows (``lease_until > now`` implies its condition): one
# statement, one round trip.
_NEXT_DUE = """
SELECT MIN(t) FROM (
  SELECT MIN(next_at) AS t FROM delivery WHERE state = {p} AND next_at > {p}
  UNION ALL
  SELECT MIN(lease_until) FROM delivery WHERE lease_until > {p} AND state + 0 = {p}) s
"""


def leased_per_webhook(now: float) -> dict[int, int]:
    """Requests running per webhook, in every process (unexpired leases)."""
    return dict(_LEASED.tuples(now, PENDING))


def next_due_at(now: float) -> float | None:
    """When the next delivery becomes due (a retry, or an expiring lease). Deliveries
    due already but held back wait for an outcome, which wakes the loop anyway."""
    database = Delivery._meta.database
    return database.execute_sql(_NEXT_DUE.format(p=database.param),
                                (PENDING, now, now, PENDING)).fetchone()[0]


def release(owner: str, now: float, delivery_ids: Sequence[int] | None = None) -> int:
    """Give leased deliveries back (shutdown): due again at once, for anyone."""
    query = Delivery.update(lease_owner=None, lease_token=None, lease_until=None, next_at=now)
    cond = (Delivery.lease_owner == owner) & (Delivery.state == PENDING)
    if delivery_ids is not None:
        cond &= Delivery.id.in_(list(delivery_ids))
    with write_transaction():
        if delivery_ids is None:  # this worker stops: the others share its slots
            WorkerBeat.delete().where(WorkerBeat.owner == owner).execute()
            _beats.pop((id(Delivery._meta.database.obj), owner), None)
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
