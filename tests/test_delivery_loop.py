"""The delivery loop on a ``task.Clock`` with a scripted sender and a real SQLite store:
every timing rule checked exactly, no sleeps."""

from __future__ import annotations

import json

import pytest
from twisted.internet import defer, task

from soapservice import auth, notify, store
from soapservice.config import Settings
from soapservice.delivery import DeliveryService
from soapservice.ingest import emit
from soapservice.models import Notification, Webhook
from soapservice.sender import AttemptResult
from soapservice.store import accounts, webhooks

START = 1_000_000.0
SCHEDULE = (10.0, 60.0)


class ScriptedSender:
    """Records each request; the test answers them (or ``auto`` answers at once)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.auto = None  # callable(request) -> status (None: connection refused)

    def send(self, url, headers, body):
        d = defer.Deferred()
        request = {"url": url, "headers": headers, "body": json.loads(body), "d": d}
        self.requests.append(request)
        if self.auto is not None:
            self.answer(request, self.auto(request))
        return d

    @staticmethod
    def answer(request, status):
        error = None if status is not None else "connection refused"
        request["d"].callback(AttemptResult(status, error, 1.0))

    def open(self):
        return [r for r in self.requests if not r["d"].called]

    def close(self):
        return defer.succeed(None)


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
        settings, sender, lambda fn, *a: defer.maybeDeferred(fn, *a), clock,
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


def test_retry_not_before_due_and_right_after(env):
    env.hook()
    env.event(n=1)
    env.pump()
    env.sender.answer(env.sender.requests[0], 500)
    env.pump()
    env.pump(9.99)
    assert len(env.sender.requests) == 1
    env.pump(0.02)
    assert len(env.sender.requests) == 2
    assert env.sender.requests[1]["headers"][b"webhook-id"] == \
        env.sender.requests[0]["headers"][b"webhook-id"]
    env.sender.answer(env.sender.requests[1], 503)
    env.pump()
    env.pump(59.9)
    assert len(env.sender.requests) == 2
    env.pump(0.2)
    assert len(env.sender.requests) == 3


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


def test_failing_webhook_gets_one_probe_at_a_time(env):
    env.hook()
    healthy = env.hook(url="http://healthy/")
    env.event(subscriber_id=1)
    env.pump()
    assert len(env.sender.requests) == 2
    first = next(r for r in env.sender.requests if r["url"] == "http://r/hook")
    env.sender.answer(first, 500)
    for r in env.sender.open():
        env.sender.answer(r, 200)
    env.pump()
    for n in range(5):  # fresh events for other subscribers: held while failing
        env.event(subscriber_id=100 + n)
    env.pump()
    to_failing = [r for r in env.sender.requests if r["url"] == "http://r/hook"]
    assert len(to_failing) == 1
    # The healthy webhook is not slowed: it runs up to its limit (3) at once.
    assert len([r for r in env.sender.open() if r["url"] == "http://healthy/"]) == 3
    env.pump(10)  # the probe: the failed delivery, alone
    probes = [r for r in env.sender.open() if r["url"] == "http://r/hook"]
    assert len(probes) == 1 and probes[0]["body"] == {"subscriber_id": 1}
    env.sender.answer(probes[0], 200)
    env.pump()  # recovered: the held ones flow, up to the per-webhook limit (3)
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
    env.event(subscriber_id=2, n=3)  # held: the webhook is failing
    env.pump(10)
    assert Webhook.get_by_id(hook.id).active
    assert len(env.sender.requests) == 2
    env.pump(60)
    assert len(env.sender.requests) == 3  # 1 + len(SCHEDULE) attempts in all
    row = Webhook.get_by_id(hook.id)
    assert not row.active and row.deactivated_at == pytest.approx(env.clock.seconds())
    assert row.failure_count == 3
    [listed] = webhooks.listing(env.account.id)
    assert listed[1] == 3  # buffered: the failing one and the two behind it
    [note] = Notification.select()
    assert note.webhook_id == hook.id and note.buffered_events == 3
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
