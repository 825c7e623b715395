"""The web tree and the core in process, without sockets: treq's ``StubTreq`` drives the
resources of ``soapservice serve`` (JSON mirror, ``POST /events``, ``/healthz``) over a
real store, with the thread pool and the store thread replaced by inline doubles, so a
rule of the HTTP surface is checked in milliseconds. The end-to-end tests still run the
same paths through a real server."""

from __future__ import annotations

import json

import pytest
from treq.testing import StubTreq

from soapservice.api import WebhookAPI
from soapservice.config import Settings
from soapservice.errors import Error
from soapservice.ingest import Ingestor
from soapservice.models import Delivery, Event
from soapservice.web.events import Events
from soapservice.web.root import build_root
from tests.support.doubles import InlinePool, InlineReactor, inline_runner

TOKEN = "in-process-token"


def result_of(d):
    """The result of a Deferred that must have fired (StubTreq answers synchronously
    once flushed; every store call here runs inline)."""
    results, failures = [], []
    d.addCallbacks(results.append, failures.append)
    if failures:
        failures[0].raiseException()
    assert results, "the request did not complete"
    return results[0]


class Web:
    """A StubTreq client on the resource tree of ``serve``."""

    def __init__(self, api: WebhookAPI, settings: Settings):
        reactor, pool = InlineReactor(), InlinePool()
        events = Events(Ingestor(settings, inline_runner), settings.ingest_token, reactor, pool)
        self.stub = StubTreq(build_root(api, settings, reactor, pool, {"events": events}))

    def request(self, method: str, path: str, **kwargs):
        d = getattr(self.stub, method)("http://soapservice.test" + path, **kwargs)
        self.stub.flush()
        response = result_of(d)
        body = result_of(response.content())
        return response.code, body

    def json(self, operation: str, **params):
        code, body = self.request("post", f"/json/{operation}", data=params)
        return code, json.loads(body)


@pytest.fixture
def settings():
    return Settings(allow_private_targets=True, ingest_token=TOKEN)


@pytest.fixture
def api(alice, settings):
    return WebhookAPI(settings)


@pytest.fixture
def web(api, settings):
    return Web(api, settings)


def test_json_mirror_creates_then_lists_a_webhook(web):
    code, created = web.json("CreateWebHook", username="alice", password="pw", app="crm",
                             event="optin_finalized", url="http://127.0.0.1:9/hook")
    assert (code, created["error"]) == (200, 0), created
    hook = created["result"]
    assert hook["active"] is True and hook["secret"].startswith("whsec_")
    code, listed = web.json("GetWebHooks", username="alice", password="pw")
    assert (code, listed["error"]) == (200, 0)
    assert [h["id"] for h in listed["result"]] == [hook["id"]]


def test_json_mirror_answers_errors_in_the_envelope_with_200(web):
    code, wrong = web.json("GetWebHooks", username="alice", password="wrong")
    assert (code, wrong["error"]) == (200, int(Error.AUTH_FAILED))
    code, missing = web.json("CreateWebHook", username="alice", password="pw", app="crm",
                             event="optin_finalized")
    assert (code, missing["error"]) == (200, int(Error.MISSING_PARAMETER))
    assert "url" in missing["message"]
    code, _ = web.request("post", "/json/NoSuchOperation", data={"username": "alice"})
    assert code == 404


def test_events_202_once_stored_with_a_delivery_per_matching_webhook(web, api):
    api.create_webhook("alice", "pw", "crm", "optin_finalized", "http://127.0.0.1:9/a")
    api.create_webhook("alice", "pw", "crm", "optout_finalized", "http://127.0.0.1:9/b")
    message = {"account": "alice", "event": "optin_finalized", "data": {"subscriber_id": 7}}
    code, body = web.request("post", "/events", json=message,
                             headers={"Authorization": f"Bearer {TOKEN}"})
    answer = json.loads(body)
    assert (code, answer["queued"]) == (202, 1), answer
    event = Event.get_by_id(answer["id"])
    assert json.loads(event.body) == {"subscriber_id": 7} and event.subscriber == "7"
    assert Delivery.select().where(Delivery.event == event.id).count() == 1


def test_events_refuse_a_wrong_token_and_bad_bodies_and_store_nothing(web):
    message = {"account": "alice", "event": "optin_finalized", "data": {}}
    code, _ = web.request("post", "/events", json=message,
                          headers={"Authorization": "Bearer guessed"})
    assert code == 401
    code, body = web.request("post", "/events", data=b"[1, 2", headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert code == 400 and b"not JSON" in body
    code, body = web.request("post", "/events", json={**message, "event": "unknown"},
                             headers={"Authorization": f"Bearer {TOKEN}"})
    assert code == 400
    assert Event.select().count() == 0


def test_health_answers_200_while_the_store_answers(web):
    code, _ = web.request("get", "/healthz")
    assert code == 200


def test_api_scopes_webhooks_to_their_account(api):
    from soapservice import auth
    from soapservice.store import accounts
    accounts.add("bob", auth.hash_password("pw2", n=2**4))
    hook = api.create_webhook("alice", "pw", "crm", "optin_finalized",
                              "http://127.0.0.1:9/a").result
    assert api.delete_webhook("bob", "pw2", str(hook["id"])).error == Error.NOT_FOUND
    assert api.activate_webhook("bob", "pw2", str(hook["id"])).error == Error.NOT_FOUND
    assert api.delete_webhook("alice", "pw", str(hook["id"])).error == Error.OK
    assert api.get_webhooks("alice", "pw").result == []


def test_respond_writes_nothing_once_the_client_has_gone():
    from twisted.internet import defer
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure
    from twisted.web.server import NOT_DONE_YET
    from twisted.web.test.requesthelper import DummyRequest

    from soapservice.web.respond import respond
    request, d = DummyRequest([b""]), defer.Deferred()
    assert respond(request, d, lambda body: body, what="test") is NOT_DONE_YET
    request.processingFailed(Failure(ConnectionDone()))
    d.callback(b"late answer")
    assert request.written == [] and request.finished == 0


def test_respond_logs_an_unexpected_failure_under_the_reference_it_answers(caplog):
    import re

    from twisted.internet import defer
    from twisted.web.test.requesthelper import DummyRequest

    from soapservice.web.respond import respond
    request = DummyRequest([b""])
    respond(request, defer.fail(RuntimeError("store on fire")), lambda body: body,
            what="test resource")
    assert request.responseCode == 500 and request.finished == 1
    reference = re.search(rb"reference ([0-9a-f]{12})", b"".join(request.written)).group(1)
    [record] = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert record.getMessage() == f"test resource: internal error, reference {reference.decode()}"
    assert "store on fire" in caplog.text


def test_json_mirror_resend_takes_iso_datetimes(web):
    _, created = web.json("CreateWebHook", username="alice", password="pw", app="crm",
                          event="optin_finalized", url="http://127.0.0.1:9/hook")
    hook_id = created["result"]["id"]
    _, answer = web.json("ResendWebHookEvents", username="alice", password="pw",
                         webhookId=hook_id, since="2026-12-01T00:00:00Z",
                         until="2026-12-02T00:00:00Z")
    assert (answer["error"], answer["result"]) == (0, 0), answer
    _, wide = web.json("ResendWebHookEvents", username="alice", password="pw",
                       webhookId=hook_id, since="2026-01-01T00:00:00Z",
                       until="2026-02-01T00:00:00Z")
    assert wide["error"] == 6 and "14 days" in wide["message"]
    _, bad = web.json("ResendWebHookEvents", username="alice", password="pw",
                      webhookId=hook_id, since="yesterday")
    assert bad["error"] == 6 and "dateTime" in bad["message"]
