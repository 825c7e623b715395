"""Store outages reported once per episode, with their real cause.

When the store cannot write (a full disk, a read-only or vanished file, PostgreSQL down,
no descriptor left to open the file), every request and every turn of the delivery loop
fails the same way: logging a traceback each time wrote 43 MB in 25 s, and the cause
itself (``database or disk is full``) appeared 30 times among 14,801 lines of ``cannot
rollback - no transaction is active`` (after ``SQLITE_FULL`` SQLite has already rolled
back, so peewee's rollback on the way out fails and replaces the exception).

Here the first failure of an episode is one ERROR line naming the cause and where it was
met; the rest are counted; the first success after it is one WARNING line saying how long
it lasted and how many requests were refused. Callers answer 503 (or error 99) meanwhile.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

import peewee

log = logging.getLogger(__name__)

# Messages of a failed rollback or commit after the database already ended the
# transaction: never the cause.
_MASKS = ("no transaction is active", "cannot rollback", "cannot commit")


# What an unavailable store says (SQLite, PostgreSQL, the drivers). Anything else (no
# such table, a constraint, a syntax error) is a defect, logged with its traceback.
_OUTAGE_WORDS = ("disk", "full", "i/o", "readonly", "read-only", "unable to open",
                 "locked", "busy", "connection", "connect", "server closed", "terminat",
                 "timeout", "timed out", "no space", "shutting down", "recovery mode",
                 "too many clients", "out of memory")


def is_store_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the store is unavailable (not that a query is wrong)."""
    module = type(exc).__module__ or ""
    if isinstance(exc, peewee.InterfaceError):
        return True
    if not (isinstance(exc, peewee.OperationalError | sqlite3.OperationalError)
            or module.startswith(("psycopg", "psycopg2"))):
        return False
    cause = real_cause(exc).lower()
    return any(word in cause for word in _OUTAGE_WORDS)


def real_cause(exc: BaseException) -> str:
    """The first message in the exception's chain that is not a masking rollback error."""
    seen, current, first = set(), exc, None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).strip() or type(current).__name__
        first = first or text
        if not any(mask in text for mask in _MASKS):
            return text.splitlines()[0][:300]
        current = current.__cause__ or current.__context__
    return (first or "unknown error").splitlines()[0][:300]


class Outage:
    """One process's view of the store: healthy, or failing since when and why."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.since: float | None = None
        self.cause: str | None = None
        self.refused = 0
        self.last_failure: float | None = None

    @property
    def failing(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException, where: str) -> str:
        """Count a failure; log it if it opens an episode. Returns the cause."""
        cause = real_cause(exc)
        with self._lock:
            self.refused += 1
            self.last_failure = self._clock()
            if self.since is not None:
                self.cause = cause
                return cause
            self.since, self.cause, self.refused = self._clock(), cause, 1
        log.error("store: %s (%s); answering 503 until it works again", cause, where)
        return cause

    def quiet_for(self) -> float:
        """Seconds since the last failure (infinite if none)."""
        if self.last_failure is None:
            return float("inf")
        return self._clock() - self.last_failure

    def recovered(self) -> None:
        """A write succeeded: close the episode, if one is open."""
        if self.since is None:
            return
        with self._lock:
            if self.since is None:
                return
            lasted, refused = self._clock() - self.since, self.refused
            self.since, self.cause, self.refused = None, None, 0
        log.warning("store: works again after %.1f s (%d requests or store calls refused "
                    "meanwhile)", lasted, refused)


STORE = Outage()
