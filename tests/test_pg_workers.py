"""Several processes on one PostgreSQL store (SOAPSERVICE_TEST_DATABASE_URL): one
``serve --no-delivery`` and three ``soapservice worker``s deliver 5,000 events for 200
subscribers to a flaky receiver. Every event arrives, in order per subscriber, exactly
once; then a worker is killed with SIGKILL mid-stream and still every event arrives,
with duplicates bounded by the deliveries it held at that moment."""

from __future__ import annotations

import collections
import json
import signal
import threading
import time

import pytest
import requests

from tests import pgstore
from tests.conftest import PASSWORD, Server, free_port
from tests.support.receiver import Receiver
from tests.support.server import Worker

pytestmark = [pytest.mark.slow, pytest.mark.server]

SUBSCRIBERS = 200
PER_SUBSCRIBER = 25  # 5,000 events
# One webhook per event type; subscriber s's events are of type s % 3, so a failing
# answer (which holds its webhook to one probe) slows a third of the stream only.
EVENTS = ("optin_finalized", "optout_finalized", "profilemanager_finalized")


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics:\n{text}")


class Flaky:
    """Answers 503 to the first attempt of every 100th event, 200 otherwise; counts the
    2xx answers per (webhook path, subscriber, n) in arrival order."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tries = collections.Counter()
        self.seen: dict[tuple, list[int]] = collections.defaultdict(list)
        self.ok = 0
        self.delay = 0.0  # seconds before answering (so that deliveries are in flight)
        # Closed (hold()): answers wait until opened, at most 1 s after the closing
        # (the workers' timeout is 5 s), so that the deliveries in flight stay in flight
        # while a worker is picked and killed.
        self.gate = threading.Event()
        self.gate.set()
        self.held_until = 0.0

    def hold(self):
        self.held_until = time.monotonic() + 1.0
        self.gate.clear()

    def __call__(self, req):
        if not self.gate.is_set():
            self.gate.wait(timeout=max(0.0, self.held_until - time.monotonic()))
        if self.delay:
            time.sleep(self.delay)
        data = json.loads(req["body"])
        key = (req["path"], data["subscriber_id"])
        with self.lock:
            self.tries[key, data["n"]] += 1
            if self.tries[key, data["n"]] == 1 and (data["subscriber_id"] * 31
                                                     + data["n"]) % 100 == 0:
                return 503
            self.seen[key].append(data["n"])
            self.ok += 1
            return 200

    def unique(self) -> int:
        with self.lock:
            return sum(len(set(ns)) for ns in self.seen.values())


def emit_all(url, first, count, threads=8):
    """Events n = first .. first+count-1 for every subscriber; each subscriber's events
    are sent one after the other (so their ids follow n), subscribers in parallel."""
    def run(mine):
        with requests.Session() as session:
            for n in range(first, first + count):
                for sub in mine:
                    answer = session.post(url + "/events", timeout=30, headers={
                        "Authorization": "Bearer test-ingest-token"}, json={
                        "account": "alice", "event": EVENTS[sub % len(EVENTS)],
                        "data": {"subscriber_id": sub, "n": n}})
                    assert answer.status_code == 202, answer.text

    groups = [list(range(SUBSCRIBERS))[i::threads] for i in range(threads)]
    workers = [threading.Thread(target=run, args=(g,)) for g in groups]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def check_order(flaky: Flaky, upto: int):
    for key, ns in flaky.seen.items():
        unique = sorted(set(ns))
        assert unique == list(range(upto)), f"{key}: missing {set(range(upto)) - set(ns)}"
        # In order: the first arrival of each n follows n.
        firsts = list(dict.fromkeys(ns))
        assert firsts == unique, f"{key}: out of order {firsts[:40]}"


def test_serve_and_three_workers_share_postgresql(tmp_path, pg_database):
    if pg_database is None:
        pytest.skip("set SOAPSERVICE_TEST_DATABASE_URL to a PostgreSQL server")
    pgstore.empty(pg_database)
    flaky = Flaky()
    receiver = Receiver(flaky).start()
    (tmp_path / "serve").mkdir()
    srv = Server(tmp_path / "serve", {
        "SOAPSERVICE_DATABASE_URL": pg_database,
        "SOAPSERVICE_DELIVERY": "0",
        "SOAPSERVICE_RETRY_SCHEDULE": "0.05,0.05,0.05,0.05,0.05,0.05,0.05,0.05",
        "SOAPSERVICE_DELIVERY_TIMEOUT": "5",
        "SOAPSERVICE_WEBHOOK_CONCURRENCY": "100",
    })
    workers = []
    try:
        srv.add_account("alice", PASSWORD)
        srv.start()
        assert "delivery off" in srv.log()
        for i, event in enumerate(EVENTS):
            answer = requests.post(f"{srv.url}/json/CreateWebHook", timeout=30, data={
                "username": "alice", "password": PASSWORD, "app": "crm",
                "event": event, "url": f"{receiver.url}/h{i}"}).json()
            assert answer["error"] == 0, answer
        workers = [Worker(srv.env, tmp_path / f"worker{i}.log", free_port())
                   for i in range(3)]
        for w in workers:
            w.wait_started()

        # Phase 1: nobody dies: every event once, in order.
        started = time.monotonic()
        emit_all(srv.url, 0, PER_SUBSCRIBER)
        print(f"phase 1: 5,000 events stored in {time.monotonic() - started:.1f} s")
        total = SUBSCRIBERS * PER_SUBSCRIBER
        receiver.wait_for(lambda: flaky.unique() >= total, timeout=90,
                          what=f"{total} deliveries")
        phase1 = time.monotonic() - started
        print(f"phase 1: {total} deliveries in {phase1:.1f} s")
        check_order(flaky, PER_SUBSCRIBER)
        assert flaky.ok == total, (f"{flaky.ok - total} duplicates with no process dying; "
                                   f"attempts: {attempt_summary(pg_database)}")
        # Every worker took part (the claims are shared, not won by one process).
        per_worker = [metric(w.metrics(), 'soapservice_delivery_attempts_total'
                             '{outcome="success"}') for w in workers]
        assert sum(per_worker) == total and min(per_worker) > 0, per_worker

        # Phase 2: a worker is killed with SIGKILL while deliveries run (answers take
        # 50 ms now, so that every worker has some in flight).
        flaky.delay = 0.05
        more = 10
        emitter = threading.Thread(target=emit_all, args=(srv.url, PER_SUBSCRIBER, more))
        emitter.start()
        receiver.wait_for(lambda: flaky.ok >= total + 300, timeout=60,
                          what="phase 2 under way")
        # Answers are held back for a moment, so that leases pile up instead of coming
        # and going; the worker holding the most of them (deliveries in flight) dies.
        flaky.hold()
        deadline = time.monotonic() + 0.8
        while True:
            victim = max(workers, key=lambda w: held_leases(pg_database, w.owner))
            if held_leases(pg_database, victim.owner) > 2 or time.monotonic() > deadline:
                break
        workers.remove(victim)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        # PostgreSQL may still be reading what the process sent before it died (a
        # COMMIT of a claim): count its leases once its connections are gone.
        wait_gone(pg_database, f"soapservice[{victim.proc.pid}]")
        held = held_leases(pg_database, victim.owner)
        flaky.gate.set()
        assert held > 0, "the killed worker had nothing in flight: the test proves nothing"
        emitter.join()
        total2 = SUBSCRIBERS * (PER_SUBSCRIBER + more)
        # Its leases run out (delivery timeout * 2 + 30 s), then the others take over.
        receiver.wait_for(lambda: flaky.unique() >= total2, timeout=90,
                          what=f"{total2} deliveries after the kill")
        check_order(flaky, PER_SUBSCRIBER + more)
        duplicates = flaky.ok - total2
        # Beside the killed worker's deliveries, an attempt of a live worker that timed
        # out on a loaded machine after the receiver took it is sent again (at least
        # once): those are counted apart.
        timed_out = timeouts(pg_database)
        assert duplicates <= held + timed_out, (duplicates, held, timed_out)
        takeovers = sum(metric(w.metrics(), "soapservice_lease_takeovers_total")
                        for w in workers)
        assert takeovers == held, (takeovers, held)
        print(f"phase 2: killed worker held {held} leases, {duplicates} delivered twice "
              f"({timed_out} attempts timed out), "
              f"{time.monotonic() - started - phase1:.1f} s")
    finally:
        for w in workers:
            w.stop()
        srv.stop()
        receiver.stop()


def held_leases(url, owner) -> int:
    import psycopg2
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM delivery WHERE lease_owner = %s "
                        "AND state = 0 AND lease_token IS NOT NULL", (owner,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def timeouts(url) -> int:
    import psycopg2
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM attempt WHERE error LIKE 'timeout%%'")
            return cur.fetchone()[0]
    finally:
        conn.close()


def attempt_summary(url) -> list:
    import psycopg2
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status, error, count(*) FROM attempt GROUP BY 1, 2")
            out = cur.fetchall()
            cur.execute("SELECT count(*) FROM event")
            out += cur.fetchall()
            cur.execute("SELECT delivery_id, count(*) FROM attempt WHERE status=200 "
                        "GROUP BY 1 HAVING count(*) > 1 LIMIT 10")
            out += cur.fetchall()
            return out
    finally:
        conn.close()


def wait_gone(url, application_name, timeout=30):
    import psycopg2
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            (application_name,))
                if cur.fetchone()[0] == 0:
                    return
            time.sleep(0.02)
        raise AssertionError(f"{application_name} still connected")
    finally:
        conn.close()
