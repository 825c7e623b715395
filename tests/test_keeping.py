"""Keeping: buffered events at most SOAPSERVICE_BUFFER_KEEP_DAYS after deactivation
(then dropped and counted), notifications with spent links purged with the retention."""

from __future__ import annotations

from twisted.internet import defer, task

from soapservice import notify, purging
from soapservice.api import WebhookAPI
from soapservice.config import Settings
from soapservice.delivery import DeliveryService
from soapservice.ingest import emit
from soapservice.models import (
    BUFFERED,
    Delivery,
    Event,
    IdempotencyKey,
    Notification,
    Webhook,
)
from soapservice.store import keeping, outbox, webhooks

DAY = 86400.0
NOW = 2_000_000_000.0


def deactivated_hook(account, events=3, at=NOW, url="http://r.example/",
                     event="optin_finalized"):
    """A webhook deactivated at ``at`` with ``events`` buffered and its notification."""
    hook = webhooks.create(account.id, "crm", event, url, "whsec_" + "A" * 32, 100)
    for n in range(events):
        emit(account.username, event, {"subscriber_id": n}, window_sec=5 * DAY, now=at - 10)
    claims = [c for c in outbox.claim_due("t", at, 30, 100, {}, 100) if c.webhook_id == hook.id]
    outbox.record_outcomes(
        [outbox.Outcome(c.delivery_id, c.token, hook.id, 500, None, 1.0) for c in claims],
        at, (), lambda: 0.5,
        on_deactivate=lambda e: notify.store_notification(e, base_url="http://x",
                                                          ttl_sec=30 * DAY))
    assert Webhook.get_by_id(hook.id).deactivated_at == at
    return hook


def buffered(hook):
    return Delivery.select().where((Delivery.webhook == hook.id)
                                   & (Delivery.state == BUFFERED)).count()


def test_buffered_events_past_the_keep_window_are_dropped_and_counted(alice):
    old = deactivated_hook(alice, events=5, at=NOW)
    young = deactivated_hook(alice, events=2, at=NOW + 20 * DAY, url="http://y.example/",
                             event="optout_finalized")
    assert keeping.drop_expired_buffers(NOW + 29.9 * DAY, 30 * DAY) == 0
    assert buffered(old) == 5
    # In chunks of 2: every one goes, each counted once.
    assert keeping.drop_expired_buffers(NOW + 30.1 * DAY, 30 * DAY, chunk=2) == 5
    assert buffered(old) == 0 and buffered(young) == 2
    assert Webhook.get_by_id(old.id).dropped_events == 5
    assert Webhook.get_by_id(young.id).dropped_events == 0
    assert keeping.drop_expired_buffers(NOW + 31 * DAY, 30 * DAY) == 0  # nothing twice
    # What a customer sees: GetWebHooks counts them as dropped, none buffered.
    api = WebhookAPI(Settings())
    row = next(r for r in api._list(alice, None, None).result if r["id"] == old.id)
    assert (row["bufferedEvents"], row["droppedEvents"]) == (0, 5)
    # Their events go with the retention purge (no delivery refers to them).
    outbox.purge(NOW + 31 * DAY, 7 * DAY)
    assert Event.select().count() == 2  # only the young webhook's two


def test_a_reactivated_webhook_keeps_its_replayed_events(alice):
    hook = deactivated_hook(alice, events=2, at=NOW)
    webhooks.activate(alice.id, hook.id, replay=True, now=NOW + 40 * DAY)
    assert keeping.drop_expired_buffers(NOW + 41 * DAY, 30 * DAY) == 0
    assert Delivery.select().where(Delivery.webhook == hook.id).count() == 2


def test_notifications_with_spent_links_go_with_the_retention(alice):
    spent = deactivated_hook(alice, events=1, at=NOW)
    waiting = deactivated_hook(alice, events=1, at=NOW, url="http://w.example/",
                               event="optout_finalized")
    webhooks.activate(alice.id, spent.id, replay=False, now=NOW + DAY)
    assert Notification.select().count() == 2
    assert keeping.purge_notifications(NOW + 6 * DAY, 7 * DAY, 30 * DAY) == 0  # too young
    assert keeping.purge_notifications(NOW + 8 * DAY, 7 * DAY, 30 * DAY) == 1
    [left] = Notification.select()
    assert left.webhook_id == waiting.id  # its link still works: kept
    assert keeping.purge_notifications(NOW + 31 * DAY, 7 * DAY, 30 * DAY) == 1  # expired
    assert Notification.select().count() == 0


def test_a_deleted_webhooks_notification_goes_with_the_retention(alice):
    hook = deactivated_hook(alice, events=1, at=NOW)
    webhooks.delete(alice.id, hook.id)
    assert keeping.purge_notifications(NOW + 8 * DAY, 7 * DAY, 30 * DAY) == 1


def test_the_delivery_loops_hourly_purge_runs_the_keeping(alice):
    hook = deactivated_hook(alice, events=3, at=NOW)
    clock = task.Clock()
    clock.advance(NOW + 31 * DAY)
    service = DeliveryService(Settings(buffer_keep_days=30), sender=None,
                              run_in_store=lambda fn, *a, **kw: defer.maybeDeferred(
                                  fn, *a, **kw), reactor=clock)
    done = service.purge()
    steps = 0
    while not done.called:  # short store calls with a pause between them
        clock.advance(purging.PAUSE_SEC)
        steps += 1
    assert steps >= 3  # buffer, notifications, keys: each a step of its own, then 0
    assert buffered(hook) == 0
    assert Webhook.get_by_id(hook.id).dropped_events == 3
    assert Notification.select().count() == 0  # older than 7 days, link expired at 30


def test_idempotency_keys_go_after_their_day(alice):
    emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=DAY, now=NOW,
         idempotency_key="old")
    emit("alice", "optin_finalized", {"subscriber_id": 2}, window_sec=DAY, now=NOW + DAY,
         idempotency_key="new")
    assert keeping.purge_idempotency_keys(NOW + DAY + 1, chunk=1) == 1
    assert [k.key for k in IdempotencyKey.select()] == ["new"]


def _deactivate_with_a_long_queue(account, monkeypatch):
    """Webhook A (opt-in) with 3 events of subscriber 1 and then 2 of subscriber 2, B
    (opt-out, same URL) with a later event of subscriber 2; A deactivated while a
    deactivation moves only its 2 oldest rows itself (subscriber 1's)."""
    monkeypatch.setattr(keeping, "BUFFER_CHUNK", 2)
    a = webhooks.create(account.id, "crm", "optin_finalized", "http://same/", "whsec_" + "A" * 32,
                        100)
    b = webhooks.create(account.id, "crm", "optout_finalized", "http://same/",
                        "whsec_" + "B" * 32, 100)
    for n in range(5):
        emit(account.username, "optin_finalized", {"subscriber_id": 1 if n < 3 else 2, "n": n},
             window_sec=5 * DAY, now=NOW - 10)
    emit(account.username, "optout_finalized", {"subscriber_id": 2}, window_sec=5 * DAY,
         now=NOW - 5)
    claims = outbox.claim_due("t", NOW, 30, 100, {}, 100)
    assert {c.webhook_id for c in claims} == {a.id}  # the two subscribers' heads
    [event] = outbox.record_outcomes(
        [outbox.Outcome(c.delivery_id, c.token, a.id, 500, None, 1.0) for c in claims], NOW,
        (), lambda: 0.5)
    return a, b, event


def states(hook):
    return sorted((d.state, d.blocked) for d in Delivery.select().where(
        Delivery.webhook == hook.id))


def test_a_long_queue_goes_to_the_buffer_in_steps_and_holds_the_order(alice, monkeypatch):
    from soapservice.models import HELD, PENDING, WAITING
    a, b, event = _deactivate_with_a_long_queue(alice, monkeypatch)
    assert event.buffered == 5  # the whole queue is the buffer, moved or not
    assert buffered(a) == 2
    assert webhooks.buffered_by_id([a.id, b.id]) == {a.id: 5}
    # The rest is not claimed (inactive webhook) and B's later event still waits.
    assert outbox.claim_due("t", NOW + 1, 30, 100, {}, 100) == []
    assert states(b) == [(PENDING, WAITING)]
    assert [keeping.buffer_step(chunk=2), keeping.buffer_step(chunk=2),
            keeping.buffer_step(chunk=2)] == [2, 1, 0]
    assert buffered(a) == 5
    assert states(b) == [(PENDING, HELD)]  # held behind the buffer (SPEC §7)
    assert outbox.claim_due("t", NOW + 2, 30, 100, {}, 100) == []


def test_activation_takes_the_unmoved_rest_with_the_buffer(alice, monkeypatch):
    from soapservice.models import READY
    a, b, _event = _deactivate_with_a_long_queue(alice, monkeypatch)
    # Discarded before the steps ran: the rest goes with the buffer; B's event may go.
    webhooks.activate(alice.id, a.id, replay=False, now=NOW + 1)
    assert Delivery.select().where(Delivery.webhook == a.id).count() == 0
    assert states(b) == [(0, READY)]
    [claim] = outbox.claim_due("t", NOW + 2, 30, 100, {}, 100)
    assert claim.webhook_id == b.id


def test_a_replay_before_the_steps_ran_sends_the_whole_queue_in_order(alice, monkeypatch):
    a, b, _event = _deactivate_with_a_long_queue(alice, monkeypatch)
    _hook, replayed = webhooks.activate(alice.id, a.id, replay=True, now=NOW + 1)
    assert replayed == 5
    sent = []
    for step in range(8):
        claims = outbox.claim_due("t", NOW + 2 + step, 30, 100, {}, 100)
        outbox.record_outcomes([outbox.Outcome(c.delivery_id, c.token, c.webhook_id, 200,
                                               None, 1.0) for c in claims],
                               NOW + 2 + step, (1.0,), lambda: 0.5)
        sent += [(Delivery.get_by_id(c.delivery_id).order_key,
                  Delivery.get_by_id(c.delivery_id).seq, c.webhook_id) for c in claims]
    assert len(sent) == 6
    for key in {k for k, _s, _w in sent}:  # each subscriber's events in their order
        assert [s for k, s, _w in sent if k == key] == sorted(
            s for k, s, _w in sent if k == key)
    # Subscriber 2's opt-out (B) after both of A's events of subscriber 2.
    [(key, _s, _w)] = [row for row in sent if row[2] == b.id]
    assert [w for k, _s, w in sent if k == key] == [a.id, a.id, b.id]


def _loop(clock):
    return DeliveryService(Settings(), sender=None,
                           run_in_store=lambda fn, *a, **kw: defer.maybeDeferred(fn, *a, **kw),
                           reactor=clock)


def test_the_loop_moves_the_rest_after_a_deactivation(alice, monkeypatch):
    a, _b, _event = _deactivate_with_a_long_queue(alice, monkeypatch)
    clock = task.Clock()
    clock.advance(NOW + 1)
    service = _loop(clock)
    service._buffer_rest()  # what _write_outcomes does after a deactivation
    assert buffered(a) == 5  # one step moved the 3 left; it pauses before looking again
    assert service._buffering is not None
    service._buffer_rest()  # a second deactivation meanwhile: one run at a time
    steps = 0
    while service._buffering is not None:
        clock.advance(purging.PAUSE_SEC)
        steps += 1
    assert steps == 1 and not service._buffer_again


def test_the_purge_finishes_a_deactivation_cut_short(alice, monkeypatch):
    a, _b, _event = _deactivate_with_a_long_queue(alice, monkeypatch)
    clock = task.Clock()
    clock.advance(NOW + 1)
    done = _loop(clock).purge()
    while not done.called:
        clock.advance(purging.PAUSE_SEC)
    assert buffered(a) == 5
