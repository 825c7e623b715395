"""Store-level rules of the outbox: one transaction per event, leases, retention."""

from __future__ import annotations

import pytest

from soapservice.ingest import IngestError, emit
from soapservice.models import BUFFERED, DELIVERED, Attempt, Delivery, Event, Webhook
from soapservice.store import outbox, webhooks

DAY = 86400.0
NOW = 2_000_000_000.0


def hook(account, event="optin_finalized", url="http://r/"):
    return webhooks.create(account.id, "crm", event, url, "whsec_" + "A" * 32, 100)


def test_one_event_one_delivery_per_matching_webhook(alice):
    a, b = hook(alice), hook(alice, url="http://other/")
    hook(alice, event="optout_finalized")
    event_id, queued = emit("alice", "optin_finalized", {"subscriber_id": 1},
                            window_sec=5 * DAY, now=NOW)
    assert queued == 2
    rows = Delivery.select().where(Delivery.event == event_id)
    assert sorted(d.webhook_id for d in rows) == [a.id, b.id]
    assert Event.get_by_id(event_id).body == '{"subscriber_id":1}'


@pytest.mark.parametrize("data, message", [
    ([1], "JSON object"), ({"x": "a" * 300_000}, "larger than"),
    ({"x": float("nan")}, "not valid JSON")])
def test_refused_events_store_nothing(alice, data, message):
    hook(alice)
    with pytest.raises(IngestError, match=message):
        emit("alice", "optin_finalized", data, window_sec=DAY, now=NOW)
    with pytest.raises(IngestError, match="unknown account"):
        emit("bob", "optin_finalized", {}, window_sec=DAY, now=NOW)
    assert Event.select().count() == 0 and Delivery.select().count() == 0


def test_a_lease_is_exclusive_and_fences_outcomes(alice):
    h = hook(alice)
    emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=DAY, now=NOW)
    [claim] = outbox.claim_due("w1", NOW, 30, 10, {}, 8)
    assert outbox.claim_due("w2", NOW + 1, 30, 10, {}, 8) == []  # leased: not due
    takeovers: list[int] = []
    [taken] = outbox.claim_due("w2", NOW + 31, 30, 10, {}, 8,  # lease expired: taken over
                               takeovers.append)
    assert takeovers == [1]  # (the takeover metric)
    assert taken.token != claim.token
    stale = outbox.Outcome(claim.delivery_id, claim.token, h.id, 200, None, 1.0)
    outbox.record_outcomes([stale], NOW + 32, (1.0,), lambda: 0.5)
    assert Delivery.get_by_id(claim.delivery_id).state != DELIVERED  # fenced out
    fresh = outbox.Outcome(taken.delivery_id, taken.token, h.id, 200, None, 1.0)
    outbox.record_outcomes([fresh], NOW + 33, (1.0,), lambda: 0.5)
    assert Delivery.get_by_id(claim.delivery_id).state == DELIVERED
    assert Attempt.select().count() == 2  # both attempts are in the log


def test_release_makes_leased_deliveries_due_at_once(alice):
    hook(alice)
    emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=DAY, now=NOW)
    outbox.claim_due("w1", NOW, 300, 10, {}, 8)
    assert outbox.release("w1", NOW + 1) == 1
    assert len(outbox.claim_due("w2", NOW + 1, 300, 10, {}, 8)) == 1


def test_retention_purges_delivered_and_keeps_the_buffer(alice):
    h = hook(alice)
    for n in range(3):
        emit("alice", "optin_finalized", {"n": n}, window_sec=DAY, now=NOW)
    claims = outbox.claim_due("w", NOW, 30, 10, {}, 8)
    outbox.record_outcomes([outbox.Outcome(c.delivery_id, c.token, h.id, 200, None, 1.0)
                            for c in claims[:2]], NOW, (1.0,), lambda: 0.5)
    # The third goes to the buffer of the now inactive webhook.
    Webhook.update(active=False, deactivated_at=NOW).where(Webhook.id == h.id).execute()
    Delivery.update(state=BUFFERED, lease_token=None).where(
        Delivery.id == claims[2].delivery_id).execute()
    assert outbox.purge(NOW + 6 * DAY, 7 * DAY) == 0  # not old enough
    assert outbox.purge(NOW + 8 * DAY, 7 * DAY) == 2
    assert [d.state for d in Delivery.select()] == [BUFFERED]
    assert Event.select().count() == 1  # the buffered one's event stays
    assert Attempt.select().count() == 0
