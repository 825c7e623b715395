"""Crash and shutdown safety against the real ``soapservice serve``.

SIGKILL at random moments while events pour in through ``POST /events`` and deliveries
flow: every acknowledged event arrives, per-subscriber order holds, duplicates stay
within what was leased (in flight) at the kills, SQLite's integrity check passes, and a
restart continues at once (the killed process's leases are taken back at startup, not
after they expire). SIGTERM: no new requests, the attempt in flight finishes and is
recorded, every lease is given back, exit code 0.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import threading
import time

import pytest
import requests

from soapservice.models import DELIVERED, PENDING
from tests.conftest import PASSWORD
from tests.support.receiver import Receiver

TOKEN = {"Authorization": "Bearer test-ingest-token"}
# A lease is 2 x timeout + 30 s = 630 s, longer than any wait below (at most 120 s, even
# at load 10): every acknowledged event arriving after the restarts proves the leases of
# the killed processes were taken back at startup, not left to expire (no stopwatch).
ENV = {"SOAPSERVICE_DELIVERY_TIMEOUT": "300", "SOAPSERVICE_RETRY_SCHEDULE": "0.1,0.2,0.5,1,1,1"}
SUBSCRIBERS = 5


def create_hook(srv, url):
    answer = requests.post(srv.url + "/json/CreateWebHook", timeout=10, json={
        "username": "alice", "password": PASSWORD, "app": "crm",
        "event": "optin_finalized", "url": url}).json()
    assert answer["error"] == 0, answer
    return answer["result"]


def post_event(srv, data, session=requests):
    return session.post(srv.url + "/events", headers=TOKEN, timeout=10, json={
        "account": "alice", "event": "optin_finalized", "data": data})


def query(srv, sql, *args):
    with sqlite3.connect(srv.db_path) as db:
        return db.execute(sql, args).fetchall()


def leased(srv) -> int:
    return query(srv, "SELECT COUNT(*) FROM delivery WHERE state = ? AND lease_owner "
                      "IS NOT NULL", PENDING)[0][0]


def integrity(srv) -> str:
    return query(srv, "PRAGMA integrity_check")[0][0]


class Producer(threading.Thread):
    """Posts numbered events for several subscribers, one after the other, and keeps
    the numbers the server acknowledged (202). Bounded in count and time."""

    def __init__(self, srv, limit=6000, seconds=300):  # (the test halts it sooner)
        super().__init__(daemon=True)
        self.srv, self.limit, self.until = srv, limit, time.monotonic() + seconds
        self.acked: set[int] = set()
        self.sent = 0
        self.halt = threading.Event()

    def run(self):
        session = requests.Session()
        n = 0
        while not self.halt.is_set() and n < self.limit and time.monotonic() < self.until:
            try:
                answer = post_event(self.srv, {"subscriber_id": n % SUBSCRIBERS, "n": n},
                                    session)
                if answer.status_code == 202:
                    self.acked.add(n)
            except requests.RequestException:
                session = requests.Session()
                self.halt.wait(0.02)  # the server is down: try again shortly
            n += 1  # a number is never reused: an unacknowledged event may still be stored
            self.sent = n
            self.halt.wait(0.003)

    def stop(self):
        self.halt.set()
        self.join(10)


def test_sigkill_at_random_moments_loses_no_acknowledged_event(make_server):
    rng = random.Random()
    pace = threading.local()

    def answer(req):  # a receiver that takes a few ms, so attempts are in flight
        pace.delay = rng.random() * 0.02
        time.sleep(pace.delay)
        return 200

    with Receiver(answer) as receiver:
        srv = make_server(ENV)
        create_hook(srv, receiver.url + "/hook")
        producer = Producer(srv)
        producer.start()
        in_flight_at_kills = 0
        try:
            for _ in range(4):
                target = len(receiver.requests) + rng.randint(20, 120)
                receiver.wait_for(lambda t=target: len(receiver.requests) >= t, timeout=120,
                                  what="deliveries flowing")
                srv.stop(signal.SIGKILL)
                assert srv.proc.returncode == -signal.SIGKILL
                in_flight_at_kills += leased(srv)
                assert integrity(srv) == "ok"
                srv.start()
            target = len(receiver.requests) + 30
            receiver.wait_for(lambda: len(receiver.requests) >= target, timeout=120,
                              what="deliveries after the last restart")
        finally:
            producer.stop()

        acked = producer.acked

        def arrived():
            return {b["n"] for b in receiver.delivered()}
        # Well within a lease (630 s): nothing waits for a dead process's lease to expire.
        receiver.wait_for(lambda: acked <= arrived(), timeout=120,
                          what="every acknowledged event")
        receiver.wait_for(lambda: query(srv, "SELECT COUNT(*) FROM delivery WHERE state "
                                             "= ?", PENDING)[0][0] == 0,
                          timeout=120, what="no delivery left pending")
        srv.stop()
        assert srv.proc.returncode == 0

    assert len(acked) > 50, "too little traffic to mean anything"
    bodies = receiver.delivered()
    numbers = [b["n"] for b in bodies]
    assert set(numbers) <= set(range(producer.sent))
    duplicates = len(numbers) - len(set(numbers))
    assert duplicates <= in_flight_at_kills, (duplicates, in_flight_at_kills)
    print(f"{len(acked)} acknowledged, {len(numbers)} received, {duplicates} duplicates, "
          f"{in_flight_at_kills} leased at the kills")
    for subscriber in range(SUBSCRIBERS):
        firsts = list(dict.fromkeys(b["n"] for b in bodies
                                    if b["subscriber_id"] == subscriber))
        assert firsts == sorted(firsts), f"subscriber {subscriber} out of order"
    assert integrity(srv) == "ok"
    assert leased(srv) == 0
    if in_flight_at_kills:  # the restarts reclaimed the dead processes' leases
        assert "took back" in srv.log()
    assert "Traceback" not in srv.log()


def test_sigterm_finishes_the_attempt_in_flight_and_releases_every_lease(make_server):
    entered, release = [], threading.Event()

    def answer(req):
        # A slow receiver: holds the answer until the test lets it go.
        n = json.loads(req["body"])["n"]
        if n in (1, 2):
            entered.append(n)
            release.wait(120)  # (the delivery timeout is 300 s: no attempt ends before)
        return 200

    with Receiver(answer) as receiver:
        srv = make_server(ENV)
        create_hook(srv, receiver.url + "/hook")
        for n, subscriber in ((1, "a"), (2, "b"), (3, "a")):
            assert post_event(srv, {"subscriber_id": subscriber, "n": n}).status_code == 202
        # 1 and 2 are in flight (held by the receiver); 3 waits behind 1 (same subscriber).
        receiver.wait_for(lambda: sorted(entered) == [1, 2], what="two attempts in flight")
        keep_alive = requests.Session()  # a client whose connection stays open
        assert keep_alive.get(srv.url + "/healthz", timeout=30).status_code == 200
        srv.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while True:  # the listening port closes: no new request is taken
            try:
                post_event(srv, {"subscriber_id": "c", "n": 99})
            except requests.ConnectionError:
                break
            assert time.monotonic() < deadline, "still taking requests after SIGTERM"
            time.sleep(0.05)
        # ... nor on a connection that was open before: 503, and the connection closes.
        refused = post_event(srv, {"subscriber_id": "c", "n": 98}, keep_alive)
        assert refused.status_code == 503 and refused.headers["connection"] == "close"
        srv.proc.send_signal(signal.SIGTERM)  # an impatient second signal changes nothing
        assert srv.proc.poll() is None, "exited before the attempts in flight finished"
        release.set()
        assert srv.proc.wait(timeout=60) == 0
        srv.stop()

        states = dict(query(srv, "SELECT e.body, d.state FROM delivery d JOIN event e "
                                 "ON d.event_id = e.id"))
        states = {json.loads(body)["n"]: state for body, state in states.items()}
        assert states[1] == DELIVERED and states[2] == DELIVERED  # recorded before exit
        assert states[3] == PENDING
        assert 98 not in states
        assert query(srv, "SELECT COUNT(*) FROM delivery WHERE lease_owner IS NOT NULL "
                          "OR lease_token IS NOT NULL")[0][0] == 0
        assert integrity(srv) == "ok"

        srv.start()
        # Continues at once (well within a lease), without sending 1 again: 3 follows
        # 1 for subscriber "a", so a duplicate of 1 would come before it.
        assert post_event(srv, {"subscriber_id": "b", "n": 4}).status_code == 202
        receiver.wait_for(lambda: {3, 4} <= {b["n"] for b in receiver.delivered()},
                          timeout=120, what="the rest after the restart")
        # (99 may have been taken before the signal was handled; then it is delivered too)
        assert sorted(b["n"] for b in receiver.delivered() if b["n"] != 99) == [1, 2, 3, 4]
    assert "Traceback" not in srv.log()


def test_sigint_stops_cleanly_too(make_server):
    srv = make_server()
    srv.proc.send_signal(signal.SIGINT)
    assert srv.proc.wait(timeout=60) == 0
    assert "Traceback" not in srv.log()


def test_sqlite_synchronous_setting(tmp_path):
    from soapservice import store
    from soapservice.config import ConfigError, load_settings
    assert load_settings({}).sqlite_synchronous == "normal"
    assert load_settings({"SOAPSERVICE_SQLITE_SYNCHRONOUS": "FULL"}).sqlite_synchronous == "full"
    with pytest.raises(ConfigError, match="SOAPSERVICE_SQLITE_SYNCHRONOUS"):
        load_settings({"SOAPSERVICE_SQLITE_SYNCHRONOUS": "off"})
    database = store.open_store(f"sqlite:///{tmp_path / 'full.db'}", synchronous="full")
    assert database.execute_sql("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- who may take back a lease ----------------------------------------------------------
def test_owner_is_dead_only_when_provably_gone():
    import os
    import subprocess
    import sys

    from soapservice.delivery import owner_is_dead
    me = os.getpid()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    live = {f"here/1:{me}:aaaa"}

    def dead(owner):
        return owner_is_dead(owner, space="here/1", live=live)
    assert not dead(f"here/1:{me}:aaaa")
    # Same pid, another token: an earlier life of this pid (a restarted container).
    assert dead(f"here/1:{me}:bbbb")
    assert dead(f"here/1:{gone.pid}:cccc")
    assert not dead(f"here/1:{os.getppid()}:dddd")
    # Another host, or another PID namespace on this one (a container sharing the
    # store): its pids mean other processes, so it is never judged.
    assert not dead(f"there/1:{gone.pid}:eeee")
    assert not dead(f"here/2:{gone.pid}:eeee") and not dead(f"here/2:{me}:ffff")
    for odd in ("", "no-colons", "here/1:notapid:x", "here/1:0:x", "here/1:-1:x"):
        assert not dead(odd), odd


def test_release_orphans_frees_only_the_dead_owners_leases(store_url):
    from soapservice import auth, store
    from soapservice.models import Delivery
    from soapservice.store import accounts, outbox, webhooks
    store.open_store(store_url)
    account = accounts.add("alice", auth.hash_password("pw", n=2**4))
    webhooks.create(account.id, "crm", "optin_finalized", "http://r/", "whsec_" + "A" * 32,
                    100)
    for n in range(4):
        outbox.store_event("alice", "optin_finalized", json.dumps({"n": n}), None, 100.0,
                           86400)
    assert len(outbox.claim_due("dead:1:aa", 100.0, 50, 2, {}, 8)) == 2
    assert len(outbox.claim_due("live:2:bb", 100.0, 50, 2, {}, 8)) == 2
    released = outbox.release_orphans(lambda owner: owner.startswith("dead"), 120.0)
    assert released == {"dead:1:aa": 2}
    rows = {d.lease_owner: d for d in Delivery.select()}
    assert set(rows) == {None, "live:2:bb"}
    assert rows[None].next_at == 120.0 and rows[None].lease_token is None
    # The freed ones are due again at once; the live owner's stay leased.
    assert [c.delivery_id for c in outbox.claim_due("new:3:cc", 120.0, 50, 10, {}, 8)] == [
        d.id for d in Delivery.select().where(Delivery.lease_owner == "new:3:cc")]
    assert Delivery.select().where(Delivery.lease_owner == "live:2:bb").count() == 2


@pytest.mark.parametrize("owner_alive", [False, True])
def test_startup_takes_back_a_dead_owners_lease_at_once(store_url, owner_alive):
    """On a task.Clock: a lease of a dead process on this host is sent at startup; one
    that may be alive (another host) waits until it expires."""
    import subprocess
    import sys

    from twisted.internet import defer, task

    from soapservice import auth, delivery, store
    from soapservice.config import Settings
    from soapservice.ingest import emit
    from soapservice.sender import AttemptResult
    from soapservice.store import accounts, outbox, webhooks

    store.open_store(store_url)
    account = accounts.add("alice", auth.hash_password("pw", n=2**4))
    webhooks.create(account.id, "crm", "optin_finalized", "http://r/", "whsec_" + "A" * 32,
                    100)
    clock = task.Clock()
    clock.advance(1_000_000)
    emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=86400,
         now=clock.seconds())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    owner = (f"elsewhere/1:{gone.pid}:aaaa" if owner_alive
             else f"{delivery._SPACE}:{gone.pid}:aaaa")
    settings = Settings(delivery_timeout_sec=10)
    [claim] = outbox.claim_due(owner, clock.seconds(), 50, 10, {}, 8)

    class Sender:
        sent = []

        def send(self, url, headers, body, key=None):
            self.sent.append(json.loads(body))
            return defer.succeed(AttemptResult(200, None, 1.0))

        def close(self):
            return defer.succeed(None)

    sender = Sender()
    service = delivery.DeliveryService(settings, sender,
                                       lambda fn, *a: defer.maybeDeferred(fn, *a), clock)
    service.startService()
    clock.advance(0)
    try:
        if owner_alive:
            assert sender.sent == []
            clock.advance(50)  # the lease runs out
            for _ in range(5):
                clock.advance(0)
        assert sender.sent == [{"subscriber_id": 1}]
    finally:
        service.stopService()
