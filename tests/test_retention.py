"""Retention in bounded steps: each purge step is one transaction that stops once its
time budget is spent (a clock injected here), the run walks deliveries, attempts, then
events oldest first and stops at the first young event; SQLite gives the freed pages
back in steps; the process's writers take the write lock first come, first served."""

from __future__ import annotations

import threading

from soapservice.ingest import emit
from soapservice.models import DELIVERED, Attempt, Delivery, Event, Webhook
from soapservice.store import _Turns, is_postgres, retention, webhooks

DAY = 86400.0
NOW = 2_000_000_000.0


def delivered_events(account, count: int, at: float) -> None:
    hook = Webhook.get_or_none(Webhook.account == account.id) or webhooks.create(
        account.id, "crm", "optin_finalized", "http://r/", "whsec_" + "A" * 32, 100)
    for n in range(count):
        emit(account.username, "optin_finalized", {"n": n, "pad": "x" * 2000},
             window_sec=DAY, now=at)
    Delivery.update(state=DELIVERED, delivered_at=at).execute()
    Attempt.insert_many([{"delivery_id": d.id, "webhook_id": hook.id, "at": at,
                          "status": 200, "duration_ms": 1.0} for d in Delivery.select()]
                        ).execute()


class Ticks:
    """A clock that moves ``step`` seconds at every reading."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_step_stops_when_its_time_is_spent(alice):
    delivered_events(alice, 250, NOW)
    progress = retention.Progress()
    # Every batch "takes" a whole budget: one batch (100 rows) per transaction.
    assert retention.purge_step(NOW + 8 * DAY, 7 * DAY, progress, 0.015,
                                Ticks(0.02)) == retention.BATCH
    assert Delivery.select().count() == 150 and progress.table == "delivery"
    steps = 1
    while not progress.done:
        retention.purge_step(NOW + 8 * DAY, 7 * DAY, progress, 0.015, Ticks(0.02))
        steps += 1
    assert progress.deliveries == 250
    assert (Delivery.select().count(), Attempt.select().count(), Event.select().count()) == (
        0, 0, 0)
    assert steps >= 8  # 3 of deliveries, 3 of attempts, 3 of events (some ending a table)
    # A fast machine: everything in one step.
    delivered_events(alice, 30, NOW)
    progress = retention.Progress()
    assert retention.purge_step(NOW + 8 * DAY, 7 * DAY, progress, 0.015, Ticks(0.0)) == 90
    assert progress.done


def test_the_event_walk_stops_at_the_first_young_event_and_keeps_undelivered(alice):
    delivered_events(alice, 5, NOW)
    emit("alice", "optin_finalized", {"n": "pending"}, window_sec=DAY, now=NOW)  # undelivered
    emit("alice", "optin_finalized", {"n": "young"}, window_sec=DAY, now=NOW + 7.5 * DAY)
    Delivery.update(state=DELIVERED, delivered_at=NOW + 7.5 * DAY).where(
        Delivery.created_at > NOW).execute()
    assert retention.purge(NOW + 8 * DAY, 7 * DAY) == 5
    assert sorted(e.body for e in Event.select()) == ['{"n":"pending"}', '{"n":"young"}']
    assert Delivery.select().count() == 2


def test_vacuum_steps_give_the_freed_pages_back(alice):
    delivered_events(alice, 300, NOW)
    database = Delivery._meta.database
    if is_postgres():
        assert retention.vacuum_step() == 0  # autovacuum's job there
        return
    pages = database.execute_sql("PRAGMA page_count").fetchone()[0]
    retention.purge(NOW + 8 * DAY, 7 * DAY)
    free = database.execute_sql("PRAGMA freelist_count").fetchone()[0]
    assert free > 100
    # Over budget at once: a step frees a batch or one page (Python 3.11), not all.
    left = retention.vacuum_step(0.015, Ticks(0.02))
    assert 0 < left < free
    while left:
        left = retention.vacuum_step()
    assert database.execute_sql("PRAGMA page_count").fetchone()[0] < pages - 100
    frames, copied = retention.checkpoint()
    assert copied == frames  # nobody else reading: all of the WAL went back


def test_writers_take_turns_in_the_order_they_asked():
    turns = _Turns()
    order = []
    turns.acquire()  # the purge holds the write lock

    def writer(name):
        turns.acquire()
        order.append(name)
        turns.release()

    threads = []
    for name in ("ingest", "outcomes"):
        thread = threading.Thread(target=writer, args=(name,))
        thread.start()
        threads.append(thread)
        while len(turns._waiting) < len(threads):  # queued (no timing involved)
            pass
    turns.release()
    writer("purge again")  # straight back: behind those who waited
    for thread in threads:
        thread.join()
    assert order == ["ingest", "outcomes", "purge again"]
