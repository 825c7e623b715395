"""What a newcomer meets first: a port in use, the index page, a mistyped JSON
operation, a positional PHP call on /soap, a retried CreateWebHook, the events counter."""

from __future__ import annotations

import subprocess
import sys

import requests
from twisted.internet.testing import MemoryReactorClock

from soapservice import metrics
from soapservice.config import Settings
from soapservice.store import Store, webhooks
from tests.conftest import PASSWORD
from tests.support.doubles import ManualRunner
from tests.support.receiver import Receiver


def test_serve_on_a_port_in_use_exits_with_one_line(make_server):
    srv = make_server()
    proc = subprocess.run([sys.executable, "-m", "soapservice", "serve"], env=srv.env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines() == [
        f"soapservice: cannot listen on 127.0.0.1:{srv.port}: address already in use"]
    assert requests.get(srv.url + "/healthz", timeout=10).status_code == 200  # untouched


def test_the_start_page_lists_the_endpoints(make_server):
    srv = make_server()
    page = requests.get(srv.url + "/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for link in ("/soap?wsdl", "/soap12?wsdl", "/webservice/webservice/soap3?wsdl", "/demo",
                 "/healthz", "/metrics"):
        assert f'href="{link}"' in page.text, link
        assert requests.get(srv.url + link, timeout=10).status_code == 200, link
    for name in ("/json/&lt;Operation&gt;", "POST /events", "/reactivate/&lt;token&gt;"):
        assert name in page.text


def test_unknown_json_operations_answer_the_json_envelope(make_server):
    srv = make_server()
    unknown = requests.post(f"{srv.url}/json/NoSuchThing", timeout=10,
                            data={"username": "alice", "password": PASSWORD})
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/json")
    body = unknown.json()
    assert body["error"] == 6
    assert body["message"].startswith("Unknown operation 'NoSuchThing'")
    assert "CreateWebHook" in body["message"] and "DeleteWebHookById" in body["message"]
    lower = requests.get(f"{srv.url}/json/getwebhooks", timeout=10)
    assert lower.status_code == 404
    assert lower.json()["error"] == 6
    assert "did you mean GetWebHooks?" in lower.json()["message"]
    for path in ("/json", "/json/"):
        bare = requests.get(srv.url + path, timeout=10)
        assert bare.status_code == 404 and bare.json()["error"] == 6, path
    # The real names still work.
    known = requests.get(f"{srv.url}/json/GetWebHooks", timeout=10,
                         params={"username": "alice", "password": PASSWORD})
    assert known.status_code == 200 and known.json()["error"] == 0


def _soap(srv, body: str) -> requests.Response:
    """``body`` as PHP's SoapClient without WSDL sends it (rpc style, param0...)."""
    envelope = ('<?xml version="1.0" encoding="UTF-8"?>'
                '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" '
                'xmlns:ns1="urn:soapservice:webhooks:1" '
                'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
                'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
                f'<SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>')
    return requests.post(srv.url + "/soap", data=envelope.encode(), timeout=10,
                         headers={"Content-Type": "text/xml; charset=utf-8",
                                  "SOAPAction": '"CreateWebHook"'})


def test_positional_calls_on_soap_are_sent_to_the_legacy_endpoint(make_server):
    srv = make_server()
    answer = _soap(srv, '<ns1:CreateWebHook><param0 xsi:type="xsd:string">alice</param0>'
                        f'<param1 xsi:type="xsd:string">{PASSWORD}</param1>'
                        '<param2 xsi:type="xsd:string">crm</param2>'
                        '<param3 xsi:type="xsd:string">optin_finalized</param3>'
                        '<param4 xsi:type="xsd:string">http://127.0.0.1:9/</param4>'
                        '</ns1:CreateWebHook>')
    assert answer.status_code == 200, answer.text
    error, message = _envelope(answer)
    assert error == "2"
    assert message.startswith("Missing required parameter: username (positional callers")
    assert "belong on /webservice/webservice/soap3" in message
    # A named call that forgot the username is told only that.
    named = _soap(srv, f'<ns1:CreateWebHook><ns1:password>{PASSWORD}</ns1:password>'
                       '</ns1:CreateWebHook>')
    assert _envelope(named) == ("2", "Missing required parameter: username")


def _envelope(answer) -> tuple[str, str]:
    from lxml import etree
    root = etree.fromstring(answer.content)
    return (root.xpath("string(//*[local-name()='error'])"),
            root.xpath("string(//*[local-name()='message'])"))


def _create(srv, url):
    return requests.post(f"{srv.url}/json/CreateWebHook", timeout=30, data={
        "username": "alice", "password": PASSWORD, "app": "crm",
        "event": "optin_finalized", "url": url}).json()


def test_a_retried_create_returns_the_first_webhook_and_delivers_once(make_server):
    with Receiver() as receiver:
        srv = make_server()
        first = _create(srv, receiver.url + "/hook")
        again = _create(srv, receiver.url + "/hook")
        assert first["error"] == 0 and again["error"] == 0, (first, again)
        assert again["result"]["id"] == first["result"]["id"]
        assert again["result"]["secret"] == first["result"]["secret"]
        assert f"webhook {first['result']['id']} exists already" in again["message"]
        other = _create(srv, receiver.url + "/other")  # another URL is another webhook
        assert other["result"]["id"] != first["result"]["id"]
        listed = requests.get(f"{srv.url}/json/GetWebHooks", timeout=30, params={
            "username": "alice", "password": PASSWORD}).json()["result"]
        assert len(listed) == 2
        answer = requests.post(f"{srv.url}/events", timeout=30, headers={
            "Authorization": "Bearer test-ingest-token"}, json={
            "account": "alice", "event": "optin_finalized", "data": {"n": 1}})
        assert answer.json()["queued"] == 2
        receiver.wait_for(lambda: len(receiver.requests) == 2, what="2 deliveries")
        assert sorted(r["path"] for r in receiver.requests) == ["/hook", "/other"]


def test_duplicate_check_is_per_account_app_and_event(alice):
    from soapservice import auth
    from soapservice.store import accounts
    bob = accounts.add("bob", auth.hash_password("pw", n=2**4))
    hook = webhooks.create(alice.id, "crm", "optin_finalized", "http://r/", "whsec_a", 100)
    try:
        webhooks.create(alice.id, "crm", "optin_finalized", "http://r/", "whsec_b", 100)
    except webhooks.Duplicate as duplicate:
        assert duplicate.args[0].id == hook.id
    else:
        raise AssertionError("an exact duplicate was created")
    ids = {hook.id,
           webhooks.create(alice.id, "shop", "optin_finalized", "http://r/", "s", 100).id,
           webhooks.create(alice.id, "crm", "optout_finalized", "http://r/", "s", 100).id,
           webhooks.create(bob.id, "crm", "optin_finalized", "http://r/", "s", 100).id}
    assert len(ids) == 4


def test_events_ingested_counts_events_not_group_commits(store_url, alice):
    from soapservice.server import make_app
    settings = Settings(database_url=store_url, delivery_enabled=False)
    top = make_app(settings, MemoryReactorClock(), store=Store.open(store_url), web=False)
    runner = ManualRunner()
    top.ingestor._store = runner
    before = metrics.EVENTS._value.get()
    acks = [top.ingestor.submit("alice", "optin_finalized", {"n": n}) for n in range(5)]
    runner.run_next()  # the first event alone
    runner.run_next()  # the four that waited, in one commit
    assert all(d.called for d in acks)
    assert metrics.EVENTS._value.get() - before == 5
