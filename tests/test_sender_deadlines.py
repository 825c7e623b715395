"""The sender's deadlines and request headers, on a memory reactor: every attempt runs
out at its own deadline (one timer serves them all, none is left once they are done),
an answer whose body never comes times out with its connection aborted, and the
request's headers are Twisted's own (canonical names, line breaks cleaned)."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.http_headers import Headers

from soapservice.sender import TIMEOUT, Sender, request_headers
from soapservice.targets import TargetPolicy

HEADERS = {b"content-type": [b"application/json"], b"webhook-id": [b"msg_1"]}


def _sender(reactor, timeout=5.0):
    return Sender(reactor, TargetPolicy(allow_private=True), None, timeout_sec=timeout)


def test_each_attempt_times_out_at_its_own_deadline_and_no_timer_is_left():
    reactor = MemoryReactorClock()
    sender = _sender(reactor)
    results: dict[str, list] = {"a": [], "b": [], "c": []}
    for name, at in (("a", 0.0), ("b", 2.0), ("c", 3.0)):
        reactor.advance(at - reactor.seconds())
        # Never connected: the receiver does not even accept.
        sender.send(f"http://127.0.0.1:9/{name}", HEADERS, b"{}").addCallback(
            results[name].append)
    reactor.advance(4.99 - reactor.seconds())
    assert not any(results.values())
    reactor.advance(0.01)  # t = 5: a's deadline only
    assert [r.kind for r in results["a"]] == [TIMEOUT] and not results["b"]
    assert results["a"][0].error == "timeout after 5 s"
    reactor.advance(1.99)
    assert not results["b"]
    reactor.advance(0.01)  # t = 7
    assert [r.kind for r in results["b"]] == [TIMEOUT] and not results["c"]
    reactor.advance(1.0)  # t = 8
    assert [r.kind for r in results["c"]] == [TIMEOUT]
    assert sender._expiry is None and not sender._deadlines
    assert not [c for c in reactor.getDelayedCalls() if c.active()]


def test_answered_attempts_leave_no_timer_and_do_not_time_out_later():
    reactor = MemoryReactorClock()
    sender = _sender(reactor)
    results = []
    sender.send("http://127.0.0.1:8080/h", HEADERS, b"{}").addCallback(results.append)
    _host, _port, factory, *_rest = reactor.tcpClients[0]
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert [(r.status, r.snippet) for r in results] == [(200, "ok")]
    assert sender._expiry is None and not sender._deadlines
    reactor.advance(10)
    assert len(results) == 1


def test_an_answer_whose_body_never_comes_times_out_and_aborts_the_connection():
    reactor = MemoryReactorClock()
    sender = _sender(reactor, timeout=1.0)
    results = []
    sender.send("http://127.0.0.1:8080/h", HEADERS, b"{}").addCallback(results.append)
    _host, _port, factory, *_rest = reactor.tcpClients[0]
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    reactor.advance(0.99)
    assert not results
    reactor.advance(0.01)
    assert [(r.kind, r.error) for r in results] == [(TIMEOUT, "timeout after 1 s")]
    assert transport.disconnecting


def test_request_headers_are_twisteds_own():
    given = {b"content-type": [b"application/json"], b"x-soapservice-app": [b"a\r\nb\nc"],
             b"webhook-signature": [b"v1,abc v1,def"], b"www-authenticate": [b"x"]}
    ours, twisteds = request_headers(given), Headers(given)
    assert list(ours.getAllRawHeaders()) == list(twisteds.getAllRawHeaders())
    assert ours.getRawHeaders(b"x-soapservice-app") == [b"a b c"]
    assert list(dict(ours.getAllRawHeaders())) == [
        b"Content-Type", b"X-Soapservice-App", b"Webhook-Signature", b"WWW-Authenticate"]
    # Text values take Twisted's own way, encoded as it encodes them.
    assert list(request_headers({b"x-a": ["Zoë"]}).getAllRawHeaders()) == [
        (b"X-A", [b"Zo\xc3\xab"])]
