"""The delivery loop's hand-offs to the store thread: an outcome batch and the claim
that refills its slots go in one store call (not three: outcomes, claim, next due),
with the limits and retries as before. On a ``task.Clock`` with a real store."""

from __future__ import annotations

from twisted.internet import defer, task

from soapservice import auth, store
from soapservice.config import Settings
from soapservice.delivery import DeliveryService, _record_then_claim
from soapservice.ingest import emit
from soapservice.store import accounts, outbox, webhooks
from tests.support.doubles import ScriptedSender
from tests.test_delivery_loop import START


def test_outcomes_and_the_next_claim_share_one_store_call(store_url):
    store.open_store(store_url)
    account = accounts.add("alice", auth.hash_password("pw", n=2**4))
    for n in range(2):
        webhooks.create(account.id, "crm", "optin_finalized", f"http://r/{n}",
                        "whsec_" + "A" * 32, 100)
    clock = task.Clock()
    clock.advance(START)
    for k in range(12):
        emit("alice", "optin_finalized", {"k": k}, window_sec=1e6, now=clock.seconds())
    # Leased by a worker that stalled: its leases have expired, taken over (and counted)
    # by the claims that ride with the outcomes as by the loop's own.
    stalled = len(outbox.claim_due("stalled", START, 30, 8, {}, 8))
    assert stalled == 8
    clock.advance(31)
    takeovers: list[int] = []
    calls = []

    def runner(fn, *args):
        calls.append(fn)
        return defer.maybeDeferred(fn, *args)

    sender = ScriptedSender()
    settings = Settings(per_webhook_concurrency=4, global_concurrency=5,
                        retry_schedule_sec=(10.0, 60.0))
    service = DeliveryService(settings, sender, runner, clock, rand=lambda: 0.5,
                              on_takeover=takeovers.append)
    service.startService()
    clock.advance(0)
    failed_once = False
    while sender.open():
        running = sender.open()
        assert len(running) <= 5
        assert all(sum(r["url"] == u for r in running) <= 4 for u in ("http://r/0",
                                                                        "http://r/1"))
        first, *rest = running
        if not failed_once and first["url"] == "http://r/1":
            failed_once = True
            sender.answer(first, 500)  # retried a second later
        else:
            sender.answer(first, 200)
        for request in rest[:2]:  # a batch of up to three outcomes
            sender.answer(request, 200)
        before = len(calls)
        clock.advance(0)
        assert calls[before:] == [_record_then_claim]  # one hop: outcomes + claim
        if not sender.open():
            clock.advance(2.0)  # the retry's time
    for url in ("http://r/0", "http://r/1"):
        delivered = [r["body"]["k"] for r in sender.requests if r["url"] == url]
        assert sorted(set(delivered)) == list(range(12))
    assert len(sender.requests) == 25  # 24 + the retry
    assert sum(takeovers) == stalled and len(takeovers) >= 2
    assert calls.count(outbox.claim_due) <= 2  # the first sweep's (and the retry timer's)
    assert outbox.claim_due(service.owner, clock.seconds() + 100, 30, 10, {}, 8) == []
    service.stopping = True
