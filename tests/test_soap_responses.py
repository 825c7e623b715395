"""soap/responses.py writes the four operations' responses byte for byte as Spyne's own
serializer does, for both SOAP versions: the same WSGI app built with
``direct_responses=False`` (Spyne writes everything) is the reference."""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest

from soapservice.api import Envelope
from soapservice.errors import Error
from soapservice.soap import responses
from soapservice.soap.apps import build_wsgi

ENV_NS = {"1.1": "http://schemas.xmlsoap.org/soap/envelope/",
          "1.2": "http://www.w3.org/2003/05/soap-envelope"}
CONTENT_TYPE = {"1.1": "text/xml; charset=utf-8",
                "1.2": "application/soap+xml; charset=utf-8"}
ARGS = {
    "CreateWebHook": {"username": "alice", "password": "pw", "app": "crm",
                      "event": "optin_finalized", "url": "http://127.0.0.1:9/hook"},
    "GetWebHooks": {"username": "alice", "password": "pw"},
    "ActivateWebHook": {"username": "alice", "password": "pw", "webhookId": "7",
                        "replayEvents": "1"},
    "DeleteWebHookById": {"username": "alice", "password": "pw", "webhookId": "7"},
}


class CannedAPI:
    """Answers every operation with ``self.envelope``."""

    envelope = None

    def _answer(self, *args, **kwargs):
        return self.envelope

    create_webhook = get_webhooks = activate_webhook = delete_webhook = _answer


def hook(**changes) -> dict:
    """A webhook as soapservice.api.webhook_dict makes it."""
    base = {
        "id": 7, "app": "crm", "event": "optin_finalized", "url": "http://127.0.0.1:9/hook",
        "active": True, "created": datetime(2026, 1, 2, 3, 4, 5, 123456, UTC),
        "deactivatedAt": None, "failureCount": 0, "bufferedEvents": 0, "droppedEvents": 0,
        "lastSuccessAt": None, "lastFailureAt": None, "lastError": None,
        "secret": "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2Vj",
    }
    base.update(changes)
    return base


EVERYTHING_SET = hook(
    active=False, deactivatedAt=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
    lastSuccessAt=datetime(2026, 2, 1, 0, 0, 0, 1, UTC),
    lastFailureAt=datetime(2026, 3, 4, 5, 6, 6, 999999, UTC),
    failureCount=12, bufferedEvents=3, droppedEvents=2**31 + 5, heldEvents=4,
    lastError="HTTP 500: <b>oops</b> & \"quoted\" 'single' ]]> --> <!-- &amp;")
UNICODE = hook(id=2**40, app="Zürich — 日本語 😀 <&>\"'", url="https://example.com/a?b=1&c=<2>",
               lastError="line1\r\nline2\ttab  trailing ", failureCount=-1,
               created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))))
NOT_XML = hook(app="a\x00b\x01c\x08\x0b\x0c\x0e\x1f", url="http://x/\ud800\udfff",
               lastError="\ufffe\uffff end \x7f\x85\x9f \ufffd", secret="s\x1b[0m")
EMPTY_TEXT = hook(app="", event=" ", lastError="", secret="",
                  created=datetime(2026, 1, 2, 3, 4, 5))  # naive, too
HOOKS = [hook(), EVERYTHING_SET, UNICODE, NOT_XML, EMPTY_TEXT]

ERRORS = [
    Envelope(Error.AUTH_FAILED, "Authentication failed"),
    Envelope(Error.UNKNOWN_EVENT, "Unknown event '<&>\"\\'\x00\ud800'; supported: a, b"),
    Envelope(Error.INTERNAL, "Internal error (reference 0123456789ab)"),
    Envelope(0, ""),
]

# (operation, envelope) written by soap/responses.py.
DIRECT = [
    *[("GetWebHooks", Envelope(Error.OK, "OK", result))
      for result in ([], [hook()], HOOKS, [EMPTY_TEXT] * 3)],
    *[("CreateWebHook", Envelope(Error.OK, "OK", h)) for h in HOOKS],
    *[("ActivateWebHook", Envelope(Error.OK, "OK", {**h, "replayedEvents": n}))
      for h, n in ((hook(), 0), (EVERYTHING_SET, 12), (NOT_XML, 2**33))],
    *[("DeleteWebHookById", Envelope(Error.OK, "OK", n)) for n in (7, 2**40)],
    *[(operation, envelope) for operation in ARGS for envelope in ERRORS],
]

# Shapes the core does not make: left to Spyne (same bytes, of course).
SPYNE = [
    ("GetWebHooks", Envelope(Error.OK, "OK", [hook(app=None)])),  # xsi:nil
    ("CreateWebHook", Envelope(Error.OK, "OK", hook(failureCount=True))),
    ("CreateWebHook", Envelope(Error.OK, "OK", hook(active=1))),
    ("CreateWebHook", Envelope(Error.OK, "OK", {**hook(), "extra": 1})),
    ("ActivateWebHook", Envelope(Error.OK, "OK", hook())),  # no replayedEvents
    ("DeleteWebHookById", Envelope(Error.OK, "OK", "7")),
]


def request(version: str, operation: str) -> dict:
    args = "".join(f"<tns:{k}>{v}</tns:{k}>" for k, v in ARGS.get(operation, {}).items())
    body = (f'<env:Envelope xmlns:env="{ENV_NS[version]}" '
            f'xmlns:tns="urn:soapservice:webhooks:1"><env:Body><tns:{operation}>{args}'
            f'</tns:{operation}></env:Body></env:Envelope>').encode()
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/soap", "SCRIPT_NAME": "",
            "QUERY_STRING": "", "CONTENT_TYPE": CONTENT_TYPE[version],
            "CONTENT_LENGTH": str(len(body)), "SERVER_NAME": "x", "SERVER_PORT": "80",
            "REMOTE_ADDR": "127.0.0.1", "HTTP_SOAPACTION": f'"{operation}"',
            "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False}


def call(app, version: str, operation: str):
    started = []
    body = b"".join(app(request(version, operation), lambda *a: started.append(a)))
    return started[0][0], started[0][1], body


@pytest.fixture(scope="module")
def apps():
    api = CannedAPI()
    built = {(version, direct): build_wsgi(api, version, "http://x/soap", 1 << 20,
                                           direct_responses=direct)
             for version in ENV_NS for direct in (True, False)}
    return api, built


@pytest.fixture
def spyne_calls(monkeypatch):
    """How often a response went through Spyne's serializer."""
    calls = []
    to_spyne = responses.to_spyne

    def counted(*args):
        calls.append(args[0])
        return to_spyne(*args)

    monkeypatch.setattr(responses, "to_spyne", counted)
    return calls


def _compare(apps, spyne_calls, version, operation, envelope):
    api, built = apps
    api.envelope = envelope
    reference = call(built[version, False], version, operation)
    assert spyne_calls == [operation]
    spyne_calls.clear()
    direct = call(built[version, True], version, operation)
    assert direct == reference
    return reference


@pytest.mark.parametrize("version", ["1.1", "1.2"])
@pytest.mark.parametrize("operation, envelope", DIRECT)
def test_direct_response_is_spynes(apps, spyne_calls, version, operation, envelope):
    status, headers, body = _compare(apps, spyne_calls, version, operation, envelope)
    assert spyne_calls == []  # written by soap/responses.py
    assert status == "200 OK" and dict(headers)["Content-Type"] == CONTENT_TYPE[version]
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<soap1")
    assert f"<tns:{operation}Result><tns:error>".encode() in body


@pytest.mark.parametrize("version", ["1.1", "1.2"])
@pytest.mark.parametrize("operation, envelope", SPYNE)
def test_other_shapes_left_to_spyne(apps, spyne_calls, version, operation, envelope):
    _compare(apps, spyne_calls, version, operation, envelope)
    assert spyne_calls == [operation]


def test_characters_xml_cannot_carry_become_replacement(apps, spyne_calls):
    _status, _headers, body = _compare(apps, spyne_calls, "1.1", "CreateWebHook",
                                       Envelope(Error.OK, "OK\x00", NOT_XML))
    text = body.decode()
    assert "<tns:message>OK\ufffd</tns:message>" in text
    assert "<tns:app>a\ufffdb\ufffdc\ufffd\ufffd\ufffd\ufffd\ufffd</tns:app>" in text
    assert "<tns:lastError>\ufffd\ufffd end \x7f\x85\x9f \ufffd</tns:lastError>" in text


def test_faults_stay_spynes(apps):
    """A request Spyne rejects never reaches the writer: its Fault is Spyne's."""
    _api, built = apps
    environ = request("1.1", "NoSuchOperation")
    started = []
    body = b"".join(built["1.1", True](environ, lambda *a: started.append(a)))
    assert started[0][0].startswith("500") and b"<faultcode>soap11env:Client" in body


def test_escaping_is_lxmls_for_every_character():
    """The writer escapes text itself: the same bytes as lxml's over all of XML 1.0's
    Char range, U+FFFD for every other character (as service._xml_safe makes it)."""
    from lxml import etree

    chars = [0x9, 0xA, 0xD, *range(0x20, 0xD800), *range(0xE000, 0xFFFE),
             *range(0x10000, 0x110000)]
    others = set(range(0x110000)).difference(chars)
    assert len(others) == 0x20 - 3 + 0x800 + 2
    for char in map(chr, others):
        assert responses.escape(f"a{char}b") == "a\ufffdb"
    for at in range(0, len(chars), 4096):
        text = "".join(map(chr, chars[at:at + 4096]))
        element = etree.Element("a")
        element.text = text
        assert etree.tostring(element, encoding="UTF-8") == (
            f"<a>{responses.escape(text)}</a>".encode()), hex(chars[at])
