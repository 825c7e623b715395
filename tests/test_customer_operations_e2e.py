"""GetWebHookDeliveries and RotateWebHookSecret as a customer uses them, through zeep
against a real server and a real receiver (SPEC §7)."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime

import requests
import zeep
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from tests.conftest import PASSWORD, require_tool
from tests.support.receiver import Receiver

INGEST_TOKEN = "test-ingest-token"


def emit(srv, event, data):
    answer = requests.post(srv.url + "/events", json={
        "account": "alice", "event": event, "data": data},
        headers={"Authorization": f"Bearer {INGEST_TOKEN}"})
    assert answer.status_code == 202, answer.text


def verifies(secret: str, req: dict) -> bool:
    try:
        Verifier(secret).verify(req["body"], req["headers"])
        return True
    except WebhookVerificationError:
        return False


def run_php(srv, body: str) -> list[str]:
    """Lines printed by ``body`` run with a PHP SoapClient ``$client`` (WSDL mode,
    SOAP_SINGLE_ELEMENT_ARRAYS) and ``$auth`` for alice."""
    php = require_tool("php")
    script = (f"<?php $client = new SoapClient('{srv.url}/soap?wsdl', ['features' => "
              f"SOAP_SINGLE_ELEMENT_ARRAYS, 'cache_wsdl' => WSDL_CACHE_NONE]);\n"
              f"$auth = ['username' => 'alice', 'password' => '{PASSWORD}'];\n{body}\n")
    done = subprocess.run([php, "-r", script.removeprefix("<?php ")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stdout + done.stderr
    return done.stdout.splitlines()


def test_delivery_log_shows_each_attempt_and_the_receivers_answer(make_server):
    answers = iter([500, 503])
    receiver = Receiver(lambda req: next(answers, 200)).start()
    try:
        srv = make_server({"SOAPSERVICE_RETRY_SCHEDULE": "0.2,0.2,0.2"})
        client = zeep.Client(srv.url + "/soap?wsdl").service
        hook = client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                    receiver.url + "/hook").result
        emit(srv, "optin_finalized", {"subscriber_id": 7, "id": 1})
        receiver.wait_for(lambda: receiver.delivered(), what="the third attempt")
        log = wait_until(lambda: (found := client.GetWebHookDeliveries(
            "alice", PASSWORD, hook.id)).result and found.result.Delivery[0].state ==
            "delivered" and found, "the delivery recorded as delivered")
        assert log.error == 0
        (delivery,) = log.result.Delivery
        assert delivery.state == "delivered" and delivery.event == "optin_finalized"
        assert delivery.subscriberId == "7" and delivery.attemptCount == 3
        assert delivery.messageId == receiver.requests[0]["headers"]["webhook-id"]
        assert delivery.lastStatus == 200 and delivery.deliveredAt is not None
        attempts = delivery.attempts.Attempt
        assert [a.status for a in attempts] == [200, 503, 500]  # newest first
        assert all(a.durationMs >= 0 and a.at.tzinfo is not None for a in attempts)
        assert attempts[2].error is None  # an answer: its status says what went wrong
        assert [a.responseSnippet for a in attempts] == ["ok", "ok", "ok"]  # the body

        # Filters, paging and bad values.
        assert client.GetWebHookDeliveries("alice", PASSWORD, hook.id,
                                           state="pending").result is None
        emit(srv, "optin_finalized", {"subscriber_id": 8})
        receiver.wait_for(lambda: len(receiver.delivered()) == 2, what="the second event")
        newest = client.GetWebHookDeliveries("alice", PASSWORD, hook.id, limit=1).result
        assert [d.subscriberId for d in newest.Delivery] == ["8"]
        older = client.GetWebHookDeliveries("alice", PASSWORD, hook.id,
                                            beforeId=newest.Delivery[0].id).result
        assert [d.subscriberId for d in older.Delivery] == ["7"]
        assert client.GetWebHookDeliveries("alice", PASSWORD, hook.id, limit=501).error == 6
        assert client.GetWebHookDeliveries("alice", PASSWORD, hook.id,
                                           state="lost").error == 6
        assert client.GetWebHookDeliveries("alice", PASSWORD, 10**6).error == 5
        assert client.GetWebHookDeliveries("alice", "wrong", hook.id).error == 1
        # PHP SoapClient reads the same log.
        php_log = run_php(srv, f"""
            $log = $client->GetWebHookDeliveries($auth + ['webhookId' => {hook.id}])
                          ->GetWebHookDeliveriesResult;
            foreach ($log->result->Delivery as $d) {{
                echo $d->state;
                foreach ($d->attempts->Attempt as $a) {{
                    echo ' ', $a->status, ':', $a->responseSnippet;
                }}
                echo "\\n";
            }}""")
        assert php_log == ["delivered 200:ok", "delivered 200:ok 503:ok 500:ok"]
        # The JSON mirror answers the same log.
        mirrored = requests.post(srv.url + "/json/GetWebHookDeliveries", data={
            "username": "alice", "password": PASSWORD, "webhookId": hook.id}).json()
        assert [d["state"] for d in mirrored["result"]] == ["delivered", "delivered"]
        assert [a["status"] for a in mirrored["result"][1]["attempts"]] == [200, 503, 500]
    finally:
        receiver.stop()


def test_rotated_secret_signs_beside_the_old_one_in_the_grace_period(make_server):
    receiver = Receiver().start()
    try:
        srv = make_server()
        client = zeep.Client(srv.url + "/soap?wsdl").service
        hook = client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                    receiver.url + "/hook").result
        old = hook.secret
        rotated = client.RotateWebHookSecret("alice", PASSWORD, hook.id, graceSeconds=600)
        assert rotated.error == 0 and rotated.result.id == hook.id
        new = rotated.result.secret
        assert new.startswith("whsec_") and new != old
        listed = client.GetWebHooks("alice", PASSWORD).result.WebHook
        assert [h.secret for h in listed] == [new]

        # In the grace: signed both ways. After it, only the new secret signs: on a
        # clock in tests/test_delivery_log.py and tests/test_delivery_loop.py.
        emit(srv, "optin_finalized", {"subscriber_id": 1})
        receiver.wait_for(lambda: len(receiver.delivered()) == 1, what="delivery in grace")
        during = receiver.requests[0]
        assert len(during["headers"]["webhook-signature"].split(" ")) == 2
        assert verifies(new, during) and verifies(old, during)

        assert client.RotateWebHookSecret("alice", PASSWORD, hook.id,
                                          graceSeconds=604801).error == 6
        assert client.RotateWebHookSecret("alice", PASSWORD, 10**6).error == 5
        again = client.RotateWebHookSecret("alice", PASSWORD, hook.id, graceSeconds=0)
        assert again.error == 0 and again.result.secret not in (old, new)
        assert datetime.now(UTC) >= again.result.created
    finally:
        receiver.stop()


def test_test_webhook_answers_the_receivers_status_and_counts_nothing(make_server):
    status = {"now": 503}
    receiver = Receiver(lambda req: status["now"]).start()
    try:
        srv = make_server()
        client = zeep.Client(srv.url + "/soap?wsdl").service
        hook = client.CreateWebHook("alice", PASSWORD, "crm", "optout_finalized",
                                    receiver.url + "/hook").result
        failed = client.TestWebHook("alice", PASSWORD, hook.id)
        assert failed.error == 0
        assert failed.result.status == 503 and failed.result.error == "HTTP 503"
        assert failed.result.durationMs >= 0 and failed.result.messageId.startswith("msg_")
        (sent,) = receiver.requests  # synchronous: it arrived before the answer
        assert sent["headers"]["x-soapservice-test"] == "1"
        assert sent["headers"]["x-soapservice-event"] == "optout_finalized"
        assert sent["headers"]["webhook-id"] == failed.result.messageId
        assert verifies(hook.secret, sent)
        body = json.loads(sent["body"])
        assert body["subscriber_id"] == 6049065 and body["fields"][0]["id"] == 1
        status["now"] = 200
        ok = client.TestWebHook("alice", PASSWORD, hook.id).result
        assert ok.status == 200 and ok.error is None
        assert run_php(srv, f"""
            $t = $client->TestWebHook($auth + ['webhookId' => {hook.id}])->TestWebHookResult;
            echo $t->error, ' ', $t->result->status, ' ', $t->result->error ?? 'none';""") \
            == ["0 200 none"]
        (listed,) = client.GetWebHooks("alice", PASSWORD).result.WebHook
        assert listed.failureCount == 0 and listed.active and listed.lastFailureAt is None
        assert client.GetWebHookDeliveries("alice", PASSWORD, hook.id).result is None
        assert client.TestWebHook("alice", PASSWORD, 10**6).error == 5
        answers = [client.TestWebHook("alice", PASSWORD, hook.id).error for _ in range(8)]
        assert answers == [0] * 7 + [8]  # the 11th test within a minute is throttled
    finally:
        receiver.stop()


def test_test_webhook_passes_the_target_guard(make_server):
    """A webhook stored with a loopback URL (as one created before the guard was
    tightened) is refused at test time as at delivery time: no request leaves."""
    import sqlite3
    receiver = Receiver().start()
    try:
        srv = make_server({"SOAPSERVICE_ALLOW_PRIVATE_TARGETS": "0"})
        with sqlite3.connect(srv.db_path) as db:
            (account_id,) = db.execute("SELECT id FROM account WHERE username = 'alice'"
                                       ).fetchone()
            db.execute("INSERT INTO webhook (account_id, app, event, url, secret, active, "
                       "created_at, deactivations, failure_count, dropped_events) "
                       "VALUES (?, 'crm', 'optin_finalized', ?, ?, 1, ?, 0, 0, 0)",
                       (account_id, receiver.url + "/hook", "whsec_" + "A" * 32, time.time()))
        client = zeep.Client(srv.url + "/soap?wsdl").service
        (hook,) = client.GetWebHooks("alice", PASSWORD).result.WebHook
        tested = client.TestWebHook("alice", PASSWORD, hook.id)
        assert tested.error == 0 and tested.result.status is None
        assert "refused" in tested.result.error.lower() or "not allowed" in \
            tested.result.error.lower(), tested.result.error
        assert receiver.requests == []
    finally:
        receiver.stop()


def wait_until(check, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_get_webhooks_shows_the_opt_out_held_behind_a_buffered_opt_in(make_server):
    """SPEC §7: the opt-in webhook is deactivated with subscriber 5's opt-in buffered;
    the opt-out of subscriber 5 on the active opt-out webhook at the same URL waits
    (heldEvents=1 on the opt-out webhook) and goes out after the replayed opt-in."""
    status = {"code": 500}
    receiver = Receiver(lambda req: status["code"]).start()
    try:
        srv = make_server({"SOAPSERVICE_RETRY_SCHEDULE": "0.05,0.05,0.05"})
        client = zeep.Client(srv.url + "/soap?wsdl").service
        url = receiver.url + "/hook"
        optin = client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized", url).result
        optout = client.CreateWebHook("alice", PASSWORD, "crm", "optout_finalized",
                                      url).result
        emit(srv, "optin_finalized", {"subscriber_id": 5, "n": 1})

        def listed():
            return {h.id: h for h in client.GetWebHooks("alice", PASSWORD).result.WebHook}
        wait_until(lambda: not listed()[optin.id].active, "the opt-in's deactivation")
        status["code"] = 200
        emit(srv, "optout_finalized", {"subscriber_id": 5, "n": 2})
        emit(srv, "optout_finalized", {"subscriber_id": 6, "n": 3})  # not held
        receiver.wait_for(lambda: any(json.loads(r["body"])["n"] == 3
                                      for r in receiver.requests), what="subscriber 6")
        hooks = listed()
        assert hooks[optout.id].heldEvents == 1 and hooks[optout.id].active is True
        assert hooks[optin.id].heldEvents == 0 and hooks[optin.id].bufferedEvents == 1
        assert not any(json.loads(r["body"])["n"] == 2 for r in receiver.requests)

        assert client.ActivateWebHook("alice", PASSWORD, optin.id, 1).error == 0
        receiver.wait_for(lambda: any(json.loads(r["body"])["n"] == 2
                                      for r in receiver.requests), what="the opt-out")
        order = [json.loads(r["body"])["n"] for r in receiver.requests]
        assert order.index(2) > max(i for i, n in enumerate(order) if n == 1)
        assert listed()[optout.id].heldEvents == 0
    finally:
        receiver.stop()


def test_resend_sends_events_again_in_order_with_their_webhook_ids(make_server):
    """SPEC §7 ResendWebHookEvents: delivered and failed events go again, in event
    order, each after what is still queued for its subscriber, with the webhook-id the
    receiver saw the first time."""
    failing = {4}  # event n=4 fails until the receiver is fixed
    receiver = Receiver(lambda req: 503 if json.loads(req["body"])["n"] in failing
                        else 200).start()
    try:
        srv = make_server({"SOAPSERVICE_RETRY_SCHEDULE": "1,1,1,1"})
        client = zeep.Client(srv.url + "/soap?wsdl").service
        hook = client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                    receiver.url + "/hook").result
        since = datetime.now(UTC)
        for n, subscriber in ((1, 1), (2, 1), (3, 2)):
            emit(srv, "optin_finalized", {"subscriber_id": subscriber, "n": n})
        receiver.wait_for(lambda: len(receiver.delivered()) == 3, what="three deliveries")
        emit(srv, "optin_finalized", {"subscriber_id": 1, "n": 4})
        receiver.wait_for(lambda: len(receiver.requests) == 4, what="n=4 failing")
        first_ids = {json.loads(r["body"])["n"]: r["headers"]["webhook-id"]
                     for r in receiver.requests}
        failing.clear()  # the receiver is fixed
        answer = client.ResendWebHookEvents("alice", PASSWORD, hook.id, since=since)
        assert answer.error == 0 and answer.result == 4, answer
        receiver.wait_for(lambda: len(receiver.delivered()) == 8, what="the resend")
        later = receiver.requests[4:]
        got = [(json.loads(r["body"])["subscriber_id"], json.loads(r["body"])["n"])
               for r in later]
        # subscriber 1: the pending retry of 4 first, then 1, 2, 4 again; subscriber 2: 3
        assert [n for s, n in got if s == 1] == [4, 1, 2, 4]
        assert [n for s, n in got if s == 2] == [3]
        for r in later:
            assert r["headers"]["webhook-id"] == first_ids[json.loads(r["body"])["n"]]
        log = client.GetWebHookDeliveries("alice", PASSWORD, hook.id).result.Delivery
        assert sorted(d.messageId for d in log) == sorted(
            [first_ids[n] for n in (1, 2, 3, 4)] * 2)

        # One event only; bad values; an inactive webhook.
        event_id = [d.eventId for d in log if d.messageId == first_ids[3]][-1]
        assert client.ResendWebHookEvents("alice", PASSWORD, hook.id, event_id).result == 1
        wide = client.ResendWebHookEvents("alice", PASSWORD, hook.id,
                                          since=datetime(2026, 1, 1, tzinfo=UTC),
                                          until=datetime(2026, 2, 1, tzinfo=UTC))
        assert wide.error == 6 and "14 days" in wide.message
        assert client.ResendWebHookEvents("alice", PASSWORD, 999).error == 5
        assert client.ResendWebHookEvents("alice", PASSWORD, hook.id,
                                          until=datetime(2000, 1, 1, tzinfo=UTC)).result == 0
    finally:
        receiver.stop()
