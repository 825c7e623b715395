"""The delivery log's store rules (GetWebHookDeliveries) and the schema step that
added snippets and rotation: states, order, paging, the latest ten attempts, the 1 KiB
snippet, and a rotation's previous secret signing only within its grace period."""

from __future__ import annotations

import sqlite3

from soapservice import api, signing
from soapservice.ingest import emit
from soapservice.models import Attempt
from soapservice.store import SCHEMA_VERSION, deliveries, open_store, outbox, webhooks

DAY = 86400.0
NOW = 2_000_000_000.0


def test_log_newest_first_with_states_attempts_and_snippets(alice):
    hook = webhooks.create(alice.id, "crm", "optin_finalized", "http://r/", "whsec_" + "A" * 32, 9)
    for subscriber in (1, 1, 2):
        emit("alice", "optin_finalized", {"subscriber_id": subscriber}, window_sec=DAY, now=NOW)
    claims = outbox.claim_due("w", NOW, 30, 10, {}, 8)
    assert len(claims) == 2  # the second event of subscriber 1 waits for the first
    first = next(c for c in claims if c.event_id == min(c.event_id for c in claims))
    outbox.record_outcomes([outbox.Outcome(c.delivery_id, c.token, hook.id,
                                           500 if c is first else 200, None, 3.4,
                                           "x" * 2000 if c is first else "fine")
                            for c in claims], NOW, (60.0,), lambda: 0.5)
    rows = deliveries.for_webhook(hook.id, None, 50, None)
    assert [r.state for r in rows] == ["delivered", "held", "failed"]
    assert [r.event.subscriber for r in rows] == ["2", "1", "1"]
    shown = [api.delivery_dict(r) for r in rows]
    assert shown[2]["attempts"][0]["responseSnippet"] == "x" * 1024
    assert shown[2]["lastStatus"] == 500 and shown[2]["nextAttemptAt"] is not None
    assert shown[0]["attempts"][0] == {**shown[0]["attempts"][0], "status": 200,
                                       "responseSnippet": "fine", "durationMs": 3}
    assert shown[0]["nextAttemptAt"] is None and shown[1]["attempts"] == []
    assert shown[0]["messageId"] == signing.message_id(rows[0].delivery.id)
    assert [r.state for r in deliveries.for_webhook(hook.id, "failed", 50, None)] == ["failed"]
    assert [r.state for r in deliveries.for_webhook(hook.id, "held", 50, None)] == ["held"]
    page = deliveries.for_webhook(hook.id, None, 1, rows[0].delivery.id)
    assert [r.delivery.id for r in page] == [rows[1].delivery.id]
    # Only the latest ten attempts are shown.
    Attempt.insert_many([{"delivery_id": rows[2].delivery.id, "webhook_id": hook.id,
                          "at": NOW + i, "status": 500 + i, "duration_ms": 1.0}
                         for i in range(1, 13)]).execute()
    latest = deliveries.for_webhook(hook.id, "failed", 50, None)[0].attempts
    assert [a.status for a in latest] == list(range(512, 502, -1))


def test_previous_secret_signs_only_during_the_grace(alice):
    hook = webhooks.create(alice.id, "crm", "optin_finalized", "http://r/", "whsec_" + "A" * 32, 9)
    rotated = webhooks.rotate_secret(alice.id, hook.id, "whsec_" + "B" * 32, 60, now=NOW)
    assert rotated.secret == "whsec_" + "B" * 32
    emit("alice", "optin_finalized", {}, window_sec=DAY, now=NOW)
    [claim] = outbox.claim_due("w", NOW, 30, 10, {}, 8)
    assert claim.signing_secrets(NOW + 59) == (rotated.secret, hook.secret)
    assert claim.signing_secrets(NOW + 60) == (rotated.secret, None)
    assert webhooks.rotate_secret(alice.id + 1, hook.id, "whsec_x", 60) is None
    no_grace = webhooks.rotate_secret(alice.id, hook.id, "whsec_" + "C" * 32, 0, now=NOW)
    assert no_grace.previous_secret is None


def test_schema_step_4_adds_the_columns_to_an_older_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    open_store(url)
    with sqlite3.connect(tmp_path / "old.db") as db:
        for table, column in (("webhook", "previous_secret"),
                              ("webhook", "previous_secret_until"),
                              ("attempt", "response_snippet")):
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute("UPDATE setting SET value = '3' WHERE key = 'schema_version'")
    open_store(url)
    with sqlite3.connect(tmp_path / "old.db") as db:
        assert {r[1] for r in db.execute("PRAGMA table_info(attempt)")} >= {"response_snippet"}
        assert {r[1] for r in db.execute("PRAGMA table_info(webhook)")} >= {
            "previous_secret", "previous_secret_until"}
        assert db.execute("SELECT value FROM setting WHERE key = 'schema_version'"
                          ).fetchone() == (str(SCHEMA_VERSION),)


def test_test_webhook_throttle_is_ten_per_minute_per_webhook():
    from soapservice.config import Settings
    sent = api.WebhookAPI(Settings())
    now = [1000.0]
    sent.clock = lambda: now[0]
    assert [sent._test_allowed(1) for _ in range(11)] == [True] * 10 + [False]
    assert sent._test_allowed(2)  # another webhook has its own ten
    now[0] += 59.9
    assert not sent._test_allowed(1)
    now[0] += 0.2  # the ten are a minute old
    assert [sent._test_allowed(1) for _ in range(11)] == [True] * 10 + [False]
