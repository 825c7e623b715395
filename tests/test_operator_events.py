"""Operator events at the operator's receiver, as an operator lives them: a customer's
receiver goes down and comes back; webhook.failing, .deactivated, .reactivated and
.recovered arrive once each, in order, signed, through the outbox (one ``serve`` on
SQLite; ``serve --no-delivery`` and two workers on PostgreSQL). The rules (dropping,
hiding the system account, the audit trail) are checked in-process."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from standardwebhooks import Webhook as Verifier

from soapservice import auth
from soapservice.api import WebhookAPI
from soapservice.config import ConfigError, Settings, load_settings
from soapservice.ingest import emit
from soapservice.models import OperatorEvent, Webhook
from soapservice.store import accounts, operator, operator_events, outbox, webhooks
from tests import pgstore
from tests.conftest import PASSWORD, Server, free_port, soapservice
from tests.support.receiver import Receiver
from tests.support.server import Worker

SECRET = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"
DAY = 86400.0


def types(receiver) -> list[str]:
    return [body["type"] for body in receiver.delivered()]


def _outage_and_recovery(srv, operator_receiver, customer):
    """Create a webhook, let its receiver fail a whole schedule, fix it, find and
    reactivate it as the operator (no customer password), wait for the replay."""
    answer = requests.post(f"{srv.url}/json/CreateWebHook", timeout=30, data={
        "username": "alice", "password": PASSWORD, "app": "crm",
        "event": "optin_finalized", "url": customer.url}).json()
    assert answer["error"] == 0, answer
    hook_id = answer["result"]["id"]
    # The outage. webhook.deactivated counts the events queued when the schedule runs
    # out; answered 500 at once, the first event's three attempts (0.2 s apart) could
    # all fail before the second POST was committed on a loaded machine (it then says
    # 1). So the receiver holds its answers until both events are in, then fails them.
    both_in = threading.Event()

    def outage(req):
        both_in.wait(60)
        return 500

    customer.answer = outage
    try:
        for n in (1, 2):
            r = requests.post(f"{srv.url}/events", timeout=30,
                              headers={"Authorization": "Bearer test-ingest-token"},
                              json={"account": "alice", "event": "optin_finalized",
                                    "data": {"subscriber_id": n}})
            assert r.status_code in (200, 202), r.text
    finally:
        both_in.set()
    operator_receiver.wait_for(lambda: "webhook.deactivated" in types(operator_receiver),
                               what="webhook.deactivated")
    customer.answer = lambda req: 200  # fixed
    failing = json.loads(soapservice("webhooks", "--failing", "--json", env=srv.env).stdout)
    assert [(row["id"], row["state"]) for row in failing] == [(hook_id, "inactive")]
    out = soapservice("activate", str(hook_id), "--replay", env=srv.env).stdout
    assert "2 buffered events queued for replay" in out
    operator_receiver.wait_for(lambda: "webhook.recovered" in types(operator_receiver),
                               what="webhook.recovered")
    customer.wait_for(lambda: len(customer.delivered()) == 2, what="the replay")
    return hook_id


def _check_operator_events(operator_receiver, hook_id, srv):
    time.sleep(0.5)  # anything sent twice would arrive by now (retries are 0.2 s)
    assert types(operator_receiver) == ["webhook.created", "webhook.failing",
                                        "webhook.deactivated", "webhook.reactivated",
                                        "webhook.recovered"]
    verifier = Verifier(SECRET)
    for request in operator_receiver.requests:
        verifier.verify(request["body"], request["headers"])  # raises when unsigned
    by_type = {body["type"]: body["data"] for body in operator_receiver.delivered()}
    for data in by_type.values():
        assert data["account"] == "alice" and data["webhookId"] == hook_id
    assert by_type["webhook.deactivated"]["bufferedEvents"] == 2
    assert by_type["webhook.reactivated"]["replayedEvents"] == 2
    assert by_type["webhook.failing"]["lastError"] == "HTTP 500"
    # The audit trail holds the same, newest first.
    lines = soapservice("audit", "--account", "alice", "--json", env=srv.env).stdout
    assert [json.loads(line)["type"] for line in lines.splitlines()] == \
        list(reversed(types(operator_receiver)))
    # The operator's own webhook is nobody's customer webhook.
    listed = json.loads(soapservice("webhooks", "--json", env=srv.env).stdout)
    assert [row["id"] for row in listed] == [hook_id]
    assert "~operator" not in soapservice("account", "list", env=srv.env).stdout


# The delivery timeout is over the POSTs' 30 s: a held attempt (above) never times out
# before both events are in, and an answer slowed by a loaded machine is no failure
# (a timed-out delivery that did arrive is sent again: an event twice).
OPERATOR_ENV = {"SOAPSERVICE_RETRY_SCHEDULE": "0.2,0.2", "SOAPSERVICE_DELIVERY_TIMEOUT": "60",
                "SOAPSERVICE_OPERATOR_WEBHOOK_SECRET": SECRET}


@pytest.mark.slow
def test_an_outage_reaches_the_operator_once_each(make_server):
    with Receiver() as operator_receiver, Receiver() as customer:
        srv = make_server({**OPERATOR_ENV,
                           "SOAPSERVICE_OPERATOR_WEBHOOK_URL": operator_receiver.url})
        hook_id = _outage_and_recovery(srv, operator_receiver, customer)
        _check_operator_events(operator_receiver, hook_id, srv)


@pytest.mark.slow
@pytest.mark.server
def test_an_outage_reaches_the_operator_once_each_with_two_workers(tmp_path, pg_database):
    if pg_database is None:
        pytest.skip("set SOAPSERVICE_TEST_DATABASE_URL to a PostgreSQL server")
    pgstore.empty(pg_database)
    with Receiver() as operator_receiver, Receiver() as customer:
        (tmp_path / "serve").mkdir()
        srv = Server(tmp_path / "serve", {
            **OPERATOR_ENV, "SOAPSERVICE_DATABASE_URL": pg_database,
            "SOAPSERVICE_DELIVERY": "0",
            "SOAPSERVICE_OPERATOR_WEBHOOK_URL": operator_receiver.url})
        workers = []
        try:
            srv.add_account("alice", PASSWORD)
            srv.start()
            workers = [Worker(srv.env, tmp_path / f"worker{i}.log", free_port())
                       for i in range(2)]
            for w in workers:
                w.wait_started()
            hook_id = _outage_and_recovery(srv, operator_receiver, customer)
            _check_operator_events(operator_receiver, hook_id, srv)
            # Both workers delivered (the operator's events went through the shared
            # outbox, not through one process's memory).
            attempts = [w.metrics() for w in workers]
            assert all('soapservice_delivery_attempts_total{outcome="success"}' in m
                       for m in attempts)
        finally:
            for w in workers:
                w.stop()
            srv.stop()


# -- rules, in-process ------------------------------------------------------------------
def hook(account, event="optin_finalized", url="http://r.example/"):
    return webhooks.create(account.id, "crm", event, url, "whsec_" + "A" * 32, 100)


def kinds(webhook_id=None):
    query = OperatorEvent.select().order_by(OperatorEvent.id)
    if webhook_id is not None:
        query = query.where(OperatorEvent.webhook_id == webhook_id)
    return [row.kind for row in query]


def fail_all(now, schedule=()):
    claims = outbox.claim_due("t", now, 30, 100, {}, 100)
    outbox.record_outcomes([outbox.Outcome(c.delivery_id, c.token, c.webhook_id, 503, None,
                                           1.0) for c in claims], now, schedule, lambda: 0.5)
    return claims


def test_dropping_is_reported_once_per_deactivation(alice):
    now = time.time()
    h = hook(alice)
    emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=DAY, now=now)
    fail_all(now)
    for n in range(3):  # after the buffer window: dropped
        emit("alice", "optin_finalized", {"subscriber_id": n}, window_sec=DAY,
             now=now + 2 * DAY)
    assert kinds(h.id) == ["webhook.created", "webhook.failing", "webhook.deactivated",
                           "webhook.dropping"]
    [drop] = OperatorEvent.select().where(OperatorEvent.kind == "webhook.dropping")
    assert json.loads(drop.data)["data"]["droppedEvents"] == 1
    # Reactivated and deactivated again: a new deactivation drops anew.
    webhooks.activate(alice.id, h.id, replay=False, now=now + 3 * DAY)
    emit("alice", "optin_finalized", {"subscriber_id": 9}, window_sec=DAY, now=now + 3 * DAY)
    fail_all(now + 3 * DAY)
    emit("alice", "optin_finalized", {"subscriber_id": 9}, window_sec=DAY, now=now + 5 * DAY)
    emit("alice", "optin_finalized", {"subscriber_id": 9}, window_sec=DAY, now=now + 5 * DAY)
    assert kinds(h.id)[4:] == ["webhook.reactivated", "webhook.failing",
                               "webhook.deactivated", "webhook.dropping"]


def test_failing_and_recovered_once_per_transition(alice):
    now = time.time()
    h = hook(alice)
    emit("alice", "optin_finalized", {"subscriber_id": 1}, window_sec=DAY, now=now)
    for step in range(3):  # three failed attempts: one failing
        fail_all(now + step * 100, schedule=(1.0, 1.0, 1.0, 1.0))
    assert kinds(h.id) == ["webhook.created", "webhook.failing"]
    for n in (2, 3):  # two successes after the failures: one recovered
        [c] = outbox.claim_due("t", now + 1000 * n, 30, 100, {}, 100)
        outbox.record_outcomes([outbox.Outcome(c.delivery_id, c.token, h.id, 200, None, 1.0)],
                               now + 1000 * n, (1.0,), lambda: 0.5)
        emit("alice", "optin_finalized", {"subscriber_id": n}, window_sec=DAY,
             now=now + 1000 * n)
    assert kinds(h.id) == ["webhook.created", "webhook.failing", "webhook.recovered"]
    [recovered] = OperatorEvent.select().where(OperatorEvent.kind == "webhook.recovered")
    assert json.loads(recovered.data)["data"]["failuresBefore"] == 3


def test_created_deleted_and_the_hidden_system_webhook(alice):
    now = time.time()
    system_id = operator_events.configure("http://ops.example/hook", SECRET, now)
    h = hook(alice)
    webhooks.rotate_secret(alice.id, h.id, "whsec_" + "B" * 32, 3600, now=now)
    webhooks.delete(alice.id, h.id)
    assert kinds() == ["webhook.created", "webhook.secret_rotated", "webhook.deleted"]
    rotated = OperatorEvent.get(OperatorEvent.kind == "webhook.secret_rotated")
    assert json.loads(rotated.data)["data"]["graceSeconds"] == 3600
    assert "whsec_" not in rotated.data  # no secret in an operator event
    # Each went into the outbox for the operator's webhook, in order, signed with its
    # secret when claimed.
    claims = outbox.claim_due("t", now + 1, 30, 100, {}, 100)
    assert [c.webhook_id for c in claims] == [system_id]  # one at a time per webhook
    assert json.loads(claims[0].body)["type"] == "webhook.created"
    assert claims[0].secret == SECRET and claims[0].url == "http://ops.example/hook"
    # Hidden: no login, not in the account list, listings or queue, no limit used.
    system = accounts.find(operator_events.SYSTEM_ACCOUNT)
    assert not auth.verify_password("", system.password_hash)
    assert not auth.verify_password("!", system.password_hash)
    assert [a.username for a in accounts.all_accounts()] == ["alice"]
    assert operator.list_webhooks() == []
    assert [row.account for row in operator.queue(now)] == ["alice"]
    with pytest.raises(operator.UnknownAccount):
        operator.erase_subscriber(operator_events.SYSTEM_ACCOUNT, "1")
    with pytest.raises(operator.UnknownWebhook):
        operator.activate(system_id, replay=True)
    api = WebhookAPI(Settings(max_webhooks_per_account=1))
    assert api._create(alice, "crm", "optin_finalized", "http://93.184.215.14/").error == 0
    # Reconfigured: a new URL takes over; no URL removes it and its backlog.
    assert operator_events.configure("http://ops2.example/", SECRET, now) == system_id
    assert Webhook.get_by_id(system_id).url == "http://ops2.example/"
    assert operator_events.configure(None, None, now) is None
    assert Webhook.get_or_none(Webhook.id == system_id) is None
    assert operator_events.backlog() == 0


def test_no_operator_url_still_keeps_the_audit_trail(alice, store_url, monkeypatch,
                                                      capsys):
    from soapservice import cli
    h = hook(alice)
    webhooks.activate(alice.id, h.id, replay=False)  # active already: no event
    assert kinds() == ["webhook.created"]
    assert operator_events.backlog() == 0
    monkeypatch.setenv("SOAPSERVICE_DATABASE_URL", store_url)
    assert cli.main(["audit"]) == 0
    out = capsys.readouterr().out
    assert "webhook.created" in out and "alice" in out and f"webhook {h.id}" in out
    with pytest.raises(SystemExit):
        cli.main(["audit", "--kind", "webhook.exploded"])
    assert "unknown kind" in capsys.readouterr().err


@pytest.mark.parametrize("env, message", [
    ({"SOAPSERVICE_OPERATOR_WEBHOOK_URL": "http://ops/"}, "needs SOAPSERVICE_OPERATOR_WEBHOOK"),
    ({"SOAPSERVICE_OPERATOR_WEBHOOK_URL": "ftp://ops/", "SOAPSERVICE_OPERATOR_WEBHOOK_SECRET":
      SECRET}, "expected an http"),
    ({"SOAPSERVICE_OPERATOR_WEBHOOK_SECRET": "hunter2"}, "expected whsec_"),
])
def test_operator_settings_are_checked(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)
