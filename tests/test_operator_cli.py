"""The operator commands as an operator runs them: across accounts, no customer
password; erase and export of a subscriber's data (GDPR Art. 15/17)."""

from __future__ import annotations

import json
import time

import pytest

from soapservice import auth, cli
from soapservice.ingest import emit
from soapservice.models import PENDING, Attempt, Delivery, Event, IdempotencyKey, Webhook
from soapservice.store import accounts, outbox, webhooks

DAY = 86400.0


@pytest.fixture
def run(store_url, monkeypatch, capsys):
    """``soapservice ARGS...`` in this process on the test store: (exit code, out, err)."""
    monkeypatch.setenv("SOAPSERVICE_DATABASE_URL", store_url)
    monkeypatch.delenv("SOAPSERVICE_CONFIG", raising=False)

    def run(*argv):
        capsys.readouterr()
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
            if not isinstance(exc.code, int) and exc.code:
                print(exc.code, file=__import__("sys").stderr)
        out, err = capsys.readouterr()
        return code, out, err
    return run


def hook(account, event="optin_finalized", url="http://r.example/"):
    return webhooks.create(account.id, "crm", event, url, "whsec_" + "A" * 32, 100)


def fail_until_deactivated(hook_id):
    """Fail every due delivery of ``hook_id`` with an empty retry schedule: deactivated,
    its undelivered deliveries buffered."""
    now = time.time()
    claims = [c for c in outbox.claim_due("op", now, 30, 100, {}, 100)
              if c.webhook_id == hook_id]
    assert claims
    outbox.record_outcomes([outbox.Outcome(c.delivery_id, c.token, hook_id, 500, None, 1.0)
                            for c in claims], now, (), lambda: 0.5)
    assert not Webhook.get_by_id(hook_id).active


def test_webhooks_lists_every_account_and_finds_the_failing_ones(alice, run):
    bob = accounts.add("bob", auth.hash_password("pw", n=2**4))
    healthy, broken = hook(alice), hook(alice, "optout_finalized", "http://down.example/")
    bobs = hook(bob, url="http://bob.example/")
    emit("alice", "optout_finalized", {"subscriber_id": 1}, window_sec=5 * DAY)
    fail_until_deactivated(broken.id)
    Webhook.update(failure_count=3).where(Webhook.id == bobs.id).execute()

    code, out, _ = run("webhooks", "--json")
    assert code == 0
    listed = {row["id"]: row for row in json.loads(out)}
    assert set(listed) == {healthy.id, broken.id, bobs.id}
    assert listed[broken.id]["state"] == "inactive"
    assert listed[broken.id]["bufferedEvents"] == 1
    assert listed[bobs.id]["state"] == "failing" and listed[bobs.id]["account"] == "bob"
    assert listed[healthy.id]["state"] == "active"
    assert "secret" not in listed[healthy.id]

    code, out, _ = run("webhooks", "--failing", "--json")
    assert {row["id"] for row in json.loads(out)} == {broken.id, bobs.id}
    code, out, _ = run("webhooks", "--inactive")
    assert code == 0 and "down.example" in out and "bob.example" not in out
    code, out, _ = run("webhooks", "--account", "bob")
    assert "bob.example" in out and "r.example" not in out
    code, _, err = run("webhooks", "--account", "nobody")
    assert code == 1 and "no account 'nobody'" in err


def test_activate_without_a_password_replays_or_discards(alice, run):
    h = hook(alice)
    for subscriber in (1, 2):
        emit("alice", "optin_finalized", {"subscriber_id": subscriber}, window_sec=5 * DAY)
    fail_until_deactivated(h.id)

    code, _, err = run("activate", str(h.id))
    assert code == 1 and "2 buffered events" in err and "--replay" in err
    assert not Webhook.get_by_id(h.id).active  # nothing changed

    code, out, err = run("activate", str(h.id), "--replay")
    assert code == 0 and "2 buffered events queued for replay" in out, err
    assert Webhook.get_by_id(h.id).active
    assert Delivery.select().where((Delivery.webhook == h.id)
                                   & (Delivery.state == PENDING)).count() == 2
    code, out, _ = run("activate", str(h.id))
    assert code == 0 and "already active" in out

    code, _, err = run("activate", "999999")
    assert code == 1 and "no webhook 999999" in err
    code, _, err = run("activate", "0")
    assert code == 2 and "positive" in err
    code, _, err = run("activate", str(h.id), "--replay", "--discard")
    assert code == 2 and "not allowed with" in err


def test_activate_discard_drops_the_buffer(alice, run):
    h = hook(alice)
    emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=5 * DAY)
    fail_until_deactivated(h.id)
    code, out, _ = run("activate", str(h.id), "--discard")
    assert code == 0 and "1 buffered events discarded" in out
    assert Delivery.select().where(Delivery.webhook == h.id).count() == 0


def test_queue_counts_per_account(alice, run):
    bob = accounts.add("bob", auth.hash_password("pw", n=2**4))
    a, b = hook(alice), hook(alice, "optout_finalized")
    hook(bob)
    emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=5 * DAY)
    emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=5 * DAY)  # held
    emit("alice", "optin_finalized", {"subscriber_id": 2}, window_sec=5 * DAY)
    emit("bob", "optin_finalized", {"subscriber_id": 7}, window_sec=5 * DAY)
    # b (same URL) deactivates with subscriber 3's opt-out buffered: 3's next opt-in
    # on a waits behind it (held).
    emit("alice", "optout_finalized", {"subscriber_id": 3}, window_sec=5 * DAY)
    fail_until_deactivated(b.id)
    emit("alice", "optin_finalized", {"subscriber_id": 3}, window_sec=5 * DAY)
    del a

    code, out, _ = run("queue", "--json")
    assert code == 0
    rows = {row["account"]: row for row in json.loads(out)}
    # fail_until_deactivated claimed every due delivery; a's were given back due.
    assert rows["alice"]["buffered"] == 1
    assert rows["alice"]["held"] == 2  # subscriber 1's second event, subscriber 3's opt-in
    assert rows["alice"]["due"] + rows["alice"]["in_flight"] == 2
    assert rows["bob"]["held"] == 0 and rows["bob"]["buffered"] == 0
    code, out, _ = run("queue")
    assert code == 0 and "OLDEST DUE" in out and "bob" in out


def test_queue_in_flight_and_oldest_due_age(alice, run):
    hook(alice)
    emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=5 * DAY,
         now=time.time() - 120)
    emit("alice", "optin_finalized", {"subscriber_id": 2}, window_sec=5 * DAY)
    code, out, _ = run("queue", "--json")
    [row] = json.loads(out)
    assert row["due"] == 2 and row["in_flight"] == 0
    assert 119 <= row["oldest_due_age_sec"] < 200
    outbox.claim_due("op", time.time(), 60, 1, {}, 8)
    [row] = json.loads(run("queue", "--json")[1])
    assert row["due"] == 1 and row["in_flight"] == 1


def _subscriber_events(account="alice", subscriber="42"):
    return Event.select().where(Event.subscriber == subscriber).count()


def test_erase_removes_a_subscribers_data_and_nothing_else(alice, run):
    h, other = hook(alice), hook(alice, "optout_finalized", "http://o.example/")
    e1, _ = emit("alice", "optin_finalized", {"subscriber_id": 42, "fields": [
        {"id": 1, "value": "max.muster@example.com"}]}, window_sec=5 * DAY)
    emit("alice", "optout_finalized", {"subscriber_id": 42}, window_sec=5 * DAY,
         idempotency_key="k-42")
    emit("alice", "optin_finalized", {"subscriber_id": 43}, window_sec=5 * DAY,
         idempotency_key="k-43")
    # subscriber 42's opt-in is delivered (with an attempt), the opt-out buffered.
    now = time.time()
    claims = outbox.claim_due("op", now, 30, 100, {}, 100)
    outbox.record_outcomes(
        [outbox.Outcome(c.delivery_id, c.token, c.webhook_id,
                        200 if c.webhook_id == h.id else 500, None, 1.0) for c in claims],
        now, (), lambda: 0.5)
    assert not Webhook.get_by_id(other.id).active
    attempts_before = Attempt.select().count()

    code, _, err = run("erase", "--account", "alice", "--subscriber", "42")
    assert code == 1 and "--yes" in err and _subscriber_events() == 2  # stdin no tty

    code, out, _ = run("erase", "--account", "alice", "--subscriber", "42", "--yes", "--json")
    assert code == 0
    assert json.loads(out) == {"events": 2, "deliveries": 2, "buffered": 1, "attempts": 2}
    assert _subscriber_events() == 0
    assert Attempt.select().count() == attempts_before - 2
    assert Event.select().where(Event.subscriber == "43").count() == 1  # untouched
    assert Delivery.get_or_none(Delivery.event == e1) is None
    # The Idempotency-Key of an erased event (it holds a hash of the data) is gone: the
    # same key stores the event anew; another subscriber's key still answers duplicate.
    assert [k.key for k in IdempotencyKey.select()] == ["k-43"]
    again = emit("alice", "optout_finalized", {"subscriber_id": 42}, window_sec=5 * DAY,
                 idempotency_key="k-42")
    assert not again.duplicate
    Event.delete().where(Event.id == again[0]).execute()
    Delivery.delete().where(Delivery.event == again[0]).execute()

    # No replay brings it back, and no export contains it.
    code, out, _ = run("activate", str(other.id), "--replay")
    assert "0 buffered events queued" in out
    code, out, _ = run("export", "--account", "alice")
    assert "max.muster" not in out and '"subscriberId":"42"' not in out
    assert '"subscriberId":"43"' in out

    # Later events of the subscriber are stored and delivered as usual.
    emit("alice", "optin_finalized", {"subscriber_id": 42}, window_sec=5 * DAY)
    assert _subscriber_events() == 1

    code, out, _ = run("erase", "--account", "alice", "--subscriber", "9", "--yes")
    assert code == 0 and "0 events, 0 deliveries (0 buffered), 0 attempts" in out
    code, _, err = run("erase", "--account", "nobody", "--subscriber", "9", "--yes")
    assert code == 1 and "no account" in err
    code, _, err = run("erase", "--account", "alice", "--yes")
    assert code == 2 and "--subscriber" in err


def test_erase_also_removes_resent_copies_and_no_resend_brings_the_data_back(alice, run):
    from soapservice.store import resend
    h = hook(alice)
    for subscriber in (42, 43):
        emit("alice", "optin_finalized", {"subscriber_id": subscriber, "fields": [
            {"id": 1, "value": f"s{subscriber}@example.com"}]}, window_sec=5 * DAY)

    def deliver_all():
        now = time.time()
        claims = outbox.claim_due("op", now, 30, 100, {}, 100)
        outbox.record_outcomes([outbox.Outcome(c.delivery_id, c.token, c.webhook_id, 200,
                                               None, 1.0) for c in claims],
                               now, (), lambda: 0.5)
        return claims

    assert len(deliver_all()) == 2
    # A resend (ResendWebHookEvents) stores a copy of each event it queues.
    assert resend.resend(alice.id, h.id, None, 0, time.time() + 1, time.time()) == 2
    assert len(deliver_all()) == 2
    assert _subscriber_events() == 2  # the original and its resent copy

    code, out, _ = run("erase", "--account", "alice", "--subscriber", "42", "--yes", "--json")
    assert code == 0 and json.loads(out)["events"] == 2
    assert _subscriber_events() == 0
    # A later resend of everything queues subscriber 43's events only.
    assert resend.resend(alice.id, h.id, None, 0, time.time() + 1, time.time()) == 1
    claims = deliver_all()
    assert [json.loads(c.body)["subscriber_id"] for c in claims] == [43]
    code, out, _ = run("export", "--account", "alice")
    assert "s42@example.com" not in out and "s43@example.com" in out


def test_export_writes_json_lines_of_everything_stored(alice, run):
    h = hook(alice)
    accounts.add("bob", auth.hash_password("pw", n=2**4))
    event_id, _ = emit("alice", "optin_finalized", {"subscriber_id": 5, "lists": [1]},
                       window_sec=5 * DAY)
    emit("bob", "optin_finalized", {"subscriber_id": 6}, window_sec=5 * DAY)
    code, out, _ = run("export", "--account", "alice")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    kinds = [r["type"] for r in records]
    assert kinds == ["account", "webhook", "event", "delivery", "audit"]
    assert records[4]["kind"] == "webhook.created"
    assert records[4]["event"]["data"]["webhookId"] == h.id
    assert records[0]["username"] == "alice"
    assert records[1]["id"] == h.id and "secret" not in records[1]
    assert records[2] == {"type": "event", "id": event_id, "event": "optin_finalized",
                          "subscriberId": "5", "created": records[2]["created"],
                          "data": {"subscriber_id": 5, "lists": [1]}}
    assert records[3]["eventId"] == event_id and records[3]["state"] == "pending"
    code, out, _ = run("export", "--account", "alice", "--subscriber", "6")
    assert code == 0 and out == ""  # bob's subscriber is not alice's
    code, _, err = run("export", "--account", "carol")
    assert code == 1 and "no account 'carol'" in err


def test_deliveries_show_event_ids_across_accounts(alice, run):
    h = hook(alice)
    event_id, _ = emit("alice", "optin_finalized", {"subscriber_id": 5}, window_sec=DAY)
    [c] = outbox.claim_due("op", time.time(), 30, 10, {}, 8)
    outbox.record_outcomes([outbox.Outcome(c.delivery_id, c.token, h.id, 503, None, 12.0,
                                           snippet="busy,\n try later")],
                           time.time(), (60.0,), lambda: 0.5)
    code, out, _ = run("deliveries", "--json")
    [row] = json.loads(out)
    assert row["eventId"] == event_id and row["status"] == 503
    assert row["responseSnippet"] == "busy,\n try later"
    assert row["account"] == "alice" and row["webhookId"] == h.id
    code, out, _ = run("deliveries")
    assert f"event {event_id}" in out and " 503 " in out
    assert "\n    busy, try later\n" in out
    code, _, err = run("deliveries", "--limit", "0")
    assert code == 1 and "--limit" in err


@pytest.mark.parametrize("command", ["webhooks", "activate", "queue", "deliveries", "erase",
                                     "export"])
def test_every_operator_command_has_help(run, command):
    code, out, _ = run(command, "--help")
    assert code == 0 and "--config" in out and len(out.splitlines()) > 4

