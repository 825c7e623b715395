"""Property-based fuzzing of the running server (hypothesis): arbitrary envelopes and
parameter values (unicode, huge, empty, control characters, wrong types) at /soap,
/soap12, /json/<op> and the legacy endpoints, and ingest bodies at POST /events.
Whatever comes in, the answer is a valid envelope, a SOAP fault or a 4xx -- never a
500 without a fault, never a traceback -- and refused input changes nothing stored."""

import http.client
import itertools
import json
import sqlite3
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.conftest import PASSWORD, Server
from tests.support.server import server_fixture

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
TNS = "urn:soapservice:webhooks:1"
OPERATIONS = {
    "CreateWebHook": ("username", "password", "app", "event", "url"),
    "GetWebHooks": ("username", "password", "app", "event"),
    "ActivateWebHook": ("username", "password", "webhookId", "replayEvents"),
    "DeleteWebHookById": ("username", "password", "webhookId"),
}
FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Every request comes from a fresh loopback address, so the brute-force throttle
# (per address) never turns the fuzzing into a run of error 8.
_sources = (f"127.{a}.{b}.{c}" for a, b, c in itertools.product(
    range(10, 250), range(1, 250), range(1, 250)))


@server_fixture(scope="module")
def server(tmp_path_factory):
    # No delivery loop: accepted events stay put, so the store only changes by request.
    srv = Server(tmp_path_factory.mktemp("fuzz"), {"SOAPSERVICE_DELIVERY": "0"})
    srv.add_account("alice")
    srv.start()
    for app in ("crm", "shop"):
        status, body = request(srv, "POST", "/json/CreateWebHook", urlencode({
            "username": "alice", "password": PASSWORD, "app": app,
            "event": "optin_finalized", "url": "http://127.0.0.1:9/h"}).encode(),
            "application/x-www-form-urlencoded")
        assert json.loads(body)["error"] == 0
    yield srv
    assert request(srv, "GET", "/healthz")[0] == 200
    srv.stop()


def request(srv, method, path, body=None, ctype=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30,
                                      source_address=(next(_sources), 0))
    try:
        headers = {"Content-Type": ctype} if ctype else {}
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def webhooks(srv):
    with sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True) as db:
        return db.execute("SELECT * FROM webhook ORDER BY id").fetchall()


class Store:
    """The webhook table before a call; after it, unchanged unless the call said OK."""

    def __init__(self, srv):
        self.srv, self.rows = srv, webhooks(srv)

    def check(self, accepted: bool):
        if not accepted:
            assert webhooks(self.srv) == self.rows, "refused input changed the store"


def assert_no_internals(body: bytes):
    for marker in (b"Traceback", b'File "/', b"site-packages", b"Exception:"):
        assert marker not in body, body[:500]


def check_soap(status: int, body: bytes, soap_ns: str) -> bool:
    """Returns True when the call was accepted (error 0)."""
    assert_no_internals(body)
    assert status in (200, 400, 405, 413, 415, 500), status
    if status >= 400 and status != 500:
        return False
    root = etree.fromstring(body)  # always a well-formed XML answer
    assert root.tag in (f"{{{soap_ns}}}Envelope", f"{{{SOAP11}}}Envelope"), root.tag
    if status == 500:
        assert root.find(f".//{{{root.tag[1:].split('}')[0]}}}Fault") is not None
        # A client's fault, never the server's: a Server fault means something broke.
        assert b"Client" in body or b"Sender" in body, body[:600]
        return False
    errors = [e.text for e in root.iter() if isinstance(e.tag, str) and
              etree.QName(e).localname == "error"]
    assert len(errors) == 1 and errors[0].lstrip("-").isdigit(), body[:500]
    assert int(errors[0]) != 99, body[:600]  # internal error: a bug, whatever the input
    return int(errors[0]) == 0


def check_json(status: int, body: bytes) -> bool:
    assert_no_internals(body)
    assert status in (200, 400, 404, 405, 413), (status, body[:300])
    if status != 200:
        return False
    answer = json.loads(body)
    assert isinstance(answer["error"], int) and isinstance(answer["message"], str)
    assert answer["error"] != 99, answer  # internal error: a bug, whatever the input
    if answer["error"] != 0:
        assert "result" not in answer
    return answer["error"] == 0


# -- strategies -----------------------------------------------------------------------

NASTY = ["", " ", "0", "-1", "1", "2", "99999999999999999999999", "1e309", "NaN", "null",
         "true", "<x/>", "]]>", "&amp;", "\u202e", "\ufeff", "😀" * 50, "a" * 5000,
         "optin_finalized", "http://127.0.0.1:9/h", "http://[::1]/", "javascript:1",
         "alice", PASSWORD, "' OR 1=1 --", "%00", "\\x00", "${jndi:ldap://x}"]

text_values = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=200),
    st.text(st.characters(min_codepoint=0, max_codepoint=31), max_size=5),
    st.integers().map(str),
    st.builds(lambda n: "x" * n, st.integers(0, 300_000)),
)
credentials = st.one_of(st.just(("alice", PASSWORD)), st.just(("alice", PASSWORD)),
                        st.just(("alice", PASSWORD)), st.tuples(text_values, text_values))


# Mostly-valid values get past the first checks, so the odd one reaches the store.
PLAUSIBLE = {
    "app": text_values,
    "event": st.one_of(st.sampled_from(["optin_finalized", "optout_finalized",
                                        "profilemanager_finalized"]), text_values),
    "url": st.one_of(st.just("http://127.0.0.1:9/h"),
                     st.text(max_size=60).map(lambda t: "http://127.0.0.1:9/" + t),
                     st.text(max_size=30).map(lambda t: f"http://{t}/"), text_values),
    "webhookId": st.one_of(st.sampled_from(["1", "2", "3"]), text_values),
    "replayEvents": st.one_of(st.sampled_from(["0", "1"]), text_values),
}


@st.composite
def calls(draw):
    """(operation, {parameter: value or None}) with the right or wrong credentials."""
    operation = draw(st.sampled_from(sorted(OPERATIONS)))
    user, password = draw(credentials)
    params = {"username": user, "password": password}
    for name in OPERATIONS[operation][2:]:
        params[name] = draw(st.one_of(st.none(), PLAUSIBLE[name], PLAUSIBLE[name]))
    return operation, params


def xml_value(value: str) -> str:
    # Escaped like a client would; characters XML cannot carry go in raw, which makes
    # the document malformed: that must be a fault too.
    return escape(value)


def soap_envelope(operation, params, soap_ns, wrong_type=None):
    parts = []
    for name, value in params.items():
        if value is None:
            continue
        inner = f"<x>{xml_value(value)}</x>" if name == wrong_type else xml_value(value)
        parts.append(f"<w:{name}>{inner}</w:{name}>")
    return (f'<soap:Envelope xmlns:soap="{soap_ns}" xmlns:w="{TNS}"><soap:Body>'
            f'<w:{operation}>{"".join(parts)}</w:{operation}></soap:Body></soap:Envelope>')


# -- properties -----------------------------------------------------------------------

@FUZZ
@given(call=calls(), version=st.sampled_from(["1.1", "1.2"]), data=st.data())
def test_soap_parameters(server, call, version, data):
    operation, params = call
    soap_ns, path, ctype = ((SOAP11, "/soap", "text/xml; charset=utf-8") if version == "1.1"
                            else (SOAP12, "/soap12", "application/soap+xml; charset=utf-8"))
    wrong_type = data.draw(st.one_of(st.none(), st.sampled_from(list(params))))
    store = Store(server)
    body = soap_envelope(operation, params, soap_ns, wrong_type).encode("utf-8",
                                                                       "surrogatepass")
    status, answer = request(server, "POST", path, body, ctype)
    store.check(check_soap(status, answer, soap_ns))


envelope_mutations = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.tuples(st.integers(0, 400), st.binary(min_size=1, max_size=50)),  # splice
    st.integers(0, 400),  # truncate
)


@st.composite
def envelopes(draw):
    operation, params = draw(calls())
    soap_ns = draw(st.sampled_from([SOAP11, SOAP12, "urn:not-soap", ""]))
    good = soap_envelope(operation, params, soap_ns).encode("utf-8", "surrogatepass")
    mutation = draw(envelope_mutations)
    if isinstance(mutation, bytes):
        return mutation
    if isinstance(mutation, int):
        return good[:mutation]
    at, junk = mutation
    return good[:at] + junk + good[at:]


@FUZZ
@given(body=envelopes(), path=st.sampled_from(["/soap", "/soap12"]),
       ctype=st.sampled_from(["text/xml", "text/xml; charset=utf-8", "application/soap+xml",
                              "text/xml; charset=latin-1", "text/xml; charset=utf-16",
                              "application/json", "text/xml; charset=bogus", ""]))
def test_soap_arbitrary_envelopes(server, body, path, ctype):
    store = Store(server)
    status, answer = request(server, "POST", path, body, ctype or None)
    accepted = check_soap(status, answer, SOAP12 if path == "/soap12" else SOAP11)
    store.check(accepted)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              text_values),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=10), children, max_size=3)),
    max_leaves=8)


@FUZZ
@given(call=calls(), data=st.data(),
       encoding=st.sampled_from(["json", "form", "query"]))
def test_json_parameters(server, call, data, encoding):
    operation, params = call
    for name in list(params):
        if data.draw(st.integers(0, 4)) == 0:
            params[name] = data.draw(json_values)  # wrong types too
    params = {k: v for k, v in params.items() if v is not None}
    path = data.draw(st.sampled_from([f"/json/{operation}",
                                      f"/webservice/webservice/json/{operation.lower()}"]))
    store = Store(server)
    if encoding == "json":
        body = json.dumps(params).encode()
        status, answer = request(server, "POST", path, body, "application/json")
    else:
        flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        encoded = urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in flat.items()})
        if encoding == "form":
            status, answer = request(server, "POST", path, encoded.encode(),
                                     "application/x-www-form-urlencoded")
        else:
            status, answer = request(server, "GET", path + "?" + encoded[:6000])
    store.check(check_json(status, answer))


@FUZZ
@given(body=st.one_of(st.binary(max_size=3000),
                      json_values.map(lambda v: json.dumps(v).encode()),
                      st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n)),
       operation=st.sampled_from(sorted(OPERATIONS)))
def test_json_arbitrary_bodies(server, body, operation):
    store = Store(server)
    status, answer = request(server, "POST", f"/json/{operation}", body, "application/json")
    store.check(check_json(status, answer))


@FUZZ
@given(body=envelopes())
def test_legacy_soap_arbitrary_envelopes(server, body):
    store = Store(server)
    status, answer = request(server, "POST", "/webservice/webservice/soap3", body,
                             "text/xml; charset=utf-8")
    assert_no_internals(answer)
    assert status in (200, 400, 405, 413, 500), status
    if status in (200, 500):
        root = etree.fromstring(answer)
        assert etree.QName(root).localname == "Envelope"
        if status == 500:
            assert b"Fault>" in answer
    store.check(status == 200 and b"<error" in answer and b">0<" in answer)


def event_rows(srv):
    with sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True) as db:
        return [db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("event", "delivery")]


INGEST_TOKEN = "test-ingest-token"  # tests.conftest.Server's

ingest_messages = st.one_of(
    json_values,
    st.fixed_dictionaries({
        "account": st.one_of(st.just("alice"), json_values),
        "event": st.one_of(st.sampled_from(["optin_finalized", "optout_finalized"]),
                           json_values),
        "data": st.one_of(st.dictionaries(st.text(max_size=10), json_values, max_size=4),
                          st.fixed_dictionaries({"subscriber_id": json_values}),
                          json_values),
    }),
)


@FUZZ
@given(body=st.one_of(ingest_messages.map(lambda m: json.dumps(m).encode()),
                      st.binary(max_size=2000)),
       token=st.sampled_from([INGEST_TOKEN, INGEST_TOKEN, INGEST_TOKEN, "", "wrong"]))
def test_ingest_bodies(server, body, token):
    before = event_rows(server)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request("POST", "/events", body, headers)
        response = conn.getresponse()
        status, answer = response.status, response.read()
    finally:
        conn.close()
    assert_no_internals(answer)
    assert status in (202, 400, 401, 413), (status, answer[:300])
    parsed = json.loads(answer)
    if status == 202:
        assert isinstance(parsed["id"], int)
    else:
        assert isinstance(parsed["error"], str)
        assert event_rows(server) == before, "a refused event changed the store"


def post_event(srv, body: bytes):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request("POST", "/events", body, {"Content-Type": "application/json",
                                               "Authorization": f"Bearer {INGEST_TOKEN}"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_ingest_deeply_nested_body_is_a_400(server):
    status, answer = post_event(server, b"[" * 100_000 + b"]" * 100_000)
    assert status == 400, (status, answer[:200])


@pytest.mark.parametrize("message", [
    '{"account": "\\ud800", "event": "optin_finalized", "data": {}}',
    '{"account": "alice", "event": "optin_finalized", "data": {"a": "\\ud800"}}',
])
def test_ingest_lone_surrogate_is_a_400(server, message):
    before = event_rows(server)
    status, answer = post_event(server, message.encode())
    assert event_rows(server) == before
    assert status == 400, (status, answer[:200])


@settings(max_examples=60, deadline=None, derandomize=True)
@given(app=st.one_of(text_values, st.text(st.characters(codec="utf-8"), min_size=1)),
       url_path=st.text(max_size=40))
def test_whatever_json_accepts_soap_can_list(server, app, url_path):
    # JSON can carry strings XML cannot (control characters, lone surrogates): if the
    # API stored one, every later SOAP GetWebHooks of the account would break.
    status, body = request(server, "POST", "/json/CreateWebHook", json.dumps({
        "username": "alice", "password": PASSWORD, "app": app,
        "event": "optout_finalized", "url": "http://127.0.0.1:9/" + url_path}).encode(),
        "application/json")
    if not check_json(status, body):
        return
    created = json.loads(body)["result"]["id"]
    status, listing = request(server, "POST", "/soap", soap_envelope(
        "GetWebHooks", {"username": "alice", "password": PASSWORD}, SOAP11).encode(),
        "text/xml")
    assert status == 200 and check_soap(status, listing, SOAP11), listing[:300]
    status, body = request(server, "POST", "/json/DeleteWebHookById", json.dumps({
        "username": "alice", "password": PASSWORD, "webhookId": created}).encode(),
        "application/json")
    assert check_json(status, body)


def test_stored_text_xml_cannot_carry_is_listed_replaced(server):
    # Text that reaches the store by another way than this API (the delivery engine
    # records a receiver's error message in lastError) must not break the listing.
    status, body = request(server, "POST", "/json/CreateWebHook", json.dumps({
        "username": "alice", "password": PASSWORD, "app": "ctl",
        "event": "optin_finalized", "url": "http://127.0.0.1:9/ctl"}).encode(),
        "application/json")
    hook_id = json.loads(body)["result"]["id"]
    with sqlite3.connect(server.db_path) as db:
        db.execute("UPDATE webhook SET last_error = ? WHERE id = ?",
                   ("HTTP 500: \x00\x01 bad \x1b[31m", hook_id))
    try:
        for soap_ns, path, ctype in ((SOAP11, "/soap", "text/xml"),
                                     (SOAP12, "/soap12", "application/soap+xml")):
            status, listing = request(server, "POST", path, soap_envelope(
                "GetWebHooks", {"username": "alice", "password": PASSWORD}, soap_ns).encode(),
                ctype)
            assert status == 200 and check_soap(status, listing, soap_ns), listing[:300]
            assert "HTTP 500: \ufffd\ufffd bad \ufffd[31m" in listing.decode()
    finally:
        request(server, "POST", "/json/DeleteWebHookById", json.dumps({
            "username": "alice", "password": PASSWORD, "webhookId": hook_id}).encode(),
            "application/json")


def test_server_still_healthy_and_listing_intact(server):
    status, body = request(server, "GET", "/json/GetWebHooks?" + urlencode(
        {"username": "alice", "password": PASSWORD}))
    answer = json.loads(body)
    assert status == 200 and answer["error"] == 0
    # Whatever the fuzzing created, SOAP can still list it (no value XML cannot carry).
    status, body = request(server, "POST", "/soap", soap_envelope(
        "GetWebHooks", {"username": "alice", "password": PASSWORD}, SOAP11).encode(),
        "text/xml")
    assert status == 200 and check_soap(status, body, SOAP11)
