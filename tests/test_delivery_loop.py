"""The delivery loop on a ``task.Clock`` with a scripted sender and a real SQLite store:
every timing rule checked exactly, no sleeps."""

from __future__ import annotations

import json

import pytest
from twisted.internet import defer, task

from soapservice import auth, notify, policy, store
from soapservice.config import Settings
from soapservice.delivery import DeliveryService
from soapservice.ingest import emit
from soapservice.models import Notification, Webhook
from soapservice.store import accounts, webhooks
from tests.support.doubles import ScriptedSender, inline_runner

START = 1_000_000.0
SCHEDULE = (10.0, 60.0)




@pytest.fixture
def env(store_url):
    store.open_store(store_url)
    account = accounts.add("alice", auth.hash_password("pw", n=2**4))
    clock = task.Clock()
    clock.advance(START)
    settings = Settings(retry_schedule_sec=SCHEDULE, buffer_days=5,
                        per_webhook_concurrency=3, global_concurrency=50)
    sender = ScriptedSender()
    service = DeliveryService(
        settings, sender, inline_runner, clock,
        rand=lambda: 0.5,
        on_deactivate=lambda e: notify.store_notification(e, base_url="http://x",
                                                          ttl_sec=86400))

    class Env:
        pass

    e = Env()
    e.clock, e.sender, e.service, e.account, e.settings = clock, sender, service, account, settings

    def hook(event="optin_finalized", url="http://r/hook"):
        return webhooks.create(account.id, "crm", event, url, "whsec_" + "A" * 32, 100)

    def event(name="optin_finalized", **data):
        result = emit("alice", name, data, window_sec=settings.buffer_window_sec,
                      now=clock.seconds())
        service.wake()
        return result

    def pump(seconds=0.0):
        clock.advance(seconds)
        for _ in range(5):
            clock.advance(0)

    e.hook, e.event, e.pump = hook, event, pump
    service.startService()
    yield e
    if service.running:
        service.stopService()


def test_sends_the_event_data_with_signed_headers(env):
    env.hook()
    env.event(subscriber_id=1, n=1)
    env.pump()
    [request] = env.sender.requests
    assert request["body"] == {"subscriber_id": 1, "n": 1}
    headers = request["headers"]
    assert headers[b"webhook-signature"][0].startswith(b"v1,")
    assert headers[b"x-soapservice-event"] == [b"optin_finalized"]


def test_an_isolated_failure_is_retried_quickly_not_before_due_and_right_after(env):
    """The receiver does not look down: the retries come after QUICK_RETRY_SEC (1 s,
    2 s; the schedule's 10 s and 60 s would hold the subscriber's later events)."""
    env.hook()
    env.event(n=1)
    env.pump()
    env.sender.answer(env.sender.requests[0], 500)
    env.pump()
    env.pump(0.99)
    assert len(env.sender.requests) == 1
    env.pump(0.02)
    assert len(env.sender.requests) == 2
    assert env.sender.requests[1]["headers"][b"webhook-id"] == \
        env.sender.requests[0]["headers"][b"webhook-id"]
    env.sender.answer(env.sender.requests[1], 503)
    env.pump()
    env.pump(1.9)
    assert len(env.sender.requests) == 2
    env.pump(0.2)
    assert len(env.sender.requests) == 3


def test_a_receiver_that_looks_down_backs_off_on_the_schedule(env):
    """A run of PROBE_AFTER_FAILURES failures: the failure that completes it and every
    later one wait the schedule (10 s, then 60 s), one probe at a time; the quick
    retries were only for the failures before the run was complete."""
    down = policy.PROBE_AFTER_FAILURES
    [hook] = [env.hook()]
    for n in range(down):
        env.event(subscriber_id=n)
    env.pump()
    while Webhook.get_by_id(hook.id).failure_count < down:  # first attempts, 3 at a time
        assert len(env.sender.open()) <= 3
        answer_open(env, lambda r: 500)
        env.pump()
    assert len(env.sender.requests) == down
    env.sender.auto = lambda r: 500
    env.pump(1.0)  # the quick retries, one probe at a time: each now waits 60 s
    env.pump()
    assert len(env.sender.requests) == 2 * down - 1
    env.pump(8.9)
    assert len(env.sender.requests) == 2 * down - 1
    env.pump(0.2)  # the one that completed the run, at the schedule's 10 s
    assert len(env.sender.requests) == 2 * down
    env.pump(50.7)  # +60.8: nothing before the schedule's 60 s after the quick retries
    assert len(env.sender.requests) == 2 * down
    env.pump(0.3)  # the first probe at +61; its third attempt ends this short schedule
    assert len(env.sender.requests) == 2 * down + 1
    assert not Webhook.get_by_id(hook.id).active


def test_failure_count_and_reset_on_success(env):
    hook = env.hook()
    env.event(n=1)
    env.pump()
    env.sender.answer(env.sender.requests[0], 500)
    env.pump()
    assert Webhook.get_by_id(hook.id).failure_count == 1
    env.pump(10)
    env.sender.answer(env.sender.requests[1], None)
    env.pump()
    row = Webhook.get_by_id(hook.id)
    assert (row.failure_count, row.last_error) == (2, "connection refused")
    env.pump(60)
    env.sender.answer(env.sender.requests[2], 204)
    env.pump()
    row = Webhook.get_by_id(hook.id)
    assert row.failure_count == 0 and row.active and row.last_success_at is not None


def answer_open(env, status_of):
    for r in env.sender.open():
        env.sender.answer(r, status_of(r))


def test_a_single_failure_is_retried_without_throttling_the_webhook(env):
    env.hook()
    env.event(subscriber_id=1)
    env.pump()
    answer_open(env, lambda r: 500)
    env.pump()
    for n in range(5):  # fresh events of other subscribers go at once, up to the limit
        env.event(subscriber_id=100 + n)
    env.pump()
    assert len(env.sender.open()) == 3


def test_a_webhook_whose_receiver_looks_down_gets_one_probe_at_a_time(env):
    env.hook()
    healthy = env.hook(url="http://healthy/")
    for n in range(policy.PROBE_AFTER_FAILURES):
        env.event(subscriber_id=n)
    failing_id = Webhook.select().order_by(Webhook.id).first().id
    while Webhook.get_by_id(failing_id).failure_count < policy.PROBE_AFTER_FAILURES:
        env.pump()
        answer_open(env, lambda r: 500 if r["url"] == "http://r/hook" else 200)
    env.pump()
    before = len([r for r in env.sender.requests if r["url"] == "http://r/hook"])
    for n in range(5):  # fresh events for other subscribers: they wait while it probes
        env.event(subscriber_id=100 + n)
    env.pump()
    assert len([r for r in env.sender.requests if r["url"] == "http://r/hook"]) == before
    # The healthy webhook is not slowed: it runs up to its limit (3) at once.
    assert len([r for r in env.sender.open() if r["url"] == "http://healthy/"]) == 3
    env.pump(10)  # the probe: one failed delivery, alone
    probes = [r for r in env.sender.open() if r["url"] == "http://r/hook"]
    assert len(probes) == 1 and probes[0]["body"]["subscriber_id"] < 100
    env.sender.answer(probes[0], 200)
    env.pump()  # recovered: the others flow, up to the per-webhook limit (3)
    assert len([r for r in env.sender.open() if r["url"] == "http://r/hook"]) == 3
    assert Webhook.get_by_id(healthy.id).failure_count == 0


def test_deactivation_exactly_at_the_end_of_the_schedule(env):
    hook = env.hook()
    env.event(subscriber_id=1, n=1)
    env.pump()
    env.sender.auto = lambda r: 500
    env.sender.answer(env.sender.requests[0], 500)
    env.pump()
    env.event(subscriber_id=1, n=2)  # waits behind n=1 (same subscriber)
    env.pump(10)
    assert Webhook.get_by_id(hook.id).active
    assert len(env.sender.requests) == 2
    env.pump(60)
    assert len(env.sender.requests) == 3  # 1 + len(SCHEDULE) attempts in all
    row = Webhook.get_by_id(hook.id)
    assert not row.active and row.deactivated_at == pytest.approx(env.clock.seconds())
    assert row.failure_count == 3
    [listed] = webhooks.listing(env.account.id)
    assert listed[1] == 2  # buffered: the failing one and the one behind it
    [note] = Notification.select()
    assert note.webhook_id == hook.id and note.buffered_events == 2
    assert note.failure_count == 3 and "/reactivate/" in note.link
    env.pump(3600)
    assert len(env.sender.requests) == 3


def deactivate(env, hook):
    env.sender.auto = lambda r: 500
    env.event(subscriber_id=1, n=0)
    env.pump()
    env.pump(10)
    env.pump(60)
    assert not Webhook.get_by_id(hook.id).active
    env.sender.auto = lambda r: 200


def test_buffer_window_then_drop(env):
    hook = env.hook()
    deactivate(env, hook)
    env.event(subscriber_id=1, n=1)
    env.pump(4 * 86400)
    env.event(subscriber_id=1, n=2)
    env.pump(1 * 86400 + 1)
    env.event(subscriber_id=1, n=3)
    [(row, buffered)] = webhooks.listing(env.account.id)
    assert (buffered, row.dropped_events) == (3, 1)


def test_replay_sends_the_buffer_in_order_before_newer_events(env):
    hook = env.hook()
    other = env.hook(event="optout_finalized")  # same URL, another event type
    deactivate(env, hook)
    for n in (1, 2):
        env.event(subscriber_id=1, n=n)
    env.pump()
    sent_before = len(env.sender.requests)
    _, replayed = webhooks.activate(env.account.id, hook.id, replay=True,
                                    now=env.clock.seconds())
    assert replayed == 3
    env.event("optout_finalized", subscriber_id=1, n=3)
    env.service.wake()
    env.pump()
    env.pump()
    bodies = [r["body"]["n"] for r in env.sender.requests[sent_before:]]
    assert bodies == [0, 1, 2, 3]
    assert Webhook.get_by_id(other.id).active


def test_activate_without_replay_discards_the_buffer(env):
    hook = env.hook()
    deactivate(env, hook)
    env.event(subscriber_id=1, n=1)
    sent_before = len(env.sender.requests)
    _, replayed = webhooks.activate(env.account.id, hook.id, replay=False)
    assert replayed == 0
    env.service.wake()
    env.pump(100)
    assert len(env.sender.requests) == sent_before
    env.event(subscriber_id=1, n=2)
    env.pump()
    assert [r["body"]["n"] for r in env.sender.requests[sent_before:]] == [2]


def test_per_subscriber_order_across_webhooks_at_one_url(env):
    env.hook("optin_finalized")
    env.hook("optout_finalized")
    env.event("optin_finalized", subscriber_id=7, n=1)
    env.event("optout_finalized", subscriber_id=7, n=2)
    env.event("optin_finalized", subscriber_id=8, n=3)
    env.pump()
    assert sorted(r["body"]["n"] for r in env.sender.open()) == [1, 3]
    env.sender.answer(env.sender.requests[0], 500)  # n=1 fails: n=2 must wait
    env.pump()
    env.pump(5)
    assert [r["body"]["n"] for r in env.sender.open()] == [3]
    env.sender.answer(env.sender.open()[0], 200)
    env.pump()
    env.pump(5)
    retry = env.sender.open()
    assert [r["body"]["n"] for r in retry] == [1]
    env.sender.answer(retry[0], 200)
    env.pump()
    assert [r["body"]["n"] for r in env.sender.open()] == [2]
    sent = [r["body"]["n"] for r in env.sender.requests if r["body"]["subscriber_id"] == 7]
    assert sent == [1, 1, 2]


def test_delete_stops_new_requests(env):
    hook = env.hook()
    env.event(subscriber_id=1, n=1)
    env.pump()
    env.sender.answer(env.sender.requests[0], 500)
    env.pump()
    assert webhooks.delete(env.account.id, hook.id)
    env.service.forget_webhook(hook.id)
    env.pump(3600)
    assert len(env.sender.requests) == 1


def test_stop_waits_for_attempts_and_leaves_no_timers(env):
    env.hook()
    env.event(subscriber_id=1)
    env.pump()
    stopped = env.service.stopService()
    assert not stopped.called  # an attempt is in flight
    env.sender.answer(env.sender.requests[0], 200)
    env.pump()
    assert stopped.called
    assert env.clock.getDelayedCalls() == []
    env.event(subscriber_id=2)
    env.pump(100)
    assert len(env.sender.requests) == 1


def test_a_429_with_retry_after_pauses_the_whole_webhook_then_order_is_kept(env):
    env.hook()
    env.event(subscriber_id=1, n=1)
    env.event(subscriber_id=2, n=2)
    env.event(subscriber_id=1, n=3)  # waits behind n=1
    env.pump()
    first, second = env.sender.requests
    assert {first["body"]["n"], second["body"]["n"]} == {1, 2}
    by_n = {r["body"]["n"]: r for r in env.sender.requests}
    env.sender.answer(by_n[2], 200)
    env.sender.answer(by_n[1], 429, retry_after="30")
    env.pump()
    env.event(subscriber_id=2, n=4)  # due at once, but the webhook is paused
    env.pump(29.9)
    assert len(env.sender.requests) == 2  # nothing before the pause ends
    [hook] = Webhook.select()
    assert hook.active and hook.failure_count == 1 and hook.last_error == "HTTP 429"
    env.pump(0.2)
    assert sorted(r["body"]["n"] for r in env.sender.open()) == [1, 4]
    assert env.sender.requests[2]["headers"][b"webhook-id"] == by_n[1]["headers"][b"webhook-id"]
    for r in env.sender.open():
        env.sender.answer(r, 200)
    env.pump()
    [after] = env.sender.open()
    assert after["body"]["n"] == 3
    env.sender.answer(after, 200)
    env.pump()
    sent = [r["body"]["n"] for r in env.sender.requests]
    assert [n for n in sent if n in (1, 3)] == [1, 1, 3]
    assert [n for n in sent if n in (2, 4)] == [2, 4]


def test_retry_after_is_clamped_and_a_503_without_it_is_a_plain_failure(env):
    from dataclasses import replace
    env.service.settings = replace(env.settings, max_retry_after_sec=100.0)
    env.hook()
    env.event(subscriber_id=1, n=1)
    env.pump()
    env.sender.answer(env.sender.requests[0], 503, retry_after="86400")
    env.pump()
    env.pump(99.9)
    assert len(env.sender.requests) == 1
    env.pump(0.2)
    assert len(env.sender.requests) == 2  # at the clamp, not a day later
    env.sender.answer(env.sender.requests[1], 503)  # no Retry-After: a plain failure
    env.pump()
    env.pump(policy.QUICK_RETRY_SEC[1] - 0.1)
    assert len(env.sender.requests) == 2
    env.pump(0.2)
    assert len(env.sender.requests) == 3


def test_a_410_deactivates_on_the_first_attempt(env):
    env.hook()
    env.event(subscriber_id=1, n=1)
    env.event(subscriber_id=1, n=2)
    env.pump()
    env.sender.answer(env.sender.requests[0], 410)
    env.pump()
    [hook] = Webhook.select()
    assert not hook.active and hook.last_error == "gone (410)" and hook.failure_count == 1
    assert webhooks.buffered_counts([hook]) == [2]
    [note] = Notification.select()
    assert "gone (410)" in note.reason
    env.pump(SCHEDULE[0] * 10)
    assert len(env.sender.requests) == 1


def test_a_rotated_secret_signs_beside_the_new_one_only_during_its_grace(env):
    """The loop signs with what the claim's ``signing_secrets`` says at the moment of
    sending (the wall clock's, as the signature's timestamp: the grace's end itself is
    checked in tests/test_delivery_log.py)."""
    import time

    from standardwebhooks import Webhook as Verifier
    from standardwebhooks.webhooks import WebhookVerificationError
    hook = env.hook()
    old, new, newer = hook.secret, "whsec_" + "B" * 32, "whsec_" + "C" * 32
    webhooks.rotate_secret(env.account.id, hook.id, new, 3600, now=time.time())
    env.event(subscriber_id=1)
    env.pump()
    env.sender.answer(env.sender.requests[0], 200)
    # Rotated again, with a grace that ended a minute ago: only the newest signs.
    webhooks.rotate_secret(env.account.id, hook.id, newer, 30, now=time.time() - 90)
    env.event(subscriber_id=2)
    env.pump()

    def verifies(secret, request):
        headers = {k.decode(): v[0].decode() for k, v in request["headers"].items()}
        try:
            Verifier(secret).verify(request["raw"], headers)
        except WebhookVerificationError:
            return False
        return True

    during, after = env.sender.requests
    assert len(during["headers"][b"webhook-signature"][0].split(b" ")) == 2
    assert verifies(new, during) and verifies(old, during)
    assert len(after["headers"][b"webhook-signature"][0].split(b" ")) == 1
    assert verifies(newer, after) and not verifies(new, after)


def test_hanging_receivers_never_hold_every_slot_of_the_process(env):
    """Five webhooks whose receivers never answer beside a healthy one, 3 per webhook
    but 8 in all (5 x 3 would take them all): each hanging one keeps to its share of
    the 8 (one), so every event reaches the healthy receiver at once."""
    from dataclasses import replace
    env.service.settings = replace(env.settings, global_concurrency=8)
    env.service.receivers.total = 8
    for n in range(5):
        env.hook(url=f"http://hang/{n}")
    env.hook(url="http://ok/")
    for n in range(10):
        env.event(n=n)  # no subscriber: each one stands alone, all are heads
        env.pump(0.3)
        ok = [r for r in env.sender.open() if r["url"] == "http://ok/"]
        assert [r["body"]["n"] for r in ok] == [n]
        for r in ok:
            env.sender.answer(r, 200)
        env.pump()
    hanging = [r["url"] for r in env.sender.open()]
    assert sorted(hanging) == [f"http://hang/{n}" for n in range(5)]


def test_a_receiver_that_times_out_gets_fewer_requests_until_it_answers(env):
    """Time-outs halve the webhook's limit (3 -> 1 here); each answer gives one back."""
    from soapservice.sender import TIMEOUT, AttemptResult
    env.hook()
    for n in range(6):
        env.event(subscriber_id=n)
    env.pump()
    assert len(env.sender.open()) == 3
    for r in env.sender.open():
        r["d"].callback(AttemptResult(None, "timeout after 10 s", 10000.0, TIMEOUT))
    env.pump()
    assert len(env.sender.open()) == 1  # fresh subscribers 3-5: one at a time now
    env.sender.answer(env.sender.open()[0], 200)
    env.pump()
    assert len(env.sender.open()) == 2  # one answer: one more


def test_a_receiver_failing_one_in_ten_at_random_keeps_up_and_keeps_order(env):
    """10 % of attempts fail at random (seeded), 20 events/s over 20 subscribers for
    6 s, answers after 5 ms: every event arrives within 30 s of the last one (with
    the schedule alone, an event that failed twice waited 70 s, its subscriber's later
    ones behind it), each subscriber's in order, and few wait meanwhile."""
    import random

    from soapservice.sender import AttemptResult
    if not store.is_postgres():  # (timing rules here, not durability: no fsync waits)
        Webhook._meta.database.execute_sql("PRAGMA synchronous=OFF")
    rng = random.Random(13)
    arrived: dict[int, list[int]] = {}

    class Flaky:
        def send(self, url, headers, body, key=None):
            d, data, ok = defer.Deferred(), json.loads(body), rng.random() >= 0.1

            def answer():
                if ok:
                    arrived.setdefault(data["subscriber_id"], []).append(data["n"])
                d.callback(AttemptResult(200 if ok else 500, None, 5.0))
            env.clock.callLater(0.005, answer)
            return d

        def close(self):
            return defer.succeed(None)

    env.service.sender = Flaky()
    env.hook()
    sent: dict[int, list[int]] = {}
    most_waiting = 0
    for n in range(120):
        subscriber = rng.randrange(20)
        sent.setdefault(subscriber, []).append(n)
        env.event(subscriber_id=subscriber, n=n)
        env.pump(0.05)
        most_waiting = max(most_waiting, n + 1 - sum(map(len, arrived.values())))
    for _ in range(300):
        env.pump(0.1)
    assert arrived == sent  # all of them, each subscriber's in order (first arrivals)
    assert most_waiting <= 30


def test_one_slow_answer_among_quick_ones_does_not_throttle_the_webhook(env):
    """Subscriber 0's request goes unanswered for seconds while the receiver answers
    the others at once: it is not hanging, each new event goes at once (a receiver
    silent with requests running would get no further request)."""
    env.hook()
    env.event(subscriber_id=0)
    env.pump()
    for n in range(1, 9):
        env.pump(0.5)
        env.event(subscriber_id=n)
        env.pump()
        fresh = [r for r in env.sender.open() if r["body"]["subscriber_id"] == n]
        assert len(fresh) == 1, n  # at once, though subscriber 0's is n / 2 s old
        env.sender.answer(fresh[0], 200)
        env.pump()
    assert [r["body"]["subscriber_id"] for r in env.sender.open()] == [0]


def test_a_receiver_silent_with_requests_running_gets_no_further_request(env):
    env.hook()
    env.event(subscriber_id=0)
    env.pump()
    env.sender.answer(env.sender.requests[0], 200)  # heard from: its usual time is 1 ms
    for n in range(1, 3):
        env.event(subscriber_id=n)
    env.pump()
    assert len(env.sender.open()) == 2  # then silent
    env.pump(policy.STALE_SEC)
    for n in range(3, 6):
        env.event(subscriber_id=n)
    env.pump()
    assert len(env.sender.open()) == 2  # silent past STALE_SEC: nothing more starts
    env.sender.answer(env.sender.open()[0], 200)
    env.pump()
    assert len(env.sender.open()) == 3  # it answered: its limit (3) again
