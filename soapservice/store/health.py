"""Whether the store can write, for ``/healthz``, and SQLite's real errors.

A ``SELECT 1`` answers on a full disk: ``/healthz`` said 200 while no event could be
stored. The check here commits a 16 KiB value and then clears it, at most once per
``interval_sec`` while the store is healthy and on every check while an outage is open.
A small write can succeed where an event's fails (SQLite reuses free pages of its file),
so while real writes keep failing the store stays unhealthy: the probe ends an outage
only after ``quiet_sec`` without a failure; a real write that succeeds ends it at once.

:class:`SafeSqliteDatabase`: after ``SQLITE_FULL`` (and other errors that end the
transaction) SQLite has already rolled back, and peewee's ``ROLLBACK`` on the way out of
``atomic()`` fails with "cannot rollback - no transaction is active", replacing the real
exception; a rollback with no transaction open is skipped, so the cause propagates.
"""

from __future__ import annotations

import os
import threading
import time

from peewee import SqliteDatabase
from playhouse.db_url import register_database

from soapservice import outage
from soapservice.models import Setting

PROBE_KEY = "health_probe"
PROBE_BYTES = 16 * 1024


class SafeSqliteDatabase(SqliteDatabase):
    def rollback(self):
        connection = self._state.conn
        if connection is not None and not connection.in_transaction:
            return None  # SQLite ended the transaction itself (SQLITE_FULL, IOERR, ...)
        return super().rollback()


register_database(SafeSqliteDatabase, "sqlite")


def probe_write() -> None:
    """Commit a 16 KiB value, then clear it: raises what a real write would raise."""
    value = os.urandom(PROBE_BYTES // 2).hex()
    for text in (value, ""):
        Setting.insert(key=PROBE_KEY, value=text).on_conflict(
            conflict_target=[Setting.key], update={Setting.value: text}).execute()


class WriteCheck:
    """The cached answer to "can the store write?" (thread-safe)."""

    def __init__(self, interval_sec: float = 10.0, quiet_sec: float = 30.0,
                 clock=time.monotonic, tracker: outage.Outage | None = None):
        self.interval_sec, self.quiet_sec, self._clock = interval_sec, quiet_sec, clock
        self.tracker = tracker or outage.STORE
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    def check(self) -> tuple[bool, str]:
        """(healthy, text for /healthz). Blocks on the store: call from a thread."""
        now = self._clock()
        with self._lock:
            due = (self.tracker.failing or self._checked_at is None
                   or now - self._checked_at >= self.interval_sec)
            if due:
                self._checked_at = now
                try:
                    probe_write()
                except Exception as exc:
                    if not outage.is_store_error(exc):
                        raise
                    self.tracker.failed(exc, "health check")
                else:
                    if self.tracker.quiet_for() >= self.quiet_sec:
                        self.tracker.recovered()
        if self.tracker.failing:
            return False, f"store cannot write: {self.tracker.cause}"
        return True, "ok"


CHECK = WriteCheck()
