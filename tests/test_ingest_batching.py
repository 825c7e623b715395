"""POST /events' group commit: events arriving while a write runs share the next
transaction, and each is acknowledged only once its own transaction committed."""

from __future__ import annotations

import pytest

from soapservice.config import Settings
from soapservice.ingest import IngestError, Ingestor
from soapservice.models import Delivery, Event
from soapservice.store import webhooks
from tests.support.doubles import ManualRunner


@pytest.fixture
def alice(alice):
    """conftest's alice, with a webhook for optin_finalized."""
    webhooks.create(alice.id, "crm", "optin_finalized", "http://r/", "whsec_x", 100)
    return alice


def test_events_waiting_for_a_write_share_the_next_commit(alice):
    runner = ManualRunner()
    woken = []
    ingestor = Ingestor(Settings(), runner)
    ingestor.listeners.append(woken.append)
    first = ingestor.submit("alice", "optin_finalized", {"n": 0})
    later = [ingestor.submit("alice", "optin_finalized", {"n": i}) for i in (1, 2, 3)]
    unknown = ingestor.submit("mallory", "optin_finalized", {"n": 4})
    assert len(runner.calls) == 1  # the others wait for the write in progress
    acked = []
    for d in [first, *later]:
        d.addCallback(acked.append)
    assert not acked and Event.select().count() == 0
    runner.run_next()  # commits the first event alone
    assert len(acked) == 1 and Event.select().count() == 1
    assert len(runner.calls) == 1 and not later[0].called
    runner.run_next()  # one transaction for the four that waited
    assert len(acked) == 4 and Event.select().count() == 4
    assert Delivery.select().count() == 4
    assert [queued for _, queued in acked] == [1, 1, 1, 1]
    assert len(woken) == 2
    failure = []
    unknown.addErrback(failure.append)
    assert failure and failure[0].check(IngestError)
    assert "unknown account" in str(failure[0].value)


def test_a_refused_event_fails_at_once_and_stores_nothing(alice):
    runner = ManualRunner()
    d = Ingestor(Settings(), runner).submit("alice", "no_such_event", {})
    failure = []
    d.addErrback(failure.append)
    assert failure[0].check(IngestError) and not runner.calls
