"""Only heads are candidates: per ordering key (account, URL, subscriber) only the first
undelivered delivery may be claimed, across the account's webhooks at that URL, and a
buffered earlier one holds the later ones (SPEC §3, §7). Store-level, on SQLite and on
the PostgreSQL of SOAPSERVICE_TEST_DATABASE_URL."""

from __future__ import annotations

import sqlite3

from soapservice import policy, store
from soapservice.ingest import emit
from soapservice.models import HELD, PENDING, READY, WAITING, Delivery, Notification, Webhook
from soapservice.notify import store_notification
from soapservice.store import outbox, webhooks

DAY = 86400.0
NOW = 2_000_000_000.0
URL = "http://r/"


def hook(account, event="optin_finalized", url=URL):
    return webhooks.create(account.id, "crm", event, url, "whsec_" + "A" * 32, 100)


def send(event, sub, now=NOW, **data):
    return emit("alice", event, {"subscriber_id": sub, **data}, window_sec=5 * DAY,
                now=now)[0]


def claim(now=NOW, capacity=50, per_webhook=8, owner="w"):
    return outbox.claim_due(owner, now, 60, capacity, {}, per_webhook)


def answer(claims, status, now=NOW, schedule=(10.0, 60.0), notes=False):
    return outbox.record_outcomes(
        [outbox.Outcome(c.delivery_id, c.token, c.webhook_id, status, None, 1.0)
         for c in claims], now, schedule, lambda: 0.5,
        (lambda e: store_notification(e, base_url="http://x", ttl_sec=DAY)) if notes
        else None)


def blocked_of(event_id):
    return {d.webhook_id: d.blocked for d in Delivery.select().where(
        Delivery.event == event_id)}


def test_only_the_first_of_a_subscriber_is_a_head_across_webhooks_at_one_url(alice):
    optin, optout = hook(alice), hook(alice, "optout_finalized")
    first = send("optin_finalized", 1)
    second = send("optout_finalized", 1)
    other = send("optout_finalized", 2)
    assert blocked_of(first) == {optin.id: READY}
    assert blocked_of(second) == {optout.id: WAITING}
    assert blocked_of(other) == {optout.id: READY}
    assert sorted(c.event_id for c in claim()) == [first, other]
    assert claim(NOW + 1) == []  # the opt-out waits for its opt-in, in flight
    [in_flight] = [c for c in Delivery.select() if c.event_id == first]
    del in_flight


def test_a_delivered_head_promotes_the_next_of_its_key(alice):
    hook(alice), hook(alice, "optout_finalized")
    first = send("optin_finalized", 1)
    second = send("optout_finalized", 1)
    third = send("optin_finalized", 1)
    claims = claim()
    assert [c.event_id for c in claims] == [first]
    answer(claims, 200)
    assert [c.event_id for c in claim()] == [second]  # third still waits
    assert list(blocked_of(third).values()) == [WAITING]


def test_a_failed_head_keeps_its_place_and_the_rest_waits(alice):
    hook(alice)
    first = send("optin_finalized", 1)
    second = send("optin_finalized", 1)
    answer(claim(), 500)
    # an isolated failure: its retry is due after policy.QUICK_RETRY_SEC[0] (1 s); the
    # second may not overtake it meanwhile
    assert claim(NOW + 0.9) == []
    assert [c.event_id for c in claim(NOW + 1)] == [first]
    assert list(blocked_of(second).values()) == [WAITING]


def test_the_same_event_to_two_webhooks_at_one_url_goes_to_both(alice):
    a = hook(alice)
    b = webhooks.create(alice.id, "shop", "optin_finalized", URL, "whsec_" + "B" * 32, 100)
    event_id = send("optin_finalized", 1)
    assert blocked_of(event_id) == {a.id: READY, b.id: READY}
    assert len(claim()) == 2


def deactivate(hook_row, times=(NOW, NOW + 10, NOW + 70)):
    """Run the webhook's head through the whole schedule: it deactivates."""
    for now in times:
        claims = [c for c in claim(now) if c.webhook_id == hook_row.id]
        events = answer(claims, 500, now, notes=True)
    return events


def test_a_buffered_opt_in_holds_the_opt_out_on_another_webhook(alice):
    """Issue 20 item 1: the opt-in webhook is deactivated with the opt-in buffered; the
    opt-out webhook on the same URL stays active; the opt-out must wait."""
    optin, optout = hook(alice), hook(alice, "optout_finalized")
    opt_in = send("optin_finalized", 1)
    [event] = deactivate(optin)
    assert event.held == 0
    opt_out = send("optout_finalized", 1)  # arrives while the opt-in is buffered
    assert blocked_of(opt_out) == {optout.id: HELD}
    assert claim(NOW + 100) == []
    listed = [h for h, _count in webhooks.listing(alice.id)]
    assert webhooks.held_counts(listed) == [0, 1]
    assert webhooks.buffered_counts(listed) == [1, 0]
    # replay: the opt-in goes first, then the opt-out
    webhooks.activate(alice.id, optin.id, replay=True, now=NOW + 200)
    assert webhooks.held_counts(listed) == [0, 0]
    claims = claim(NOW + 200)
    assert [c.event_id for c in claims] == [opt_in]
    answer(claims, 200, NOW + 201)
    assert [c.event_id for c in claim(NOW + 201)] == [opt_out]


def test_the_deactivation_counts_what_it_holds_on_other_webhooks(alice):
    optin, optout = hook(alice), hook(alice, "optout_finalized")
    send("optin_finalized", 1)
    send("optout_finalized", 1)  # waiting behind the opt-in, then held by its buffer
    send("optout_finalized", 2)  # another subscriber: not held
    for c in claim():
        answer([c], 200 if c.webhook_id == optout.id else 500)
    [event] = deactivate(optin, (NOW + 10, NOW + 70))
    assert event.held == 1
    [note] = Notification.select()
    assert note.held_events == 1 and "1 events of other webhooks" in note.reason
    assert webhooks.held_counts([optout]) == [1]


def test_discarding_or_deleting_the_buffer_releases_what_it_held(alice):
    for release in ("discard", "delete"):
        Delivery.delete().execute()
        Webhook.delete().execute()
        optin, optout = hook(alice), hook(alice, "optout_finalized")
        send("optin_finalized", 1)
        deactivate(optin)
        opt_out = send("optout_finalized", 1, now=NOW + 100)
        assert claim(NOW + 100) == []
        if release == "discard":
            webhooks.activate(alice.id, optin.id, replay=False, now=NOW + 100)
        else:
            webhooks.delete(alice.id, optin.id)
        assert webhooks.held_counts([optout]) == [0]
        assert [c.event_id for c in claim(NOW + 100)] == [opt_out], release


def test_fair_share_a_webhook_at_its_limit_hides_nobody(alice):
    """Fifty webhooks each with their limit in flight (hanging receivers) and one
    healthy one: the claim hands the healthy one its due rows."""
    hanging = [hook(alice, "optin_finalized", f"http://hang/{n}") for n in range(50)]
    healthy = hook(alice, "optout_finalized", "http://ok/")
    for sub in range(4):
        send("optin_finalized", sub)
    for sub in range(4):
        send("optout_finalized", 100 + sub, now=NOW + 1)
    in_flight = {h.id: 2 for h in hanging}
    claims = outbox.claim_due("w", NOW + 2, 60, 10, in_flight, 2)
    assert {c.webhook_id for c in claims} == {healthy.id}
    assert len(claims) == 2  # its own limit


def test_fair_share_round_robin_over_webhooks(alice):
    hooks = [hook(alice, "optin_finalized", f"http://h/{n}") for n in range(3)]
    for sub in range(6):
        send("optin_finalized", sub)
    claims = claim(capacity=7)
    per_hook = sorted(sum(c.webhook_id == h.id for c in claims) for h in hooks)
    assert per_hook == [2, 2, 3]


def test_a_probing_webhook_gets_one_retried_head_and_no_fresh_one(alice):
    down = hook(alice)
    Webhook.update(failure_count=policy.PROBE_AFTER_FAILURES).where(
        Webhook.id == down.id).execute()
    for sub in range(3):
        send("optin_finalized", sub)
    assert claim() == []  # fresh rows wait while the receiver looks down
    Delivery.update(attempts=1, next_at=NOW - 1).where(
        Delivery.event == Delivery.select(Delivery.event).order_by(Delivery.id).limit(1)
    ).execute()
    Delivery.update(attempts=2).where(Delivery.id == Delivery.select(Delivery.id)
                                      .order_by(Delivery.id.desc()).limit(1)).execute()
    [probe] = claim()
    assert probe.event_id == Delivery.select().order_by(Delivery.id).first().event_id
    assert claim() == []  # one at a time


def test_a_store_of_schema_4_gets_its_heads_computed(tmp_path):
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    store.open_store(url)
    from soapservice import auth
    from soapservice.store import accounts
    account = accounts.add("alice", auth.hash_password("pw", n=2**4))
    hook(account), hook(account, "optout_finalized")
    first = send("optin_finalized", 1)
    second = send("optout_finalized", 1)
    store.close_store()
    con = sqlite3.connect(path)
    con.execute("DROP INDEX delivery_webhook_id_state_blocked_next_at_seq")
    con.execute("DROP INDEX delivery_retry_heads")
    for trigger in ("delivery_front_insert", "delivery_front_update", "webhook_front_reset"):
        con.execute(f"DROP TRIGGER {trigger}")
    con.execute("DROP TABLE webhook_front")
    con.execute("DROP TABLE worker_beat")
    con.execute("ALTER TABLE delivery DROP COLUMN blocked")
    con.execute("UPDATE setting SET value = '4' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    store.open_store(url)
    assert [d.blocked for d in Delivery.select().order_by(Delivery.id)] == [READY, WAITING]
    assert [c.event_id for c in claim()] == [first]
    del second
    store.close_store()
    con = sqlite3.connect(path)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    con.close()
    assert {"delivery_webhook_id_state_blocked_next_at_seq", "delivery_retry_heads",
            "delivery_leases"} <= names
    assert "delivery_webhook_id_state_next_at_seq" not in names


def test_pending_is_zero():
    # the claim's SQL names state = 0 and blocked = 0 as literals (partial index)
    assert (PENDING, READY) == (0, 0)
