"""The API's and ingest's per-call reads run prepared SQL (built once by Peewee, bound
anew each call): what they return must be what the query builder's own answer is, for
every shape of the listing, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from soapservice import auth, store
from soapservice.models import Account, Webhook
from soapservice.store import accounts, outbox, webhooks
from soapservice.store.prepared import Prepared


@pytest.fixture
def two_accounts(store_url):
    store.open_store(store_url)
    alice = accounts.add("alice", auth.hash_password("pw", n=2**4), email="a@example.com")
    bob = accounts.add("bob", auth.hash_password("pw", n=2**4))
    hooks = [webhooks.create(alice.id, app, event, f"http://h/{i}", f"whsec_{i}", 100)
             for i, (app, event) in enumerate([("crm", "optin_finalized"),
                                               ("crm", "optout_finalized"),
                                               ("shop", "optin_finalized"),
                                               ("it's \"odd\" ✓", "optin_finalized")])]
    webhooks.create(bob.id, "crm", "optin_finalized", "http://h/bob", "whsec_b", 100)
    Webhook.update(active=False, deactivated_at=1e9, last_error="timeout").where(
        Webhook.id == hooks[1].id).execute()
    yield alice, bob, hooks
    store.close_store()


def _as_dicts(rows):
    return [row.__data__ for row in rows]


def test_find_returns_the_account_as_the_query_builder_does(two_accounts):
    alice, _bob, _hooks = two_accounts
    found = accounts.find("alice")
    assert found.__data__ == Account.get(Account.username == "alice").__data__
    assert found.id == alice.id and found.email == "a@example.com"
    assert accounts.find("nobody") is None
    assert accounts.find("ALICE") is None  # names are exact


@pytest.mark.parametrize("app, event", [
    (None, None), ("crm", None), (None, "optin_finalized"), ("crm", "optin_finalized"),
    ("it's \"odd\" ✓", None), ("nothing", None), (None, "profilemanager_finalized")])
def test_every_listing_shape_matches_the_query_builder(two_accounts, app, event):
    alice, _bob, _hooks = two_accounts
    expected = Webhook.select().where(Webhook.account == alice.id)
    if app is not None:
        expected = expected.where(Webhook.app == app)
    if event is not None:
        expected = expected.where(Webhook.event == event)
    rows = [hook for hook, _count in webhooks.listing(alice.id, app, event)]
    assert _as_dicts(rows) == _as_dicts(expected.order_by(Webhook.id))
    # the same shape again, with other values bound: no answer left over from before
    assert [h.id for h, _ in webhooks.listing(alice.id + 1000, app, event)] == []


def test_listed_values_have_python_types(two_accounts):
    alice, _bob, hooks = two_accounts
    listed = {hook.id: hook for hook, _count in webhooks.listing(alice.id)}
    assert listed[hooks[0].id].active is True and listed[hooks[1].id].active is False
    assert listed[hooks[1].id].deactivated_at == 1e9
    assert listed[hooks[0].id].account_id == alice.id


def test_ingest_reads_the_webhooks_of_one_and_of_several_kinds(two_accounts):
    alice, bob, hooks = two_accounts
    one = outbox.store_events([("alice", "optin_finalized", "{}", None)], 2e9, 86400)
    assert one == [(one[0][0], 3)]  # alice's three optin webhooks; bob's is not hers
    several = outbox.store_events([("alice", "optin_finalized", "{}", None),
                                   ("alice", "optout_finalized", "{}", None),
                                   ("bob", "optin_finalized", "{}", None),
                                   ("carol", "optin_finalized", "{}", None)], 2e9, 86400)
    assert [r[1] if isinstance(r, tuple) else r.args for r in several] == [
        3, 0, 1, ("carol",)]  # optout: inactive since 1e9, past the window: dropped


def test_a_query_whose_parameters_are_not_its_values_is_refused(two_accounts):
    # a constant folded into the SQL would be bound from the wrong value next time
    bad = Prepared(Account, lambda name: Account.select().where(
        (Account.username == name) & (Account.email == "a@example.com")))
    with pytest.raises(ValueError, match="parameters"):
        bad.rows("alice")
