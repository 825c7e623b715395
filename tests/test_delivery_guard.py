"""The SSRF guard at delivery time: the sender connects only to addresses the target
policy checked, resolved once (a rebinding name cannot swap in a private address), and
follows no redirect. Unit tests on a memory reactor, and end to end against the server
(a webhook stored while private targets were allowed, then the guard switched on)."""

from __future__ import annotations

import pytest
import requests
from twisted.internet.protocol import Factory, Protocol
from twisted.web.client import URI

from soapservice.sender import CheckedEndpointFactory, Sender
from soapservice.targets import TargetPolicy
from tests.conftest import PASSWORD
from tests.support.doubles import InlinePool, InlineReactor
from tests.support.receiver import Receiver


class Rebinding:
    """A DNS name that answers a public address first and a private one afterwards."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, host, port):
        self.calls.append((host, port))
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


def connect(reactor, policy, url):
    factory = CheckedEndpointFactory(reactor, policy, InlinePool())
    endpoint = factory.endpointForURI(URI.fromBytes(url))
    return endpoint.connect(Factory.forProtocol(Protocol))


def failure_of(d):
    errors = []
    d.addErrback(errors.append)
    assert errors, "expected the connection to be refused"
    return errors[0].value


def test_name_resolving_to_a_private_address_is_refused_without_connecting():
    reactor = InlineReactor()
    resolver = Rebinding(["10.1.2.3"])
    error = failure_of(connect(reactor, TargetPolicy(resolver=resolver),
                               b"http://evil.example/hook"))
    assert str(error).startswith("refused target address")
    assert "10.1.2.3" in str(error)
    assert reactor.tcpClients == []


def test_one_forbidden_address_among_several_refuses_the_name():
    reactor = InlineReactor()
    resolver = Rebinding(["93.184.216.34", "::1"])
    error = failure_of(connect(reactor, TargetPolicy(resolver=resolver),
                               b"http://mixed.example/"))
    assert "refused target address" in str(error) and "::1" in str(error)
    assert reactor.tcpClients == []


def test_connects_to_the_address_that_was_checked_resolving_once():
    reactor = InlineReactor()
    resolver = Rebinding(["93.184.216.34"], ["127.0.0.1"])  # rebinds after the check
    connect(reactor, TargetPolicy(resolver=resolver), b"http://rebind.example:8443/x")
    assert resolver.calls == [("rebind.example", 8443)]
    assert [(host, port) for host, port, *_ in reactor.tcpClients] == [
        ("93.184.216.34", 8443)]


@pytest.mark.parametrize("url", [b"http://127.0.0.1:9/", b"http://0x7f.1/",
                                 b"http://2130706433/", b"http://[::ffff:127.0.0.1]/",
                                 b"http://169.254.169.254/", b"http://localhost/",
                                 b"http://api.localhost/"])
def test_literal_and_loopback_spellings_refused_at_delivery(url):
    reactor = InlineReactor()
    resolver = Rebinding(["127.0.0.1"])
    error = failure_of(connect(reactor, TargetPolicy(resolver=resolver), url))
    assert str(error).startswith("refused target address")
    assert reactor.tcpClients == []


def test_operator_opened_range_is_connected_to():
    reactor = InlineReactor()
    connect(reactor, TargetPolicy(allowed_cidrs=["10.9.0.0/16"],
                                  resolver=Rebinding(["10.9.1.1"])), b"http://inside.corp/")
    assert [c[0] for c in reactor.tcpClients] == ["10.9.1.1"]


def test_sender_reports_the_refusal_as_the_attempt_error():
    reactor = InlineReactor()
    sender = Sender(reactor, TargetPolicy(resolver=Rebinding(["192.168.0.10"])),
                    InlinePool(), timeout_sec=5)
    results = []
    sender.send("http://intranet.example/hook", {}, b"{}").addCallback(results.append)
    [result] = results
    assert result.status is None
    assert result.error.startswith("refused target address")
    assert reactor.tcpClients == []


def test_unresolvable_name_is_a_dns_failure_not_a_refusal():
    def nxdomain(host, port):
        raise OSError("Name or service not known")
    reactor = InlineReactor()
    sender = Sender(reactor, TargetPolicy(resolver=nxdomain), InlinePool(), timeout_sec=5)
    results = []
    sender.send("http://gone.example/hook", {}, b"{}").addCallback(results.append)
    assert results[0].error == "DNS: host 'gone.example' does not resolve"
    assert results[0].kind == "dns"
    assert reactor.tcpClients == []


# -- end to end -----------------------------------------------------------------------
def json_call(srv, operation, **params):
    answer = requests.post(f"{srv.url}/json/{operation}", json={
        "username": "alice", "password": PASSWORD, **params}, timeout=10).json()
    assert answer["error"] == 0, answer
    return answer.get("result")


def post_event(srv, **data):
    answer = requests.post(srv.url + "/events", json={
        "account": "alice", "event": "optin_finalized", "data": data},
        headers={"authorization": "Bearer test-ingest-token"}, timeout=10)
    assert answer.status_code == 202, answer.text
    return answer.json()


def wait_for_hook(srv, hook_id, condition, what, timeout=60):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [hook] = [h for h in json_call(srv, "GetWebHooks") if h["id"] == hook_id]
        if condition(hook):
            return hook
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: {hook}")


def test_stored_private_target_refused_at_delivery_once_the_guard_is_on(make_server):
    with Receiver() as receiver:
        srv = make_server()  # SOAPSERVICE_ALLOW_PRIVATE_TARGETS=1 (the test default)
        hook = json_call(srv, "CreateWebHook", app="crm", event="optin_finalized",
                         url=receiver.url + "/hook")
        srv.stop()
        del srv.env["SOAPSERVICE_ALLOW_PRIVATE_TARGETS"]  # the operator turns it on
        srv.start()
        post_event(srv, subscriber_id=1, email="a@example.org")
        hook = wait_for_hook(srv, hook["id"], lambda h: h.get("lastError"), "a failure")
        assert hook["lastError"].startswith("refused target address"), hook
        assert "127.0.0.1" in hook["lastError"]
        assert hook["failureCount"] == 1
        assert receiver.requests == [] and receiver.connections == set()


@pytest.mark.parametrize("status", [302, 307])
def test_redirect_is_a_failed_attempt_and_location_is_never_fetched(make_server, status):
    with Receiver() as elsewhere, Receiver(
            answer=lambda req: (status, {"Location": elsewhere.url + "/stolen"})) as receiver:
        srv = make_server()
        hook = json_call(srv, "CreateWebHook", app="crm", event="optin_finalized",
                         url=receiver.url + "/hook")
        post_event(srv, subscriber_id=1)
        hook = wait_for_hook(srv, hook["id"], lambda h: h.get("lastError"), "a failure")
        assert hook["lastError"] == f"HTTP {status} (redirects are not followed)"
        assert len(receiver.requests) == 1
        srv.stop()  # nothing in flight any more: the redirect really was not followed
        assert elsewhere.requests == [] and elsewhere.connections == set()
