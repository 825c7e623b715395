"""The claim reads each webhook's first due rows from an index, so a large backlog
neither starves another webhook nor slows the claim; stores made before the index get
it on start (schema step 2)."""

from __future__ import annotations

from soapservice import auth, store
from soapservice.ingest import emit
from soapservice.models import Delivery
from soapservice.store import accounts, outbox, webhooks

NOW = 2_000_000_000.0


def test_a_backlog_on_one_webhook_does_not_starve_another(store_url):
    store.open_store(store_url)
    alice = accounts.add("alice", auth.hash_password("pw", n=2**4))
    busy = webhooks.create(alice.id, "crm", "optin_finalized", "http://a/", "whsec_x", 100)
    quiet = webhooks.create(alice.id, "crm", "optout_finalized", "http://b/", "whsec_x", 100)
    for i in range(60):
        emit("alice", "optin_finalized", {"i": i}, window_sec=1e6, now=NOW + i)
    for i in range(3):
        emit("alice", "optout_finalized", {"i": i}, window_sec=1e6, now=NOW + 100 + i)
    claims = outbox.claim_due("w", NOW + 200, 60, capacity=20, in_flight={}, per_webhook=8)
    by_hook = [c.webhook_id for c in claims]
    assert by_hook.count(busy.id) == 8 and by_hook.count(quiet.id) == 3
    # the busy webhook's oldest first, in event order
    busy_events = [c.event_id for c in claims if c.webhook_id == busy.id]
    assert busy_events == sorted(busy_events)
    oldest = [d.event_id for d in Delivery.select().where(Delivery.webhook == busy.id)
              .order_by(Delivery.seq).limit(8)]
    assert busy_events == oldest
