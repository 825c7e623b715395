"""PostgreSQL: which transactions wait for the disk. The delivery loop's claims and
outcome batches commit relaxed (``synchronous_commit = off``: their loss in a crash of
the server only means a redelivery), everything else as the server says (on), and an
outcome batch that deactivates a webhook durably (docs/delivery.rst, "Commits that may
be lost"). Skipped unless SOAPSERVICE_TEST_DATABASE_URL is set."""

from __future__ import annotations

import pytest

from soapservice import store
from soapservice.ingest import emit
from soapservice.models import DELIVERED, Attempt, AttemptHour, Delivery, db
from soapservice.store import claims, outbox, outcomes, portal, webhooks

DAY = 86400.0
NOW = 2_000_000_000.0


@pytest.fixture
def pg(pg_database, alice):
    """This thread's connection with the server's default of ``on`` (the tests'
    database is made with ``off``, for speed: tests/pgstore.py)."""
    if pg_database is None:
        pytest.skip("set SOAPSERVICE_TEST_DATABASE_URL to a PostgreSQL server")
    db.execute_sql("SET synchronous_commit = on")
    yield pg_database
    db.execute_sql("RESET synchronous_commit")


def setting() -> str:
    return db.execute_sql("SHOW synchronous_commit").fetchone()[0]


def test_relaxed_transactions_only_where_asked(pg, alice):
    server_default = setting()
    with store.write_transaction(relaxed=True):
        assert setting() == "off"
        with store.write_transaction(relaxed=True):  # a savepoint: the same transaction
            assert setting() == "off"
        store.durable_commit()
        assert setting() == "on"
    with store.write_transaction(relaxed=True):
        assert setting() == "off"
    assert setting() == server_default  # SET LOCAL ends with its transaction
    with store.write_transaction():
        assert setting() == "on"
        with store.write_transaction(relaxed=True):  # inside a durable one: stays durable
            assert setting() == "on"
    with pytest.raises(RuntimeError), store.write_transaction(relaxed=True):
        raise RuntimeError("rolled back")
    with store.write_transaction():
        assert setting() == "on"


def test_ingest_durable_claims_and_successes_relaxed_deactivation_durable(pg, alice,
                                                                         monkeypatch):
    healthy = webhooks.create(alice.id, "crm", "optin_finalized", "http://r/ok",
                              "whsec_" + "A" * 32, 100)
    failing = webhooks.create(alice.id, "crm", "optin_finalized", "http://r/gone",
                              "whsec_" + "B" * 32, 100)
    seen: dict[str, list[str]] = {"ingest": [], "claim": [], "batch": []}
    original_state_for_new = store.heads.state_for_new

    def state_for_new(key):  # runs inside ingest's transaction
        seen["ingest"].append(setting())
        return original_state_for_new(key)

    monkeypatch.setattr(store.heads, "state_for_new", state_for_new)
    emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=DAY, now=NOW)
    assert seen["ingest"] and set(seen["ingest"]) == {"on"}
    original_count = portal.count_attempts

    def count_attempts(rows):  # runs inside the outcome batch's transaction
        seen["batch"].append(setting())
        original_count(rows)

    monkeypatch.setattr(portal, "count_attempts", count_attempts)
    original_live = claims.live_workers

    def live_workers(owner, now):  # runs inside the claim's transaction
        seen["claim"].append(setting())
        return original_live(owner, now)

    monkeypatch.setattr(claims, "live_workers", live_workers)
    claimed = {c.webhook_id: c for c in outbox.claim_due("w1", NOW, 30, 10, {}, 8)}
    assert set(claimed) == {healthy.id, failing.id}
    assert seen["claim"] == ["off"]
    ok = claimed[healthy.id]
    outbox.record_outcomes([outcomes.Outcome(ok.delivery_id, ok.token, healthy.id, 200,
                                             None, 1.0)], NOW + 1, (1.0,), lambda: 0.5)
    assert seen["batch"] == ["off"]
    gone = claimed[failing.id]
    at_deactivation: list[str] = []

    def on_deactivate(event):  # inside the transaction, after the deactivation
        at_deactivation.append(setting())
        return None

    deactivated = outbox.record_outcomes(
        [outcomes.Outcome(gone.delivery_id, gone.token, failing.id, 410, None, 1.0)],
        NOW + 2, (1.0,), lambda: 0.5, on_deactivate)
    assert [d.webhook_id for d in deactivated] == [failing.id]
    assert at_deactivation == ["on"]
    # what the relaxed batches wrote is there all the same
    assert Delivery.get_by_id(ok.delivery_id).state == DELIVERED
    assert Attempt.select().count() == 2
    assert sum(h.succeeded + h.failed for h in AttemptHour.select()) == 2
