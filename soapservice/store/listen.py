"""Cross-process wake-ups on PostgreSQL: a thread that ``LISTEN``\\s on the store's
channel over its own connection (not the pool's) and calls back on every notification
burst, so an event stored by any process is picked up at once by every worker.

A lost connection is retried every second; after reconnecting it calls back once, for
whatever was announced meanwhile (the sweep would find it too, later).
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable

from soapservice.store import CHANNEL, application_name

log = logging.getLogger(__name__)

POLL_SEC = 1.0
RECONNECT_SEC = 1.0
# Notifications arriving within this long after a callback are answered by one more
# callback: a burst of events costs a worker a few claims, not one claim per event.
COALESCE_SEC = 0.02


class DueListener:
    def __init__(self, url: str, callback: Callable[[], None]):
        self.url = url
        self.callback = callback
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while LISTEN is in effect (tests)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="soapservice-listen",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        import psycopg2
        first = True
        while not self._stop.is_set():
            conn = None
            try:
                conn = psycopg2.connect(self.url, application_name=application_name())
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(f"LISTEN {CHANNEL}")
                self.listening.set()
                if not first:
                    self.callback()
                first = False
                while not self._stop.is_set():
                    if select.select([conn], [], [], POLL_SEC) == ([], [], []):
                        continue
                    conn.poll()
                    if conn.notifies:
                        conn.notifies.clear()
                        self.callback()
                        self._stop.wait(COALESCE_SEC)
            except Exception as exc:  # noqa: BLE001 (keep listening whatever happened)
                self.listening.clear()
                log.warning("store notifications: %s; reconnecting", exc)
                self._stop.wait(RECONNECT_SEC)
            finally:
                if conn is not None:
                    conn.close()
        self.listening.clear()
