"""Secrets never reach the server log (issue 5): with deliveries flowing, a webhook
deactivated (its notification logged), wrong ingest tokens and failed logins, the log
holds no webhook secret, no reactivation-token key, no ingest token, no password."""

import base64
import sqlite3

import requests
import zeep

from tests.browser import wait_for
from tests.conftest import PASSWORD
from tests.support.receiver import Receiver

INGEST_TOKEN = "test-ingest-token"  # tests.conftest.Server's


def test_no_secret_in_the_log(make_server):
    receiver = Receiver(lambda req: 200 if req["path"] == "/ok" else 500).start()
    try:
        srv = make_server({"SOAPSERVICE_RETRY_SCHEDULE": "0.1,0.1",
                           "SOAPSERVICE_DELIVERY_TIMEOUT": "30"})  # no timeout at load
        client = zeep.Client(srv.url + "/soap?wsdl").service
        good = client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                    receiver.url + "/ok").result
        bad = client.CreateWebHook("alice", PASSWORD, "crm", "optout_finalized",
                                   receiver.url + "/bad").result
        for event in ("optin_finalized", "optout_finalized"):
            answer = requests.post(srv.url + "/events", json={
                "account": "alice", "event": event, "data": {"subscriber_id": 1}},
                headers={"Authorization": f"Bearer {INGEST_TOKEN}"})
            assert answer.status_code == 202
        # Noise that might tempt a log line: a wrong ingest token, a wrong password.
        assert requests.post(srv.url + "/events", json={}, headers={
            "Authorization": f"Bearer {INGEST_TOKEN}-wrong"}).status_code == 401
        assert client.GetWebHooks("alice", PASSWORD + "-wrong").error == 1
        receiver.wait_for(lambda: receiver.delivered("/ok"), what="the good delivery")
        def deactivated():  # the bad webhook uses up its schedule and is deactivated
            hooks = {h.id: h for h in client.GetWebHooks("alice", PASSWORD).result.WebHook}
            return None if hooks[bad.id].active else hooks

        hooks = wait_for(deactivated, message="the bad webhook's deactivation")
        assert hooks[bad.id].active is False and hooks[good.id].active is True
        assert "deactivated" in srv.log()  # the notification was logged ...

        with sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True) as db:
            keys = [bytes.fromhex(v) for (v,) in db.execute("SELECT value FROM setting")
                    if all(c in "0123456789abcdef" for c in v) and len(v) >= 32]
        assert keys, "no server key in the store"
        log = srv.log()
        secrets = [good.secret, bad.secret, good.secret.removeprefix("whsec_"),
                   bad.secret.removeprefix("whsec_"), INGEST_TOKEN, PASSWORD]
        for key in keys:
            secrets += [key.hex(), base64.b64encode(key).decode(),
                        base64.urlsafe_b64encode(key).decode().rstrip("=")]
        for secret in secrets:
            assert secret not in log, f"a secret is in the log: {secret[:6]}..."
    finally:
        receiver.stop()
