"""Delivery end to end: a real ``soapservice serve``, webhooks managed over SOAP (zeep),
events in through ``POST /events`` and ``soapservice emit``, a real receiver on
127.0.0.1."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import threading

import pytest
import requests
import standardwebhooks
import zeep

from tests.browser import wait_for
from tests.conftest import PASSWORD, soapservice
from tests.support.receiver import Receiver

# A delivery timeout far over what a loaded machine takes to answer on 127.0.0.1: a
# timed-out attempt that did arrive is sent again, and the tests count requests.
FAST = {"SOAPSERVICE_RETRY_SCHEDULE": "0.2,0.2,0.2", "SOAPSERVICE_DELIVERY_TIMEOUT": "30"}
TOKEN = {"Authorization": "Bearer test-ingest-token"}


def post_event(srv, event, data, account="alice"):
    answer = requests.post(srv.url + "/events", headers=TOKEN,
                           json={"account": account, "event": event, "data": data})
    assert answer.status_code == 202, answer.text
    return answer.json()


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def soap(srv):
    return zeep.Client(srv.url + "/soap?wsdl").service


def inactive(client):
    """alice's first webhook once it is inactive, else None (for wait_for)."""
    state = client.GetWebHooks("alice", PASSWORD).result.WebHook[0]
    return None if state.active else state


def test_body_is_the_data_and_signature_verifies(make_server, receiver):
    srv = make_server(FAST)
    hook = soap(srv).CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                   receiver.url + "/in").result
    data = {"id": 371, "optinsetup_id": 60, "subscriber_id": 6049065,
            "fields": [{"id": 1, "value": "max.muster@example.com"}, {"id": 3, "value": "Max"}],
            "lists": [{"id": 1, "value": 1}], "activate_at": "2025-11-11 09:27:29",
            "note": "Grüße"}
    assert post_event(srv, "optin_finalized", data)["queued"] == 1
    receiver.wait_for(lambda: receiver.delivered(), what="the delivery")
    [request] = receiver.requests
    assert json.loads(request["body"]) == data
    headers = request["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["x-soapservice-event"] == "optin_finalized"
    assert headers["x-soapservice-app"] == "crm"
    assert headers["user-agent"].startswith("soapservice/")
    assert standardwebhooks.Webhook(hook.secret).verify(request["body"], headers) == data
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook("whsec_" + "QUJD" * 8).verify(request["body"], headers)


def test_retry_keeps_the_message_id(make_server):
    answers = iter([500, 200])
    with Receiver(lambda req: next(answers)) as receiver:
        srv = make_server(FAST)
        soap(srv).CreateWebHook("alice", PASSWORD, "crm", "optin_finalized", receiver.url)
        post_event(srv, "optin_finalized", {"subscriber_id": 1})
        receiver.wait_for(lambda: receiver.delivered(), what="the retry")
        first, second = receiver.requests
        assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
        hook = soap(srv).GetWebHooks("alice", PASSWORD).result.WebHook[0]
        assert hook.failureCount == 0 and hook.lastSuccessAt is not None


def test_order_per_subscriber_with_a_flaky_receiver(make_server):
    rng = random.Random(7)
    lock = threading.Lock()

    def flaky(req):
        with lock:
            return 503 if rng.random() < 1 / 3 else 200

    with Receiver(flaky) as receiver:
        srv = make_server({**FAST, "SOAPSERVICE_RETRY_SCHEDULE": "0.05,0.05,0.05,0.05,0.05,"
                           "0.05,0.05,0.05,0.05,0.05,0.05,0.05"})
        client = soap(srv)
        for event in ("optin_finalized", "optout_finalized", "profilemanager_finalized"):
            assert client.CreateWebHook("alice", PASSWORD, "crm", event,
                                        receiver.url + "/hook").error == 0
        sent = []
        events = ("optin_finalized", "profilemanager_finalized", "optout_finalized")
        for n in range(60):
            subscriber = n % 6
            post_event(srv, events[(n // 6) % 3], {"subscriber_id": subscriber, "n": n})
            sent.append((subscriber, n))
        receiver.wait_for(lambda: len({b["n"] for b in receiver.delivered()}) == 60,
                          timeout=60, what="all 60 events")
        for subscriber in range(6):
            got = [b["n"] for b in receiver.delivered() if b["subscriber_id"] == subscriber]
            assert got == sorted(got), f"subscriber {subscriber} out of order: {got}"
            assert got == [n for s, n in sent if s == subscriber]
        assert any(r["status"] == 503 for r in receiver.requests)


def test_deactivation_buffer_and_replay_in_order(make_server):
    receiver = Receiver().start()
    srv = make_server(FAST)
    client = soap(srv)
    hook = client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                receiver.url + "/in").result
    post_event(srv, "optin_finalized", {"subscriber_id": 1, "n": 0})
    receiver.wait_for(lambda: receiver.delivered(), what="first delivery")
    receiver.stop()
    for n in range(1, 6):
        post_event(srv, "optin_finalized", {"subscriber_id": n % 2, "n": n})
    state = wait_for(lambda: inactive(client), message="the deactivation")
    assert state.active is False and state.deactivatedAt is not None
    # Both subscribers' first events were attempted (no probing before a run of
    # failures), the one that used up the schedule 4 times (1 + 3 retries).
    assert 4 <= state.failureCount <= 8 and state.lastError == "connection refused"
    assert state.bufferedEvents == 5
    post_event(srv, "optin_finalized", {"subscriber_id": 1, "n": 6})  # in the window
    assert client.GetWebHooks("alice", PASSWORD).result.WebHook[0].bufferedEvents == 6
    notes = soapservice("notifications", "--account", "alice", env=srv.env).stdout
    assert f"webhook {hook.id}" in notes and "/reactivate/" in notes
    receiver.start()
    answer = client.ActivateWebHook("alice", PASSWORD, hook.id, 1)
    assert answer.error == 0 and answer.result.replayedEvents == 6
    assert answer.result.active is True and answer.result.failureCount == 0
    receiver.wait_for(lambda: len(receiver.delivered()) == 7, what="the replay")
    assert sorted(b["n"] for b in receiver.delivered()) == list(range(7))
    for subscriber in (0, 1):
        got = [b["n"] for b in receiver.delivered() if b["subscriber_id"] == subscriber]
        assert got == sorted(got)
    assert client.GetWebHooks("alice", PASSWORD).result.WebHook[0].bufferedEvents == 0
    receiver.stop()


def test_activate_without_replay_discards_the_buffer(make_server):
    """(The buffer window's end, and a delete stopping retries, are checked on a clock
    in tests/test_delivery_loop.py.)"""
    receiver = Receiver().start()
    srv = make_server(FAST)
    client = soap(srv)
    hook = client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                receiver.url).result
    receiver.stop()
    post_event(srv, "optin_finalized", {"subscriber_id": 1, "n": 1})
    wait_for(lambda: inactive(client), message="the deactivation")
    post_event(srv, "optin_finalized", {"subscriber_id": 1, "n": 2})
    state = client.GetWebHooks("alice", PASSWORD).result.WebHook[0]
    assert (state.active, state.bufferedEvents, state.droppedEvents) == (False, 2, 0)
    receiver.start()
    answer = client.ActivateWebHook("alice", PASSWORD, hook.id, 0)
    assert answer.error == 0 and answer.result.replayedEvents == 0
    post_event(srv, "optin_finalized", {"subscriber_id": 1, "n": 3})
    receiver.wait_for(lambda: receiver.delivered(), what="the new event")
    assert [b["n"] for b in receiver.delivered()] == [3]
    receiver.stop()


def test_delete_removes_undelivered(make_server):
    with Receiver(lambda req: 500) as receiver:
        srv = make_server({**FAST, "SOAPSERVICE_RETRY_SCHEDULE": "0.5,0.5,0.5,0.5"})
        client = soap(srv)
        hook = client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                    receiver.url).result
        post_event(srv, "optin_finalized", {"subscriber_id": 1})
        receiver.wait_for(lambda: receiver.requests, what="first attempt")
        assert client.DeleteWebHookById("alice", PASSWORD, hook.id).error == 0
        rows = sqlite3.connect(srv.db_path).execute("SELECT COUNT(*) FROM delivery").fetchone()
        assert rows == (0,)


def test_emit_command_and_deliveries_listing(make_server, receiver):
    srv = make_server(FAST)
    soap(srv).CreateWebHook("alice", PASSWORD, "crm", "optout_finalized", receiver.url)
    out = soapservice("emit", "--account", "alice", "optout_finalized",
                      '{"subscriber_id": 5}', env=srv.env).stdout
    assert "queued for 1 webhook" in out
    out = soapservice("emit", "--account", "alice", "optout_finalized", "-", env=srv.env,
                      input='{"subscriber_id": 6}').stdout
    assert "queued for 1 webhook" in out
    receiver.wait_for(lambda: len(receiver.delivered()) == 2, what="both events")
    assert sorted(b["subscriber_id"] for b in receiver.delivered()) == [5, 6]
    listing = soapservice("deliveries", "--account", "alice", env=srv.env).stdout
    assert listing.count(" 200 ") == 2
    for bad in (["emit", "--account", "alice", "bounce", "{}"],
                ["emit", "--account", "nobody", "optin_finalized", "{}"],
                ["emit", "--account", "alice", "optin_finalized", "[1]"],
                ["emit", "--account", "alice", "optin_finalized", "{not json"]):
        result = soapservice(*bad, env=srv.env, check=False)
        assert result.returncode != 0 and result.stderr.strip()


def test_events_endpoint_refuses_bad_requests(make_server):
    srv = make_server(FAST)
    url = srv.url + "/events"
    ok = {"account": "alice", "event": "optin_finalized", "data": {"subscriber_id": 1}}
    assert requests.post(url, json=ok).status_code == 401
    assert requests.post(url, json=ok, headers={"Authorization": "Bearer nope"}
                         ).status_code == 401
    for body, code in ((b"{not json", 400), (b"[1, 2]", 400),
                       (json.dumps({**ok, "event": "bounce"}).encode(), 400),
                       (json.dumps({**ok, "account": "mallory"}).encode(), 400),
                       (json.dumps({**ok, "data": [1]}).encode(), 400),
                       (json.dumps({**ok, "data": {"x": "a" * 300_000}}).encode(), 413)):
        answer = requests.post(url, data=body, headers=TOKEN)
        assert answer.status_code == code, (body[:40], answer.text)
        assert "error" in answer.json()
    count = sqlite3.connect(srv.db_path).execute("SELECT COUNT(*) FROM event").fetchone()
    assert count == (0,)


def test_events_endpoint_off_without_token(make_server):
    srv = make_server({"SOAPSERVICE_INGEST_TOKEN": ""})
    answer = requests.post(srv.url + "/events", json={}, headers=TOKEN)
    assert answer.status_code == 404 and "SOAPSERVICE_INGEST_TOKEN" in answer.text


def test_killed_while_delivering_then_restarted_delivers_everything(make_server):
    killed = threading.Event()

    def answer(req):
        if not killed.is_set():
            killed.wait(10)
            return None  # the sender is dead: this attempt never counts as delivered
        return 200

    with Receiver(answer) as receiver:
        srv = make_server({**FAST, "SOAPSERVICE_DELIVERY_TIMEOUT": "2"})
        soap(srv).CreateWebHook("alice", PASSWORD, "crm", "optin_finalized", receiver.url)
        for n in range(10):
            post_event(srv, "optin_finalized", {"subscriber_id": n % 3, "n": n})
        receiver.wait_for(lambda: receiver.connections, what="attempts in flight")
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        killed.set()
        srv.start()
        receiver.wait_for(lambda: {b["n"] for b in receiver.delivered()} == set(range(10)),
                          timeout=90, what="every event after the restart")
        for subscriber in range(3):
            firsts = list(dict.fromkeys(b["n"] for b in receiver.delivered()
                                        if b["subscriber_id"] == subscriber))
            assert firsts == sorted(firsts)


def test_a_receiver_answering_410_deactivates_the_webhook_at_the_first_attempt(make_server):
    receiver = Receiver(lambda req: 410).start()
    try:
        srv = make_server({**FAST, "SOAPSERVICE_RETRY_SCHEDULE": "0.05,0.05,0.05,0.05"})
        client = soap(srv)
        hook = client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                    receiver.url + "/gone").result
        post_event(srv, "optin_finalized", {"subscriber_id": 1, "n": 1})
        state = wait_for(lambda: inactive(client), message="the deactivation")
        assert state.active is False and state.lastError == "gone (410)"
        assert state.failureCount == 1 and state.bufferedEvents == 1
        post_event(srv, "optin_finalized", {"subscriber_id": 2, "n": 2})  # to the buffer
        threading.Event().wait(0.5)  # ten times the schedule: no retry came
        assert len(receiver.requests) == 1
        assert client.GetWebHooks("alice", PASSWORD).result.WebHook[0].bufferedEvents == 2
        notes = soapservice("notifications", "--account", "alice", env=srv.env).stdout
        assert f"webhook {hook.id}" in notes and "gone (410)" in notes
    finally:
        receiver.stop()


def test_a_503_with_retry_after_pauses_the_webhook(make_server):
    answers = iter([(503, {"Retry-After": "2"})])
    receiver = Receiver(lambda req: next(answers, 200)).start()
    try:
        srv = make_server({**FAST, "SOAPSERVICE_RETRY_SCHEDULE": "0.05,0.05,0.05"})
        client = soap(srv)
        client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                             receiver.url + "/busy")
        post_event(srv, "optin_finalized", {"subscriber_id": 1, "n": 1})
        receiver.wait_for(lambda: len(receiver.requests) == 1, what="the first attempt")
        post_event(srv, "optin_finalized", {"subscriber_id": 2, "n": 2})
        receiver.wait_for(lambda: len(receiver.delivered()) == 2, what="after the pause")
        first, *rest = receiver.requests
        # Retry-After: 2 (the schedule said 0.05 s): nothing went to the webhook before.
        assert all(r["at"] - first["at"] >= 1.9 for r in rest)
        assert sorted(b["n"] for b in receiver.delivered()) == [1, 2]
        # (the receiver holds the request before the service has its answer recorded)
        state = wait_for(lambda: next(
            (h for h in client.GetWebHooks("alice", PASSWORD).result.WebHook
             if h.failureCount == 0), None), message="the success recorded")
        assert state.active is True and state.failureCount == 0
    finally:
        receiver.stop()
