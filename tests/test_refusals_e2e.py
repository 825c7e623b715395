"""Malformed input against a real server: each gets a 4xx with a message and leaves no
traceback in the log (issue: deep /events data and GET /static/%00 were 500s with a
CRITICAL traceback each time); a resource that fails anyway is one log line."""

import socket

import pytest
import requests
from twisted.python.failure import Failure
from twisted.web import resource
from twisted.web.test.requesthelper import DummyChannel

from soapservice.web.limits import limited_request_factory
from tests.conftest import Server

TOKEN = {"Authorization": "Bearer test-ingest-token"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("refusals"))
    srv.add_account("alice")
    yield srv.start()
    srv.stop()


def raw(srv, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def deep(n):
    return "[" * n + "]" * n


@pytest.mark.parametrize("method, path, kwargs, status, words", [
    ("GET", "/static/%00", {}, 404, "No such file"),
    ("GET", "/static/a%00b.css", {}, 404, "No such file"),
    ("GET", "/static/..%2f..%2fetc%2fpasswd", {}, 404, ""),
    ("POST", "/events", {"headers": TOKEN, "data": '{"account": "alice", "event": '
                          f'"optin_finalized", "data": {{"x": {deep(964)}}}}}'},
     400, "nest"),
    ("POST", "/events", {"headers": TOKEN, "data": '{"account": "alice", "event": '
                          f'"optin_finalized", "data": {{"x": {deep(40)}}}}}'},
     400, "nests deeper than 32 levels"),
    ("POST", "/events", {"headers": TOKEN, "data": '{"account": "alice", "event": '
                          f'"optin_finalized", "data": {{"x": {deep(5000)}}}}}'},
     400, "nests deeper than 32 levels"),
    ("POST", "/events", {"headers": TOKEN, "data": b"\xff\xfe{"}, 400, "not JSON"),
    ("POST", "/events", {"headers": TOKEN, "json": {"account": "alice", "event": "x",
                                                   "data": []}}, 400, "unknown event"),
    ("POST", "/json/GetWebHooks", {"data": b"\xff=\xfe",
                                   "headers": {"Content-Type":
                                               "application/x-www-form-urlencoded"}},
     400, "Unreadable"),
    ("POST", "/json/GetWebHooks", {"data": deep(5000),
                                   "headers": {"Content-Type": "application/json"}},
     400, "Unreadable"),
    ("GET", "/reactivate/" + "x" * 5000, {}, 404, "not valid"),
])
def test_malformed_input_gets_a_4xx_with_a_message(server, method, path, kwargs, status,
                                                   words):
    answer = requests.request(method, server.url + path, timeout=10, **kwargs)
    assert answer.status_code == status, answer.text[:300]
    assert words in answer.text


def test_malformed_http_gets_a_4xx(server):
    assert raw(server, b"GET /soap HTTP/1.1\r\nContent-Length: x\r\n\r\n").startswith(
        b"HTTP/1.1 400")
    assert raw(server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n").startswith(
        b"HTTP/1.1 400")


def test_no_traceback_in_the_log(server):
    for path in ("/static/%00", "/static/%00"):
        requests.get(server.url + path, timeout=10)
    log = server.log()
    assert "Traceback" not in log and "CRITICAL" not in log


class Broken(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        raise ValueError("invalid literal for int() with base 10: 'S3CRET'")


def test_a_failing_resource_is_one_line_and_a_reference(caplog):
    request_class = limited_request_factory(1 << 20)
    channel = DummyChannel()
    request = request_class(channel)
    request.site = channel.site
    request.method, request.uri, request.clientproto = b"GET", b"/x", b"HTTP/1.1"
    request.prepath, request.postpath = [], [b"x"]
    try:  # what twisted's Request.process does
        request.render(Broken())
    except Exception:
        request.processingFailed(Failure())
    answer = channel.transport.written.getvalue()
    assert b"500" in answer.split(b"\r\n")[0] and b"internal error (reference " in answer
    [record] = [r for r in caplog.records if r.name == "soapservice.web.limits"]
    assert "ValueError" in record.getMessage() and "S3CRET" not in record.getMessage()
    assert record.exc_info is None and "refusals_e2e.py:" in record.getMessage()
