"""A claim costs what it hands out: it reads only the webhooks whose front has come
(``webhook_front``, lowered by triggers wherever a head becomes ready, raised by the
claim), several live workers share each webhook's slots, and a batch of successes on
healthy webhooks locks no webhook row. Store-level, on SQLite and on the PostgreSQL of
SOAPSERVICE_TEST_DATABASE_URL."""

from __future__ import annotations

import psycopg2
import pytest

from soapservice import policy
from soapservice.ingest import emit
from soapservice.models import Delivery, Webhook, WebhookFront, WorkerBeat
from soapservice.store import claims, heads, outbox, webhooks

DAY = 86400.0
NOW = 2_000_000_000.0


def hook(account, event="optin_finalized", url="http://r/"):
    return webhooks.create(account.id, "crm", event, url, "whsec_" + "A" * 32, 100)


def send(event="optin_finalized", sub=None, now=NOW):
    data = {} if sub is None else {"subscriber_id": sub}
    return emit("alice", event, data, window_sec=5 * DAY, now=now)[0]


def front(h):
    row = WebhookFront.get_or_none(WebhookFront.webhook == h.id)
    return None if row is None else row.front_at


def claim(owner="w", now=NOW, capacity=50, per_webhook=8, in_flight=None):
    return outbox.claim_due(owner, now, 60, capacity, in_flight or {}, per_webhook)


def answer(got, status, now=NOW):
    return outbox.record_outcomes(
        [outbox.Outcome(c.delivery_id, c.token, c.webhook_id, status, None, 1.0) for c in got],
        now, (10.0,) * 30, lambda: 0.5)


def test_a_claim_reads_only_webhooks_whose_front_has_come(alice):
    idle = [hook(alice, "optin_finalized", f"http://idle/{n}") for n in range(20)]
    busy = hook(alice, "optout_finalized", "http://busy/")
    send("optout_finalized")
    assert {front(h) for h in idle} == {None}  # never had a head
    found = claims.fronts(NOW, 100)
    assert found.candidates == [(busy.id, False)] and not found.stale
    [got] = claim()
    assert got.webhook_id == busy.id
    assert front(busy) == NOW + 60  # its only head is leased: due again at the lease's end
    assert claims.fronts(NOW, 100).candidates == []


def test_fronts_follow_ingest_retries_promotion_and_release(alice):
    h = hook(alice)
    send(sub=1, now=NOW)
    second = send(sub=1, now=NOW + 1)  # waits behind the first
    assert front(h) == NOW
    [first] = claim(now=NOW + 2)
    assert front(h) == NOW + 62
    answer([first], 500, now=NOW + 3)  # retried later; the second still waits
    retry_at = Delivery.get_by_id(first.delivery_id).next_at
    between = (NOW + 3 + retry_at) / 2
    assert claim(now=between) == []
    assert front(h) == retry_at  # raised to the retry by the claim that found nothing
    [retry] = claim(now=retry_at)
    answer([retry], 200, now=NOW + 14)  # delivered: the second becomes the head
    assert front(h) <= NOW + 1  # lowered (the recovery floors it)
    [nxt] = claim(now=NOW + 15)
    assert nxt.event_id == second
    outbox.release("w", NOW + 16)
    assert front(h) == NOW + 16
    assert [c.event_id for c in claim(now=NOW + 16)] == [second]


def test_a_lease_leaves_next_at_and_ends_by_itself(alice):
    """A claim writes only the lease: the row keeps its due time (its place in the head
    indexes), is skipped by claims while the lease runs, and is due again, taken over,
    when the lease ends, with nobody writing to it meanwhile."""
    h = hook(alice)
    first, second = send(sub=1), send(sub=2, now=NOW + 1)
    [got] = claim(now=NOW + 2, capacity=1)
    row = Delivery.get_by_id(got.delivery_id)
    assert (got.event_id, row.next_at, row.lease_until) == (first, NOW, NOW + 62)
    assert [c.event_id for c in claim(now=NOW + 3)] == [second]  # the leased one skipped
    assert claim(now=NOW + 4) == []
    assert front(h) == NOW + 62  # the earliest lease's end
    assert outbox.next_due_at(NOW + 4) == NOW + 62
    assert claims.leased_per_webhook(NOW + 4) == {h.id: 2}
    assert claim(now=NOW + 61.5) == []
    [again] = claim("other", now=NOW + 62)  # taken over: a new token
    assert (again.delivery_id, again.token != got.token) == (got.delivery_id, True)
    answer([got], 200, now=NOW + 63)  # the first worker's late outcome: fenced
    row = Delivery.get_by_id(got.delivery_id)
    assert (row.state, row.lease_token, row.next_at) == (0, again.token, NOW)


def test_a_webhook_that_got_its_whole_share_keeps_its_front_until_read_again(alice):
    """Not raised per webhook served (it may have more due heads): the claim that runs
    out of its heads within its share raises it, or the next one that finds none."""
    h = hook(alice)
    for sub in range(3):
        send(sub=sub)
    [a] = claim(capacity=1)
    assert front(h) == NOW  # its whole share (1) leased: kept
    [b] = claim(now=NOW + 1, capacity=1)
    assert front(h) == NOW and b.delivery_id != a.delivery_id
    [c] = claim(now=NOW + 2)  # a share of 8, one head left: ran out, raised
    assert front(h) == NOW + 60  # the earliest lease's end (a's)
    assert claim(now=NOW + 3) == [] and front(h) == NOW + 60
    lone = hook(alice, "optout_finalized", "http://lone/")
    send("optout_finalized")
    [d] = claim(now=NOW + 4, capacity=1)
    assert (d.webhook_id, front(lone)) == (lone.id, NOW)  # kept
    assert claim(now=NOW + 5) == []  # read again, nothing due: raised
    assert front(lone) == NOW + 64


def test_an_outcome_or_release_before_the_lease_ends_lowers_the_front(alice):
    h = hook(alice)
    send(sub=1)
    send(sub=2)
    a, b = claim()
    assert front(h) == NOW + 60
    answer([a], 500, now=NOW + 1)  # retried at NOW + 11, before the lease's end
    retry_at = Delivery.get_by_id(a.delivery_id).next_at
    assert retry_at < NOW + 60 and front(h) == retry_at
    assert [c.delivery_id for c in claim(now=retry_at)] == [a.delivery_id]
    outbox.release("w", retry_at + 1, [b.delivery_id])
    assert front(h) == retry_at + 1
    assert [c.delivery_id for c in claim(now=retry_at + 1)] == [b.delivery_id]


def test_a_front_lowered_by_plain_sql_is_seen(alice):
    """The triggers lower a front whatever writes the row (here a plain UPDATE)."""
    h = hook(alice)
    send()
    [got] = claim()
    Delivery.update(lease_owner=None, lease_token=None, lease_until=None,
                    next_at=NOW + 1).where(Delivery.id == got.delivery_id).execute()
    assert front(h) == NOW + 1
    assert [c.delivery_id for c in claim(now=NOW + 1)] == [got.delivery_id]


def test_a_probing_webhooks_fresh_heads_wait_until_it_recovers(alice):
    h = hook(alice)
    send(sub=1)
    [first] = claim()
    for n in range(policy.PROBE_AFTER_FAILURES):
        answer([first], 500, now=NOW + 1000 * n)
        if n + 1 < policy.PROBE_AFTER_FAILURES:
            [first] = claim(now=NOW + 1000 * (n + 1))
    assert policy.probing(Webhook.get_by_id(h.id).failure_count)
    retry_at = Delivery.get_by_id(first.delivery_id).next_at
    fresh_at = retry_at - 1
    assert fresh_at > NOW + 4000  # after the last failure, before its retry
    for sub in range(2, 5):
        send(sub=sub, now=fresh_at)
    assert claim(now=fresh_at) == []  # fresh heads wait while the receiver looks down
    assert front(h) == retry_at  # the claim raised it to the retry
    [probe] = claim(now=retry_at)
    assert probe.delivery_id == first.delivery_id
    answer([probe], 200, now=retry_at + 1)  # recovered: the front goes to the floor
    assert front(h) == heads.FLOOR
    assert len(claim(now=retry_at + 2)) == 3


def test_a_paused_webhook_is_raised_to_its_pause(alice):
    h = hook(alice)
    send()
    Webhook.update(paused_until=NOW + 30).where(Webhook.id == h.id).execute()
    assert claim() == []
    assert front(h) == NOW + 30
    Webhook.update(paused_until=None).where(Webhook.id == h.id).execute()
    assert front(h) == heads.FLOOR  # a shortened pause: looked at again
    assert len(claim()) == 1


def test_live_workers_share_a_webhooks_slots(alice):
    hook(alice)
    for sub in range(16):
        send(sub=sub)
    a = claim("a", per_webhook=8)
    assert len(a) == 8  # alone: all the slots
    answer(a, 200, now=NOW + 1)
    b = claim("b", now=NOW + 1, per_webhook=policy.Limits(8))  # (as the loop passes it)
    assert len(b) == 4  # two live workers: half each
    again = claim("a", now=NOW + 1, per_webhook=8)
    assert len(again) == 4
    assert claim("a", now=NOW + 1, per_webhook=8, in_flight={b[0].webhook_id: 4}) == []
    outbox.release("b", NOW + 2)  # b stops: its beat goes with it
    assert WorkerBeat.select().where(WorkerBeat.owner == "b").count() == 0
    assert len(claim("a", now=NOW + 2, per_webhook=8, in_flight={b[0].webhook_id: 4})) == 4


def test_a_silent_worker_stops_counting(alice):
    hook(alice)
    for sub in range(16):
        send(sub=sub)
    claim("b", capacity=1)
    assert len(claim("a", capacity=50)) == 4  # b is live: a gets its half
    later = NOW + claims.LIVE_SEC + 1
    outbox.release("a", later)
    got = claim("a", now=later, capacity=50, in_flight={})
    assert len(got) == 7  # b's one lease still counts against the webhook's 8


@pytest.fixture
def pg(pg_database):
    if pg_database is None:
        pytest.skip("set SOAPSERVICE_TEST_DATABASE_URL to a PostgreSQL server")
    return pg_database


def _other(url):
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("SET lock_timeout = '20s'")
    return conn


def test_pg_a_claim_leaves_a_front_low_while_a_head_is_being_added(pg, alice):
    """Another transaction lowering the webhook's front (an ingest in progress): the
    claim does not raise it past the head it cannot see yet."""
    h = hook(alice)
    send()
    [got] = claim()  # front raised to the lease's end
    Delivery.update(lease_owner=None, lease_token=None, lease_until=None, next_at=NOW + 5
                    ).where(Delivery.id == got.delivery_id).execute()
    assert front(h) == NOW + 5
    writer = _other(pg)
    try:
        with writer.cursor() as cur:  # what a lowering trigger takes first
            cur.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", (heads.FRONT_LOCK, h.id))
            Delivery.update(next_at=NOW + 1000).where(Delivery.id == got.delivery_id
                                                      ).execute()
            assert claim(now=NOW + 5) == []  # front read, lock busy: left low
            assert front(h) == NOW + 5
        writer.commit()
        assert claim(now=NOW + 6) == []
        assert front(h) == NOW + 1000  # raised once the writer is done
    finally:
        writer.close()


def test_pg_successes_on_a_healthy_webhook_lock_no_webhook_row(pg, alice):
    h = hook(alice)
    for sub in range(2):
        send(sub=sub)
    first, second = claim()
    answer([first], 200, now=NOW)  # last_success_at set
    other = _other(pg)
    try:
        with other.cursor() as cur:  # another batch holding the webhook's row
            cur.execute("SELECT id FROM webhook WHERE id = %s FOR NO KEY UPDATE", (h.id,))
        # (a wait for the row would fail the test after 20 s rather than hang it)
        Delivery._meta.database.execute_sql("SET lock_timeout = '20s'")
        answer([second], 200, now=NOW + 0.5)  # within the grain: no webhook write
        assert Delivery.get_by_id(second.delivery_id).state == 2
    finally:
        Delivery._meta.database.execute_sql("RESET lock_timeout")
        other.rollback()
        other.close()
    assert Webhook.get_by_id(h.id).last_success_at == NOW


def test_two_live_workers_still_fill_their_capacity_over_many_webhooks(alice):
    """The worker's share cuts each webhook's limit, not the process's fair share of its
    own total (a first cut counted the other's share as running and claimed nothing)."""
    for n in range(40):
        hook(alice, "optin_finalized", f"http://many/{n}")
    for sub in range(4):
        send(sub=sub)
    claim("b", capacity=1)
    limits = policy.Limits(8, total=64, active=frozenset())
    got = outbox.claim_due("a", NOW, 60, 64, {}, limits)
    assert len(got) == 40  # the process's total shared over 40 webhooks: one each
    outbox.release("a", NOW)
    got = outbox.claim_due("a", NOW, 60, 200, {}, policy.Limits(8))
    per_hook = [sum(c.webhook_id == w for c in got) for w in {c.webhook_id for c in got}]
    assert len(got) == 159 and max(per_hook) == 4  # (b holds one)
