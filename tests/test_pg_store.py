"""The store under concurrency, as several processes use it on PostgreSQL (skipped
unless SOAPSERVICE_TEST_DATABASE_URL is set; the precision test runs on SQLite too)."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from soapservice import notify, store
from soapservice.ingest import emit
from soapservice.models import DELIVERED, Delivery, Notification, Setting, Webhook
from soapservice.store import outbox, webhooks
from tests import pgstore

DAY = 86400.0
NOW = 2_000_000_000.0


@pytest.fixture
def pg(pg_database):
    if pg_database is None:
        pytest.skip("set SOAPSERVICE_TEST_DATABASE_URL to a PostgreSQL server")
    return pg_database


def hook(account, url="http://r/"):
    return webhooks.create(account.id, "crm", "optin_finalized", url, "whsec_" + "A" * 32, 100)


def test_times_keep_sub_second_precision(alice):
    """A lease 30 s ahead must not read as expired (a 4-byte float rounds UNIX times
    to minutes)."""
    hook(alice)
    emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=DAY, now=NOW + 0.125)
    [claim] = outbox.claim_due("w1", NOW + 0.25, 30.5, 10, {}, 8)
    row = Delivery.get_by_id(claim.delivery_id)
    assert (row.created_at, row.next_at, row.lease_until) == (
        NOW + 0.125, NOW + 0.125, NOW + 30.75)  # a lease leaves next_at where it was
    assert outbox.claim_due("w2", NOW + 30.7, 30, 10, {}, 8) == []


def test_processes_starting_at_once_create_the_schema_once(pg):
    url = pgstore.create_database(pgstore.server_url())
    try:
        env = dict(__import__("os").environ, SOAPSERVICE_DATABASE_URL=url)
        procs = [subprocess.Popen([sys.executable, "-m", "soapservice", "account", "list"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(4)]
        results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
        assert [r[2] for r in results] == [0] * 4, results
        store.open_store(url)
        assert Setting.get(Setting.key == "schema_version").value == str(store.SCHEMA_VERSION)
    finally:
        store.close_store()
        pgstore.drop_database(pgstore.server_url(), url)


def test_concurrent_claims_share_nothing_and_keep_each_subscriber_in_order(pg, alice):
    hook(alice)
    for n in range(5):
        for sub in range(40):
            emit("alice", "optin_finalized", {"subscriber_id": sub, "n": n},
                 window_sec=DAY, now=NOW)
    lock = threading.Lock()
    claimed: list[int] = []
    in_flight: set[str] = set()
    sequence: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    keys = dict(Delivery.select(Delivery.id, Delivery.order_key).tuples())

    def worker(owner):
        try:
            while True:
                claims = outbox.claim_due(owner, NOW, 30, 7, {}, 100)
                if not claims:
                    with lock:
                        if len(claimed) == 200:
                            return
                    continue
                with lock:
                    for c in claims:
                        key = keys[c.delivery_id]
                        assert key not in in_flight, "two deliveries of one subscriber"
                        in_flight.add(key)
                        claimed.append(c.delivery_id)
                        sequence.setdefault(key, []).append(c.event_id)
                    for c in claims:
                        in_flight.discard(keys[c.delivery_id])
                outbox.record_outcomes(
                    [outbox.Outcome(c.delivery_id, c.token, c.webhook_id, 200, None, 1.0)
                     for c in claims], NOW, (1.0,), lambda: 0.5)
        except BaseException as exc:  # noqa: BLE001 (reported by the test thread)
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sorted(claimed) == sorted(keys)  # every delivery exactly once
    assert all(ids == sorted(ids) for ids in sequence.values())
    assert Delivery.select().where(Delivery.state == DELIVERED).count() == 200


def test_concurrent_failures_deactivate_once_with_one_notification(pg, alice):
    h = hook(alice)
    for sub in range(2):
        emit("alice", "optin_finalized", {"subscriber_id": sub}, window_sec=DAY, now=NOW)
    claims = outbox.claim_due("w1", NOW, 30, 10, {}, 8)
    assert len(claims) == 2
    Delivery.update(attempts=1).execute()  # both at their last scheduled attempt
    barrier = threading.Barrier(2)
    results, errors = [], []

    def record(claim):
        try:
            barrier.wait()
            results.extend(outbox.record_outcomes(
                [outbox.Outcome(claim.delivery_id, claim.token, h.id, 500, None, 1.0)],
                NOW + 1, (1.0,), lambda: 0.5,
                lambda e: notify.store_notification(e, base_url="http://x", ttl_sec=DAY)))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(c,)) for c in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert len(results) == 1
    assert Notification.select().count() == 1
    hook_row = Webhook.get_by_id(h.id)
    assert (hook_row.active, hook_row.deactivations) == (False, 1)


def test_a_deleted_webhooks_id_is_never_handed_out_again(alice):
    first = hook(alice)
    assert webhooks.delete(alice.id, first.id)
    assert hook(alice).id > first.id


def test_the_store_reconnects_after_postgresql_dropped_its_connections(pg, alice):
    """A PostgreSQL restart (here: every backend of the database terminated) costs at
    most the transaction that was running; the next store call works."""
    import psycopg2
    hook(alice)
    admin = psycopg2.connect(pgstore.server_url())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (pg.rsplit("/", 1)[1],))
    admin.close()
    event_id, queued = emit("alice", "optin_finalized", {"subscriber_id": 1},
                            window_sec=DAY, now=NOW)
    assert queued == 1
    assert [c.event_id for c in outbox.claim_due("w1", NOW, 30, 10, {}, 8)] == [event_id]
