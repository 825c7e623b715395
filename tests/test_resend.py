"""ResendWebHookEvents at the store (SPEC §7): which deliveries go again, where they
queue, the webhook-id they repeat, the limits. SQLite and the PostgreSQL of
SOAPSERVICE_TEST_DATABASE_URL."""

from __future__ import annotations

import pytest

from soapservice import signing
from soapservice.models import WAITING, Delivery
from soapservice.store import resend, webhooks
from tests.test_heads import NOW, answer, claim, deactivate, hook, send


def test_resent_deliveries_queue_behind_the_undelivered_with_the_first_webhook_id(alice):
    h = hook(alice)
    first = send("optin_finalized", 1)
    answer(claim(), 200)  # delivered
    second = send("optin_finalized", 1, now=NOW + 1)
    [pending] = claim(NOW + 1)
    answer([pending], 500, now=NOW + 1)  # failed, retried at +11
    third = send("optin_finalized", 1, now=NOW + 2)  # never attempted: not resent
    assert resend.resend(alice.id, h.id, None, NOW - 10, NOW + 10, NOW + 3) == 2
    copies = list(Delivery.select().where(Delivery.message_of.is_null(False))
                  .order_by(Delivery.seq))
    originals = {d.event_id: d.id for d in Delivery.select().where(
        Delivery.message_of.is_null())}
    assert [c.message_of for c in copies] == [originals[first], originals[second]]
    assert all(c.blocked == WAITING and c.seq > third for c in copies)
    # In order: the retry of second, then third, then the resent first and second.
    sent = []
    for now in (NOW + 11, NOW + 12, NOW + 13, NOW + 14):
        claims = claim(now)
        sent += [signing.message_id(c.message_delivery_id) for c in claims]
        answer(claims, 200, now=now)
    assert sent == [signing.message_id(originals[e]) for e in (second, third, first, second)]
    # A resend of a resend repeats the first webhook-id, once per event.
    assert resend.resend(alice.id, h.id, first, NOW - 10, NOW + 10, NOW + 20) == 1
    [again] = Delivery.select().where(Delivery.state == 0)
    assert again.message_of == originals[first]


def test_limits_and_refusals(alice, monkeypatch):
    h = hook(alice)
    for sub in range(3):
        send("optin_finalized", sub)
    answer(claim(), 200)
    monkeypatch.setattr(resend, "MAX_EVENTS", 2)
    with pytest.raises(resend.TooMany):
        resend.resend(alice.id, h.id, None, NOW - 10, NOW + 10, NOW + 1)
    assert Delivery.select().where(Delivery.message_of.is_null(False)).count() == 0
    assert resend.resend(alice.id + 1, h.id, None, NOW - 10, NOW + 10, NOW + 1) is None
    assert resend.resend(alice.id, h.id, None, NOW + 5, NOW + 10, NOW + 1) == 0
    send("optin_finalized", 9, now=NOW + 1)
    deactivate(h, (NOW + 1, NOW + 11, NOW + 71))
    assert not webhooks.get(alice.id, h.id).active
    with pytest.raises(ValueError):
        resend.resend(alice.id, h.id, None, NOW - 10, NOW + 10, NOW + 100)
