"""Raw bad requests against a running server: each gets a SOAP Client fault (or a 4xx
with a message), the server keeps serving, and the store is unchanged after it."""

import gzip
import socket
import sqlite3
import zlib

import pytest
import requests

from tests.conftest import PASSWORD, Server
from tests.support.server import server_fixture

LIMIT = 8192
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
XML = {"Content-Type": "text/xml; charset=utf-8"}


def envelope(body: str, soap_ns: str = SOAP11, prolog: str = "") -> str:
    return (f'{prolog}<soap:Envelope xmlns:soap="{soap_ns}" '
            f'xmlns:w="urn:soapservice:webhooks:1"><soap:Body>{body}</soap:Body>'
            '</soap:Envelope>')


def call(operation: str, **params) -> str:
    fields = {"username": "alice", "password": PASSWORD, **params}
    inner = "".join(f"<w:{k}>{v}</w:{k}>" for k, v in fields.items())
    return envelope(f"<w:{operation}>{inner}</w:{operation}>")


@server_fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("bad"), {"SOAPSERVICE_MAX_BODY_BYTES": str(LIMIT)})
    server.add_account("alice")
    server.start()
    created = requests.post(server.url + "/json/CreateWebHook", data={
        "username": "alice", "password": PASSWORD, "app": "crm",
        "event": "optin_finalized", "url": "http://127.0.0.1:9/hook"}).json()
    assert created["error"] == 0, created
    yield server
    server.stop()


def state(srv) -> tuple:
    """What a user sees (GetWebHooks) and what the store holds (rows per table)."""
    listed = requests.post(srv.url + "/soap", data=call("GetWebHooks"), headers=XML,
                           timeout=10)
    assert listed.status_code == 200 and "<tns:error>0</tns:error>" in listed.text
    with sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        counts = {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    return listed.text, counts


@pytest.fixture
def unchanged(srv):
    before = state(srv)
    assert before[1]["webhook"] == 1
    yield
    assert state(srv) == before


FAULTS = [
    # name, path, body, HTTP status, fault code, text in the fault string
    ("malformed XML", "/soap", call("GetWebHooks")[:-30], 500,
     "soap11env:Client.XMLSyntaxError", ""),
    ("not SOAP", "/soap", "<hello>world</hello>", 500, "soap11env:Client.SoapError",
     "Envelope"),
    ("unknown operation", "/soap", call("DeleteAllWebHooks"), 500,
     "soap11env:Client.ResourceNotFound", "DeleteAllWebHooks"),
    ("webhookId=abc", "/soap", call("DeleteWebHookById", webhookId="abc"), 500,
     "soap11env:Client.ValidationError", "abc"),
    ("replayEvents=yes", "/soap", call("ActivateWebHook", webhookId="1", replayEvents="yes"),
     500, "soap11env:Client.ValidationError", "yes"),
    ("empty body", "/soap", "", 500, "soap11env:Client.SoapError", "Empty request"),
    ("empty SOAP Body", "/soap", envelope(""), 500, "soap11env:Client.SoapError",
     "no operation"),
    ("SOAP 1.1 envelope on /soap12", "/soap12", call("GetWebHooks"), 500,
     "soap12env:Sender", "Envelope"),
    ("malformed XML on /soap12", "/soap12", "<soap:Envelope", 500, "soap12env:Sender",
     "XMLSyntaxError"),
]


@pytest.mark.parametrize("name, path, body, status, code, text", FAULTS,
                         ids=[f[0] for f in FAULTS])
def test_bad_envelope_gets_client_fault(srv, unchanged, name, path, body, status, code,
                                        text):
    ctype = "application/soap+xml; charset=utf-8" if path == "/soap12" else XML[
        "Content-Type"]
    answer = requests.post(srv.url + path, data=body.encode(), timeout=10,
                           headers={"Content-Type": ctype})
    assert answer.status_code == status
    assert code in answer.text and text in answer.text
    assert "Traceback" not in answer.text


def test_external_entity_is_not_read(srv, unchanged):
    prolog = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    body = envelope(f"<w:CreateWebHook><w:username>alice</w:username>"
                    f"<w:password>{PASSWORD}</w:password><w:app>&e;</w:app>"
                    "<w:event>optin_finalized</w:event><w:url>http://127.0.0.1:9/x</w:url>"
                    "</w:CreateWebHook>", prolog=prolog)
    answer = requests.post(srv.url + "/soap", data=body.encode(), headers=XML, timeout=10)
    assert "root:" not in answer.text
    # A SOAP message must not carry a DTD: refused before any entity is looked at.
    assert answer.status_code == 500 and "Client.DTDNotAllowed" in answer.text


def test_entity_expansion_bomb_is_harmless(srv, unchanged):
    entities = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    prolog = f'<?xml version="1.0"?><!DOCTYPE x [{entities}]>'
    body = call("CreateWebHook", app="&a9;", event="optin_finalized",
                url="http://127.0.0.1:9/x")
    answer = requests.post(srv.url + "/soap", data=(prolog + body).encode(), headers=XML,
                           timeout=10)
    assert answer.status_code in (200, 500)
    assert "lollol" not in answer.text


def test_body_over_limit_is_refused_413(srv, unchanged):
    padding = " " * (LIMIT + 1)
    answer = requests.post(srv.url + "/soap", data=call("GetWebHooks") + padding,
                           headers=XML, timeout=10)
    assert answer.status_code == 413
    assert f"larger than {LIMIT} bytes" in answer.text
    # Just under the limit is an ordinary call.
    body = call("GetWebHooks")
    fits = requests.post(srv.url + "/soap", data=body + " " * (LIMIT - len(body)),
                         headers=XML, timeout=10)
    assert fits.status_code == 200 and "<tns:error>0</tns:error>" in fits.text


def test_chunked_body_over_limit_is_refused_413(srv, unchanged):
    def chunks():
        yield call("GetWebHooks").encode()
        for _ in range(10):
            yield b" " * 1000

    try:
        answer = requests.post(srv.url + "/soap", data=chunks(), headers=XML, timeout=10)
    except requests.ConnectionError:
        return  # the server cut the connection while the client was still sending
    assert answer.status_code == 413


def test_huge_declared_body_is_refused_before_it_is_sent(srv, unchanged):
    """A client announcing 1 GB gets its 413 after the headers, with no body sent."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                     b"Content-Length: 1000000000\r\n\r\n<soap:Envelope")
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    assert received.startswith(b"HTTP/1.1 413"), received[:200]


def test_json_mirror_bad_bodies(srv, unchanged):
    url = srv.url + "/json/CreateWebHook"
    broken = requests.post(url, data=b'{"username": "alice",',
                           headers={"Content-Type": "application/json"}, timeout=10)
    assert broken.status_code == 400 and broken.json()["message"].startswith("Unreadable")
    listish = requests.post(url, json=["alice", PASSWORD], timeout=10)
    assert listish.status_code == 400 and "object" in listish.json()["message"]
    big = requests.post(url, json={"username": "alice", "app": "x" * LIMIT}, timeout=10)
    assert big.status_code == 413
    missing = requests.post(url, json={"username": "alice", "password": PASSWORD,
                                       "app": "crm"}, timeout=10)
    assert missing.status_code == 200 and missing.json()["error"] == 2


def test_compressed_bodies(srv, unchanged):
    """gzip/deflate request bodies (PHP SoapClient's compression option) are read; the
    body limit applies to the inflated size; broken or unknown encodings get a 4xx."""
    body = call("GetWebHooks").encode()

    def post(data, encoding):
        return requests.post(srv.url + "/soap", data=data, timeout=10,
                             headers={**XML, "Content-Encoding": encoding})

    for encoding, data in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body)),
                           ("deflate", _raw_deflate(body))):
        answer = post(data, encoding)
        assert answer.status_code == 200 and "<tns:error>0</tns:error>" in answer.text, encoding
    bomb = gzip.compress(body + b" " * (50 * LIMIT))
    assert len(bomb) < LIMIT
    answer = post(bomb, "gzip")
    assert answer.status_code == 413 and "once decompressed" in answer.text
    broken = post(gzip.compress(body)[:-12], "gzip")
    assert broken.status_code == 400 and "not valid gzip" in broken.text
    assert post(body, "br").status_code == 415
    json_gzip = requests.post(srv.url + "/json/GetWebHooks", timeout=10, data=gzip.compress(
        b"username=alice&password=" + PASSWORD.replace(" ", "+").encode()), headers={
        "Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"})
    assert json_gzip.json()["error"] == 0


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-15)
    return packer.compress(data) + packer.flush()


def test_log_has_no_traceback_nor_password(srv):
    """Runs last: after all of the above, bad input left one-line entries only, and no
    request body (a malformed one holds the password) was written to the log."""
    log = srv.log()
    assert "client fault Client.ValidationError" in log
    assert "Traceback" not in log and "CRITICAL" not in log and "WARNING spyne" not in log
    assert PASSWORD not in log
