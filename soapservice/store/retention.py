"""Retention: delivered deliveries, attempts and finished events past the retention are
deleted in steps measured in time, not rows: each step is one write transaction that
deletes small batches until ``budget_sec`` (15 ms) is spent, so no step holds SQLite's
write lock long enough to be felt by ingest or delivery, whatever the machine's speed or
load. The caller (``soapservice.purging``) pauses between steps so that ingest's and
the delivery loop's transactions go in between.

Then SQLite returns the freed pages to the file system (incremental vacuum, in steps of
bounded time too: one ``incremental_vacuum`` statement moves pages until it is done,
however many) and its WAL is checkpointed PASSIVE (never waiting for, or blocking,
another writer) and truncated to ``journal_size_limit``.

The portal's hourly rollup goes last (store.portal.purge_rollup).

Events are walked by id from a cursor (:class:`Progress`), oldest first, stopping at the
first one younger than the retention: the event table has no index on its time, and a
scan for "old events without deliveries" over a table of a million young ones would
read it all inside one write transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from peewee import SQL, fn

from soapservice.models import DELIVERED, Attempt, Delivery, Event
from soapservice.store import is_postgres, portal, write_transaction

# One step's share of the write lock (well under the 50 ms the issue allows; a commit
# and the last batch come on top).
STEP_SEC = 0.015
# Rows per statement inside a step: ~1-2 ms each here.
BATCH = 100
# Pages per vacuum statement inside a step (4 KiB each; ~20-30 us per page).
VACUUM_BATCH = 64


@dataclass
class Progress:
    """Where a purge run is: which table it works on, the events cursor."""

    table: str = "delivery"  # then "attempt", "event", "rollup", "done"
    after_event: int = 0  # events up to this id were looked at in this run
    deliveries: int = 0  # deleted so far in this run

    @property
    def done(self) -> bool:
        return self.table == "done"


def purge_step(now: float, retention_sec: float, progress: Progress,
               budget_sec: float = STEP_SEC,
               clock: Callable[[], float] = time.monotonic) -> int:
    """One write transaction of the purge: batches of deletions until ``budget_sec`` is
    spent or the run is done (``progress.done``). Returns the rows deleted."""
    cutoff = now - retention_sec
    removed = 0
    with write_transaction():
        started = clock()
        while not progress.done:
            table = progress.table
            count = _batch(now, cutoff, progress, BATCH)
            removed += count
            if table == "delivery":
                progress.deliveries += count
            if clock() - started >= budget_sec:
                break
    return removed


def _batch(now: float, cutoff: float, progress: Progress, size: int) -> int:
    """Delete one batch of the current table; move ``progress`` on when it is spent."""
    if progress.table == "delivery":
        ids = [d for (d,) in Delivery.select(Delivery.id).where(
            (Delivery.state == DELIVERED) & (Delivery.delivered_at < cutoff))
            .limit(size).tuples()]
        if ids:
            return Delivery.delete().where(Delivery.id.in_(ids)).execute()
        progress.table = "attempt"
        return 0
    if progress.table == "attempt":
        ids = [a for (a,) in Attempt.select(Attempt.id).where(Attempt.at < cutoff)
               .limit(size).tuples()]
        if ids:
            return Attempt.delete().where(Attempt.id.in_(ids)).execute()
        progress.table = "event"
        return 0
    if progress.table == "rollup":  # the portal's hourly counts
        count = portal.purge_rollup(now, size)
        if count < size:
            progress.table = "done"
        return count
    rows = list(Event.select(Event.id, Event.created_at).where(
        Event.id > progress.after_event).order_by(Event.id).limit(size).tuples())
    old = [e_id for e_id, created in rows if created < cutoff]
    if len(old) < len(rows) or len(rows) < size:
        progress.table = "rollup"  # the rest is younger (ids grow with time)
    if not old:
        return 0
    progress.after_event = old[-1]
    return Event.delete().where(Event.id.in_(old) & ~fn.EXISTS(
        Delivery.select(SQL("1")).where(Delivery.event == Event.id))).execute()


def purge(now: float, retention_sec: float) -> int:
    """Purge everything due in one call (tests, operators), still in short
    transactions; the delivery loop runs :func:`purge_step` with pauses instead.
    Returns the deliveries deleted."""
    progress = Progress()
    while not progress.done:
        purge_step(now, retention_sec, progress)
    return progress.deliveries


def vacuum_step(budget_sec: float = STEP_SEC,
                clock: Callable[[], float] = time.monotonic) -> int:
    """SQLite: return free pages to the file system for up to ``budget_sec`` in one
    write transaction; the free pages left (0: done). A no-op on PostgreSQL
    (autovacuum's job). (Python 3.11's sqlite3 runs one step of a statement that
    returns no columns, so one ``incremental_vacuum(N)`` frees one page there and N on
    3.12+: the loop counts what is left, not what it asked for.)"""
    if is_postgres():
        return 0
    database = Delivery._meta.database
    if database.execute_sql("PRAGMA auto_vacuum").fetchone()[0] != 2:
        return 0  # a file made before INCREMENTAL: see store.open_store
    with write_transaction():
        started = clock()
        left = database.execute_sql("PRAGMA freelist_count").fetchone()[0]
        while left:
            database.execute_sql(f"PRAGMA incremental_vacuum({VACUUM_BATCH})").fetchall()
            left = database.execute_sql("PRAGMA freelist_count").fetchone()[0]
            if clock() - started >= budget_sec:
                break
        return left


def checkpoint() -> tuple[int, int]:
    """SQLite: copy what the WAL holds into the file without waiting for readers or
    blocking writers (PASSIVE); once all of it is copied the next writer starts the
    WAL over and ``journal_size_limit`` truncates it. Returns (WAL frames, frames
    copied); (0, 0) on PostgreSQL."""
    if is_postgres():
        return 0, 0
    _busy, frames, copied = Delivery._meta.database.execute_sql(
        "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return frames, copied
