"""Idempotent ingest (SPEC §7): one event per (account, Idempotency-Key) within 24 h,
through the Python function, ``soapservice emit``, ``POST /events``, and processes
racing on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from soapservice.ingest import IdempotencyConflict, IngestError, emit
from soapservice.models import Delivery, Event, IdempotencyKey
from soapservice.store import accounts, webhooks

DAY = 86400.0
NOW = 2_000_000_000.0
INGEST_TOKEN = "test-ingest-token"


def test_same_key_same_account_within_a_day_stores_one_event(alice):
    webhooks.create(alice.id, "crm", "optin_finalized", "http://r/", "whsec_" + "A" * 32, 9)
    first = emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=DAY, now=NOW,
                 idempotency_key="order-1")
    again = emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=DAY,
                 now=NOW + DAY - 1, idempotency_key="order-1")
    assert tuple(again) == tuple(first) and first[1] == 1
    assert not first.duplicate and again.duplicate
    assert Event.select().count() == 1 and Delivery.select().count() == 1
    with pytest.raises(IdempotencyConflict):
        emit("alice", "optin_finalized", {"subscriber_id": 2}, window_sec=DAY, now=NOW + 1,
             idempotency_key="order-1")
    with pytest.raises(IdempotencyConflict):
        emit("alice", "optout_finalized", {"subscriber_id": 1}, window_sec=DAY, now=NOW + 1,
             idempotency_key="order-1")
    # Another account has keys of its own; a day later the key is free again.
    from soapservice import auth
    accounts.add("bob", auth.hash_password("pw", n=2**4))
    assert not emit("bob", "optin_finalized", {"subscriber_id": 1}, window_sec=DAY, now=NOW,
                    idempotency_key="order-1").duplicate
    later = emit("alice", "optin_finalized", {"subscriber_id": 3}, window_sec=DAY,
                 now=NOW + DAY + 1, idempotency_key="order-1")
    assert not later.duplicate and later[0] != first[0]
    assert Event.select().count() == 3
    assert IdempotencyKey.select().count() == 1  # keys older than a day are forgotten
    # Without a key nothing is de-duplicated.
    assert emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=DAY, now=NOW)[0] \
        != emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=DAY, now=NOW)[0]


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", "new\nline"])
def test_a_bad_key_stores_nothing(alice, key):
    with pytest.raises(IngestError, match="Idempotency-Key"):
        emit("alice", "optin_finalized", {}, window_sec=DAY, now=NOW, idempotency_key=key)
    assert Event.select().count() == 0


def test_post_events_twice_with_one_key_stores_one_event(make_server):
    srv = make_server()
    headers = {"Authorization": f"Bearer {INGEST_TOKEN}", "Idempotency-Key": "k-1"}
    message = {"account": "alice", "event": "optin_finalized", "data": {"subscriber_id": 5}}
    first = requests.post(srv.url + "/events", json=message, headers=headers)
    second = requests.post(srv.url + "/events", json=message, headers=headers)
    assert first.status_code == 202 and "duplicate" not in first.json()
    assert second.status_code == 200
    assert second.json() == {"id": first.json()["id"], "queued": 0, "duplicate": True}
    other = requests.post(srv.url + "/events", headers=headers, json={
        **message, "data": {"subscriber_id": 6}})
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["error"]
    bad = requests.post(srv.url + "/events", json=message, headers={
        **headers, "Idempotency-Key": "x" * 256})
    assert bad.status_code == 400
    env = {**srv.env}
    cli = [sys.executable, "-m", "soapservice", "emit", "--account", "alice",
           "--idempotency-key", "k-1", "optin_finalized", '{"subscriber_id":5}']
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"event {first.json()['id']} already stored" in done.stdout
    import sqlite3
    with sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True) as db:
        assert db.execute("SELECT COUNT(*) FROM event").fetchone() == (1,)


def test_processes_racing_with_one_key_store_one_event_on_postgresql(pg_database, alice,
                                                                     store_url):
    if pg_database is None:
        pytest.skip("set SOAPSERVICE_TEST_DATABASE_URL to a PostgreSQL server")
    env = {**os.environ, "SOAPSERVICE_DATABASE_URL": store_url}
    cli = [sys.executable, "-m", "soapservice", "emit", "--account", "alice",
           "--idempotency-key", "race", "optin_finalized", '{"subscriber_id":1}']
    racers = [subprocess.Popen(cli, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in racers]
    assert all(p.returncode == 0 for p in racers), outputs
    assert sum("already stored" in out for out, _ in outputs) == 3
    assert Event.select().count() == 1 and IdempotencyKey.select().count() == 1
