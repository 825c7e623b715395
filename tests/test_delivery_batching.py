"""A busy process gathers outcomes before a store hop (a hop's fixed cost is shared by
more of them), within FLUSH_WAIT_SEC; a quiet one records each at once. On a
``task.Clock`` with a real store."""

from __future__ import annotations

from twisted.internet import defer, task

from soapservice import auth, delivery, store
from soapservice.config import Settings
from soapservice.delivery import DeliveryService, _record_then_claim
from soapservice.ingest import emit
from soapservice.store import accounts, webhooks
from tests.support.doubles import ScriptedSender
from tests.test_delivery_loop import START


def test_a_busy_process_gathers_outcomes_a_quiet_one_records_each_at_once(store_url):
    store.open_store(store_url)
    account = accounts.add("alice", auth.hash_password("pw", n=2**4))
    running = delivery.FLUSH_BUSY * 3
    for n in range(running):
        webhooks.create(account.id, "crm", "optin_finalized", f"http://r/{n}",
                        "whsec_" + "A" * 32, 100)
    clock = task.Clock()
    clock.advance(START)
    emit("alice", "optin_finalized", {"k": 0}, window_sec=1e6, now=clock.seconds())
    recorded = []

    def runner(fn, *args):
        if fn is _record_then_claim:
            recorded.append(len(args[0][0]))
        return defer.maybeDeferred(fn, *args)

    sender = ScriptedSender()
    settings = Settings(per_webhook_concurrency=4, global_concurrency=256)
    service = DeliveryService(settings, sender, runner, clock, rand=lambda: 0.5)
    service.startService()
    clock.advance(0)
    assert len(sender.open()) == running
    first, *rest = sender.open()
    sender.answer(first, 200)
    clock.advance(0)
    assert recorded == []  # gathering: most requests are still running
    clock.advance(delivery.FLUSH_WAIT_SEC)
    assert recorded == [1]  # no later than FLUSH_WAIT_SEC
    # Gathered until they are half as many as the requests still running.
    batch = -(-len(rest) // 3)  # k with 2k >= len(rest) - k
    for request in rest[:batch - 1]:
        sender.answer(request, 200)
    clock.advance(0)
    assert recorded == [1]
    sender.answer(rest[batch - 1], 200)
    clock.advance(0)
    assert recorded == [1, batch]
    for request in sender.open()[:-(delivery.FLUSH_BUSY - 1)]:
        sender.answer(request, 200)
    clock.advance(delivery.FLUSH_WAIT_SEC)
    assert len(sender.open()) < delivery.FLUSH_BUSY  # quiet now: each at once
    before = len(recorded)
    sender.answer(sender.open()[0], 200)
    clock.advance(0)
    assert recorded[before:] == [1]
    for request in sender.open():
        sender.answer(request, 200)
    clock.advance(0)
    assert sum(recorded) == running
    assert {r["body"]["k"] for r in sender.requests} == {0}
    service.stopping = True
