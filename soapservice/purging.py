"""The purge as the delivery loop runs it: many short store calls with a pause between
them, never one long one.

Each call is one write transaction bounded in time (``store.retention``: ~15 ms of
deletions) or in rows (``store.keeping``: 200 rows). Between two calls the loop waits on
the reactor half as long as the call took (at least 5 ms): the delivery loop's claims and
outcomes (queued on the same store thread) and ingest's commits (its own thread, served
first come, first served at the write lock: ``store.write_transaction``) go in between,
so none of them waits for more than one step; the purge takes at most two thirds of the
store thread and backs off by itself when a busy machine makes its steps slow. Then SQLite's
freed pages go back to the file system (incremental vacuum, in time-bounded steps) and a
PASSIVE checkpoint copies the WAL back without blocking anyone; ``journal_size_limit``
truncates it when it starts over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from twisted.internet import defer, task

from soapservice.store import keeping, retention

log = logging.getLogger(__name__)

# The pause between two steps: half as long as the step took, at least this, at most
# MAX_PAUSE_SEC (a step stuck behind something else does not stall the purge for long).
PAUSE_SEC = 0.005
MAX_PAUSE_SEC = 0.2


def _pause(reactor, since: float) -> defer.Deferred:
    """Wait half as long as the last step took (at least :data:`PAUSE_SEC`): the purge
    takes at most two thirds of the store thread and of the write lock, and backs off
    by itself when a busy machine makes its steps slow."""
    took = reactor.seconds() - since
    return task.deferLater(reactor, max(PAUSE_SEC, min(took / 2, MAX_PAUSE_SEC)),
                           lambda: None)


@defer.inlineCallbacks
def run(store, reactor, settings, now: float, stopping: Callable[[], bool]):
    """One purge: the retention, then the keeping steps. ``store(fn, *args)`` runs a
    store function off the reactor (a Deferred); stops early once ``stopping()``.
    Returns the rows deleted by the retention."""
    progress = retention.Progress()
    removed = 0
    while not progress.done and not stopping():
        since = reactor.seconds()
        removed += yield store(retention.purge_step, now, settings.retention_sec, progress)
        if not progress.done:
            yield _pause(reactor, since)
    if removed:
        while not stopping():
            since = reactor.seconds()
            left = yield store(retention.vacuum_step)
            if not left:
                break
            yield _pause(reactor, since)
        if not stopping():
            yield store(retention.checkpoint)
        log.info("purge: %d rows past the retention deleted", removed)
    for name, step, args in keeping.steps(
            now, keep_sec=settings.buffer_keep_sec, retention_sec=settings.retention_sec,
            link_ttl_sec=settings.token_ttl_days * 86400, audit_sec=settings.audit_sec):
        total = 0
        while not stopping():
            since = reactor.seconds()
            count = yield store(step, *args)
            total += count
            if not count:
                break
            yield _pause(reactor, since)
        if total:
            log.info("purge: %d %s removed", total, name.replace("_", " "))
    return removed


@defer.inlineCallbacks
def buffer_rest(store, reactor, stopping: Callable[[], bool]):
    """After a deactivation: the rest of the webhook's queue into its buffer, in steps
    of one short transaction each with the same pauses (store.keeping.buffer_step).
    Returns how many rows moved."""
    moved = 0
    while not stopping():
        since = reactor.seconds()
        count = yield store(keeping.buffer_step)
        if not count:
            break
        moved += count
        yield _pause(reactor, since)
    return moved
