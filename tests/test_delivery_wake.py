"""A wake-up that arrives while the loop finishes a claim is not lost: the event stored
meanwhile is sent at once, not at the next sweep (seconds later)."""

from __future__ import annotations

from twisted.internet import task

from soapservice import auth, store
from soapservice.config import Settings
from soapservice.delivery import DeliveryService
from soapservice.ingest import emit
from soapservice.store import accounts, outbox, webhooks
from tests.support.doubles import ManualRunner, ScriptedSender
from tests.test_delivery_loop import START


def test_an_event_stored_while_a_claim_ends_is_sent_at_once(store_url):
    store.open_store(store_url)
    account = accounts.add("alice", auth.hash_password("pw", n=2**4))
    webhooks.create(account.id, "crm", "optin_finalized", "http://r/", "whsec_" + "A" * 32, 100)
    clock = task.Clock()
    clock.advance(START)
    # next_due_at waits for the test: the moment the loop has decided there is
    # nothing more to claim
    runner = ManualRunner(hold=lambda fn: fn is outbox.next_due_at)
    sender = ScriptedSender()
    service = DeliveryService(Settings(), sender, runner, clock, rand=lambda: 0.5)
    service.startService()
    clock.advance(0)  # the first sweep's claim: nothing due; now waiting in next_due_at
    assert runner.calls and not sender.requests
    emit("alice", "optin_finalized", {"n": 1}, window_sec=1e6, now=clock.seconds())
    service.wake()  # the listener's wake-up lands while the loop is still busy
    runner.run_all()
    clock.advance(0)
    runner.run_all()
    assert len(sender.requests) == 1  # without waiting for the sweep
    assert sender.requests[0]["body"] == {"n": 1}
    service.stopping = True
