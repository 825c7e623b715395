"""Cross-process wake-ups on PostgreSQL: a thread that ``LISTEN``\\s on the store's
channel over its own connection (not the pool's) and calls back on every notification
burst, so an event stored by any process is picked up at once by every worker.

No fixed wait: the callback comes as soon as the first notification is read (every
notification already waiting is read with it, one callback for all). Bursts are
coalesced by the delivery loop itself: a wake-up while a claim is in flight only marks
that one more claim follows it (``DeliveryService.wake``), so a burst of events costs a
worker a claim or two, never one claim per event, and a lone event no delay. (A 20 ms
wait after each callback once put PostgreSQL's 202 -> receiver at p50 8 / p99 20 ms.)

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
                    conn.poll()  # reads every notification that has arrived
                    if conn.notifies:
                        conn.notifies.clear()
                        self.callback()
            except Exception as exc:  # noqa: BLE001 (keep listening whatever happened)
                self.listening.clear()
                log.warning("store notifications: %s; reconnecting", exc)
                self._stop.wait(RECONNECT_SEC)
            finally:
                if conn is not None:
                    conn.close()
        self.listening.clear()
