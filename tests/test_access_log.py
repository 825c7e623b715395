"""The access log: twisted.web's Combined Log Format, secrets redacted, written once per
reactor turn to standard output, a file, or nowhere (``SOAPSERVICE_ACCESS_LOG``)."""

from __future__ import annotations

import pytest
import requests
from twisted.internet import task
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.web.http import combinedLogFormatter, datetimeToLogString
from twisted.web.http_headers import Headers

from soapservice.config import ConfigError
from soapservice.web.accesslog import AccessLog, access_line, redact_referrer, redact_uri
from tests.conftest import PASSWORD

TIMESTAMP = datetimeToLogString(1_700_000_000)


class RedactedRequest:
    """The request as twisted's formatter should see it: the URI and Referer redacted."""

    def __init__(self, request):
        self._request, self.uri = request, redact_uri(request.uri)
        self.requestHeaders = Headers()
        for name, values in request.requestHeaders.getAllRawHeaders():
            if name.lower() == b"referer":
                values = [redact_referrer(values[-1])]
            self.requestHeaders.setRawHeaders(name, values)

    def getHeader(self, name):
        values = self.requestHeaders.getRawHeaders(name)
        return values[-1] if values else None

    def __getattr__(self, name):
        return getattr(self._request, name)


class FakeRequest:
    """What a log formatter reads of a finished twisted.web request."""

    def __init__(self, uri=b"/soap", method=b"POST", address=None, headers=None,
                 code=200, length=512, proto=b"HTTP/1.1"):
        self.uri, self.method, self.clientproto = uri, method, proto
        self.code, self.sentLength = code, length
        self._address = address or IPv4Address("TCP", "127.0.0.1", 40000)
        self.requestHeaders = Headers(headers or {})

    def getClientAddress(self):
        return self._address

    def getHeader(self, name):
        values = self.requestHeaders.getRawHeaders(name)
        return values[-1] if values else None


REQUESTS = [
    FakeRequest(),
    FakeRequest(uri=b"/json/GetWebHooks?username=alice&password=s3cret", method=b"GET",
                length=0),
    FakeRequest(uri=b"/soap?wsdl", method=b"GET"),
    FakeRequest(uri=b"/reactivate/abc.def-ghi?x=1", method=b"GET", code=303),
    FakeRequest(headers={b"user-agent": [b'PHP-SOAP/8.2 "quoted" \\ back\'s'],
                         b"referer": [b"https://example.com/a?b=c"]}),
    FakeRequest(headers={b"user-agent": ["zeep/4 ✓ naïve".encode()]}),
    FakeRequest(headers={b"user-agent": [b"\x00\x1b[31mred\x7f\xff"]}),
    FakeRequest(uri=b"/caf\xc3\xa9/%22?q=%00", method=b"GET", code=404),
    FakeRequest(address=IPv6Address("TCP", "::1", 40000), proto=b"HTTP/1.0"),
    FakeRequest(address=UNIXAddress(b"/tmp/s.sock")),
    FakeRequest(headers={b"user-agent": [b"first", b"second"]}),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=range(len(REQUESTS)))
def test_lines_are_twisteds_combined_format_with_secrets_redacted(request_):
    expected = combinedLogFormatter(TIMESTAMP, RedactedRequest(request_)) + "\n"
    assert access_line(TIMESTAMP, request_) == expected
    assert "s3cret" not in expected and "abc.def" not in expected


def test_a_turns_lines_go_out_together_in_order(tmp_path):
    path = tmp_path / "access.log"
    clock = task.Clock()
    log = AccessLog(str(path), clock)
    log.log(TIMESTAMP, FakeRequest(uri=b"/soap"))
    log.log(TIMESTAMP, FakeRequest(uri=b"/soap12"))
    assert path.read_text() == ""  # nothing yet: the reactor's turn is not over
    clock.advance(0)
    assert [line.split('"')[3] for line in path.read_text().splitlines()] == [
        "POST /soap HTTP/1.1", "POST /soap12 HTTP/1.1"]
    log.log(TIMESTAMP, FakeRequest(uri=b"/third"))
    log.close()  # stopping writes what is left
    assert path.read_text().count("\n") == 3
    log.log(TIMESTAMP, FakeRequest(uri=b"/after"))
    clock.advance(0)
    assert "/after" not in path.read_text()


def test_off_writes_nothing(capsys):
    clock = task.Clock()
    log = AccessLog("off", clock)
    log.log(TIMESTAMP, FakeRequest())
    clock.advance(0)
    assert capsys.readouterr().out == "" and not clock.getDelayedCalls()


def test_an_unwritable_path_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError, match="SOAPSERVICE_ACCESS_LOG"):
        AccessLog(str(tmp_path / "no" / "such" / "dir.log"), task.Clock())


def test_the_server_logs_to_the_configured_file(make_server, tmp_path):
    path = tmp_path / "access.log"
    srv = make_server({"SOAPSERVICE_ACCESS_LOG": str(path)})
    answer = requests.get(srv.url + "/json/GetWebHooks",
                          params={"username": "alice", "password": PASSWORD}, timeout=10)
    assert answer.json()["error"] == 0
    requests.get(srv.url + "/healthz", timeout=10)
    srv.stop()
    lines = path.read_text().splitlines()
    assert any('"GET /json/GetWebHooks?username=***&password=*** HTTP/1.1" 200' in line
               for line in lines), lines
    assert any('"GET /healthz HTTP/1.1" 200' in line for line in lines), lines
    assert PASSWORD not in path.read_text() and "/healthz" not in srv.log()


def test_off_keeps_requests_out_of_the_servers_output(make_server):
    srv = make_server({"SOAPSERVICE_ACCESS_LOG": "off"})
    assert requests.get(srv.url + "/healthz", timeout=10).status_code == 200
    srv.stop()
    assert "/healthz" not in srv.log() and "listening on" in srv.log()


def test_a_bad_path_stops_serve_with_a_clear_message(make_server, tmp_path):
    from tests.conftest import soapservice
    srv = make_server({"SOAPSERVICE_ACCESS_LOG": str(tmp_path / "missing" / "a.log")},
                      start=False)
    result = soapservice("serve", env=srv.env, check=False)
    assert result.returncode != 0
    assert "configuration error: SOAPSERVICE_ACCESS_LOG=" in result.stderr
    assert "Traceback" not in result.stderr
