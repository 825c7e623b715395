"""The four operations as a zeep user sees them, against a running server."""

import pytest
import requests
import zeep

from tests.conftest import PASSWORD

EVENTS = ("optin_finalized", "optout_finalized", "profilemanager_finalized")


@pytest.fixture
def client(server):
    return zeep.Client(server.url + "/soap?wsdl")


def create(client, user="alice", app="crm", event="optin_finalized",
           url="http://127.0.0.1:9/hook"):
    return client.service.CreateWebHook(user, PASSWORD, app, event, url)


def test_create_list_activate_delete(client):
    created = create(client)
    assert created.error == 0 and created.message == "OK"
    hook = created.result
    assert (hook.app, hook.event, hook.url, hook.active) == (
        "crm", "optin_finalized", "http://127.0.0.1:9/hook", True)
    assert hook.failureCount == 0 and hook.bufferedEvents == 0 and hook.droppedEvents == 0
    assert hook.secret.startswith("whsec_")
    listed = client.service.GetWebHooks("alice", PASSWORD)
    assert listed.error == 0
    assert [h.id for h in listed.result.WebHook] == [hook.id]
    assert listed.result.WebHook[0].secret == hook.secret
    activated = client.service.ActivateWebHook("alice", PASSWORD, hook.id, 0)
    assert activated.error == 0 and activated.result.active is True
    assert activated.result.replayedEvents == 0
    deleted = client.service.DeleteWebHookById("alice", PASSWORD, hook.id)
    assert (deleted.error, deleted.result) == (0, hook.id)
    assert client.service.GetWebHooks("alice", PASSWORD).result is None


def test_filters_by_app_and_event(client):
    for app, event in (("a", EVENTS[0]), ("a", EVENTS[1]), ("b", EVENTS[0])):
        assert create(client, app=app, event=event).error == 0
    by_app = client.service.GetWebHooks("alice", PASSWORD, "a").result.WebHook
    assert sorted(h.event for h in by_app) == [EVENTS[0], EVENTS[1]]
    by_event = client.service.GetWebHooks("alice", PASSWORD, None, EVENTS[0]).result.WebHook
    assert sorted(h.app for h in by_event) == ["a", "b"]
    both = client.service.GetWebHooks("alice", PASSWORD, "b", EVENTS[0]).result.WebHook
    assert [(h.app, h.event) for h in both] == [("b", EVENTS[0])]


@pytest.mark.parametrize("args, error", [
    (("alice", "wrong", "crm", "optin_finalized", "http://127.0.0.1/x"), 1),
    (("nobody", PASSWORD, "crm", "optin_finalized", "http://127.0.0.1/x"), 1),
    (("alice", PASSWORD, "", "optin_finalized", "http://127.0.0.1/x"), 2),
    (("alice", PASSWORD, "crm", "bounce", "http://127.0.0.1/x"), 3),
    (("alice", PASSWORD, "crm", "optin_finalized", "ftp://127.0.0.1/x"), 4),
    (("alice", PASSWORD, "crm", "optin_finalized", "http:///nohost"), 4),
    (("alice", PASSWORD, "crm", "optin_finalized", "http://x/" + "a" * 2100), 4),
    (("alice", PASSWORD, "x" * 256, "optin_finalized", "http://127.0.0.1/x"), 6),
])
def test_create_errors(client, args, error):
    answer = client.service.CreateWebHook(*args)
    assert answer.error == error, answer.message
    assert answer.result is None
    assert client.service.GetWebHooks("alice", PASSWORD).result is None


def test_missing_parameter_is_named(server):
    # Generated stubs refuse to send it; hand-written clients do send such envelopes.
    envelope = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:w="urn:soapservice:webhooks:1"><soap:Body><w:CreateWebHook>'
        f'<w:username>alice</w:username><w:password>{PASSWORD}</w:password>'
        '<w:app>crm</w:app><w:url>http://127.0.0.1/</w:url>'
        '</w:CreateWebHook></soap:Body></soap:Envelope>')
    answer = requests.post(server.url + "/soap", data=envelope,
                           headers={"Content-Type": "text/xml"})
    assert answer.status_code == 200
    assert "<tns:error>2</tns:error>" in answer.text
    assert "Missing required parameter: event" in answer.text


def test_unknown_event_lists_supported(client):
    answer = create(client, event="bounce")
    assert all(e in answer.message for e in EVENTS)


def test_activate_errors(client):
    hook = create(client).result
    assert client.service.ActivateWebHook("alice", PASSWORD, hook.id, 2).error == 6
    assert client.service.ActivateWebHook("alice", PASSWORD, 999999, 0).error == 5
    assert client.service.DeleteWebHookById("alice", PASSWORD, 999999).error == 5
    assert client.service.ActivateWebHook("alice", PASSWORD, hook.id).error == 0


def test_tenant_isolation(client):
    hook = create(client).result
    assert client.service.GetWebHooks("bob", PASSWORD).result is None
    for answer in (client.service.ActivateWebHook("bob", PASSWORD, hook.id, 1),
                   client.service.DeleteWebHookById("bob", PASSWORD, hook.id)):
        assert answer.error == 5 and "not found" in answer.message
    assert [h.id for h in client.service.GetWebHooks("alice", PASSWORD).result.WebHook] == [
        hook.id]


def test_webhook_limit(make_server):
    srv = make_server({"SOAPSERVICE_MAX_WEBHOOKS": "2"})
    client = zeep.Client(srv.url + "/soap?wsdl")
    assert create(client, url="http://127.0.0.1:9/a").error == 0
    assert create(client, url="http://127.0.0.1:9/b").error == 0
    assert create(client, url="http://127.0.0.1:9/a").error == 0  # a retry: the same one
    answer = create(client, url="http://127.0.0.1:9/c")
    assert answer.error == 7 and "limit" in answer.message.lower()


def test_soap12(server):
    client = zeep.Client(server.url + "/soap12?wsdl")
    created = create(client)
    assert created.error == 0
    assert client.service.GetWebHooks("alice", PASSWORD).result.WebHook[0].id == created.result.id
    assert b"http://www.w3.org/2003/05/soap-envelope" in requests.get(
        server.url + "/soap12?wsdl").content


def test_json_mirror_form_and_json(server):
    url = server.url + "/json/"
    created = requests.post(url + "CreateWebHook", data={
        "username": "alice", "password": PASSWORD, "app": "crm", "event": "optin_finalized",
        "url": "http://127.0.0.1:9/h"}).json()
    assert created["error"] == 0 and created["result"]["app"] == "crm"
    listed = requests.post(url + "GetWebHooks", json={"username": "alice",
                                                      "password": PASSWORD}).json()
    assert [h["id"] for h in listed["result"]] == [created["result"]["id"]]
    bad = requests.post(url + "ActivateWebHook", json={
        "username": "alice", "password": PASSWORD, "webhookId": "abc"})
    assert bad.status_code == 200 and bad.json()["error"] == 6
    assert requests.post(url + "Nope", data={}).status_code == 404


def test_wsdl_names_public_url(make_server):
    srv = make_server({"SOAPSERVICE_PUBLIC_URL": "https://hooks.example.com"})
    wsdl = requests.get(srv.url + "/soap?wsdl", headers={"Host": "evil.example"}).text
    assert 'location="https://hooks.example.com/soap"' in wsdl
    assert "evil.example" not in wsdl
