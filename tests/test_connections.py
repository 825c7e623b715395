"""Inbound connections in-process on a Clock: request deadlines that bytes do not extend
(slowloris), idle keep-alive connections closed, and the connection cap that drops the
connection waiting longest for its request, never one being answered."""

import pytest
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web import resource, server

from soapservice.config import load_settings
from soapservice.web.connections import (
    ConnectionLimits,
    GuardedSite,
    default_max_connections,
)

GET = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"


class Hello(resource.Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.pending = []

    def render_GET(self, request):
        return b"hello"

    def render_POST(self, request):  # answered later, when the test says so
        self.pending.append(request)
        return server.NOT_DONE_YET


class Conn:
    def __init__(self, site, port):
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", port))
        self.proto = site.buildProtocol(self.transport.getPeer())
        self.proto.makeConnection(self.transport)

    def send(self, data):
        self.proto.dataReceived(data)

    @property
    def closed(self):
        return self.transport.disconnecting or self.transport.disconnected

    def text(self):
        return self.transport.value().decode()


@pytest.fixture
def clock():
    return task.Clock()


def make_site(clock, **limits):
    root = Hello()
    site = GuardedSite(root, ConnectionLimits(**{"header_timeout_sec": 10.0,
                                                 "body_timeout_sec": 30.0,
                                                 "max_connections": 3, **limits}),
                       reactor=clock)
    site.hello = root
    return site


def test_a_byte_every_second_does_not_keep_a_request_open(clock):
    site = make_site(clock)
    slow = Conn(site, 1)
    for byte in b"GET /hello HTTP/1.1\r\nHo":  # slowloris: one byte a second
        slow.send(bytes([byte]))
        clock.advance(0.4)
    assert not slow.closed
    clock.advance(10.0 - 0.4 * 23 - 0.01)
    assert not slow.closed
    clock.advance(0.02)  # 10 s after the connection opened, whatever arrived meanwhile
    assert slow.closed
    assert slow.text().startswith("HTTP/1.1 408 Request Timeout")
    assert "request headers not received within 10 s" in slow.text()


def test_a_body_must_arrive_within_its_own_deadline(clock):
    site = make_site(clock)
    conn = Conn(site, 1)
    clock.advance(9.0)
    conn.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    for _ in range(29):  # headers in time; then a byte a second
        conn.send(b"x")
        clock.advance(1.0)
    assert not conn.closed
    clock.advance(1.0)
    assert conn.closed and "request body not received within 30 s" in conn.text()


def test_idle_keep_alive_connections_close_and_answers_are_not_cut(clock):
    site = make_site(clock)
    conn = Conn(site, 1)
    conn.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    clock.advance(120.0)  # the server takes its time: no deadline while it answers
    assert not conn.closed
    request = site.hello.pending.pop()
    request.write(b"done")
    request.finish()
    assert "done" in conn.text()
    clock.advance(9.9)  # ready for the next request: the header deadline again
    assert not conn.closed
    clock.advance(0.2)
    assert conn.closed and "408" not in conn.text()  # idle: closed without an answer
    clock.advance(2.0)
    assert conn.transport.disconnected or conn.transport.disconnecting


def test_a_keep_alive_client_gets_each_request_answered(clock):
    site = make_site(clock)
    conn = Conn(site, 1)
    for _ in range(3):
        conn.send(GET)
        clock.advance(5.0)  # within the deadline each time: it restarts per request
    assert conn.text().count("hello") == 3 and not conn.closed


def test_at_the_cap_the_longest_waiting_connection_makes_room(clock):
    site = make_site(clock)
    slow = [Conn(site, i) for i in range(3)]
    for conn in slow:
        conn.send(b"GET / HT")
        clock.advance(1.0)
    newcomer = Conn(site, 10)
    assert slow[0].closed and not slow[1].closed and not slow[2].closed
    newcomer.send(GET)
    assert "hello" in newcomer.text()
    assert len(site.guard.open) == 3


def test_connections_being_answered_are_never_dropped(clock):
    site = make_site(clock)
    busy = [Conn(site, i) for i in range(3)]
    for conn in busy:
        conn.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    refused = Conn(site, 10)
    assert not any(conn.closed for conn in busy)
    assert refused.text().startswith("HTTP/1.1 503 Service Unavailable")
    assert refused.transport.disconnecting
    for request in site.hello.pending:
        request.finish()
    assert all("200 OK" in conn.text() for conn in busy)


def test_the_limits_are_settings():
    settings = load_settings({"SOAPSERVICE_HEADER_TIMEOUT": "5",
                              "SOAPSERVICE_BODY_TIMEOUT": "20",
                              "SOAPSERVICE_MAX_CONNECTIONS": "100"})
    assert ConnectionLimits.from_settings(settings) == ConnectionLimits(5.0, 20.0, 100)
    assert ConnectionLimits.from_settings(load_settings({})).max_connections == \
        default_max_connections()


def test_a_request_answered_before_the_client_hung_up_is_logged_once(clock):
    from twisted.internet import error
    from twisted.python import failure
    site = make_site(clock)
    logged = []
    site.log = logged.append
    conn = Conn(site, 1)
    conn.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    request = site.hello.pending.pop()
    request.write(b"whole answer")  # the client reads it and hangs up before finish()
    conn.proto.connectionLost(failure.Failure(error.ConnectionDone()))
    assert logged == [request] and request.code == 200
    other = Conn(site, 2)  # answered and finished normally: logged by twisted, once
    other.send(GET)
    other.proto.connectionLost(failure.Failure(error.ConnectionDone()))
    assert len(logged) == 2
