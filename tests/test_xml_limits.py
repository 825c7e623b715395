"""Shape caps on XML requests (attributes per element, elements, depth, namespaces),
checked before the SOAP code walks the tree: the rule in-process, and the attack that
froze the whole process (~110,000 attributes on the operation element of a wrong-password
GetWebHooks, under 1 MiB) against a real server on every XML endpoint."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from lxml import etree

from soapservice.config import ConfigError, load_settings
from soapservice.soap.limits import XmlLimits, over_limit
from tests.conftest import Server
from tests.support.server import server_fixture

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
TNS = "urn:soapservice:webhooks:1"
LIMITS = XmlLimits(max_attributes=5, max_elements=20, max_depth=6, max_namespaces=4)


def tree(inner="", attributes="", ns=SOAP11):
    return etree.fromstring(
        f'<s:Envelope xmlns:s="{ns}" xmlns:w="{TNS}"><s:Body><w:GetWebHooks {attributes}>'
        f"<w:username>u</w:username>{inner}</w:GetWebHooks></s:Body></s:Envelope>")


def attrs(n, prefix="a"):
    return " ".join(f'{prefix}{i}="x"' for i in range(n))


def test_a_request_at_every_cap_passes():
    # 5 attributes; Envelope, Body, op, username + 16 = 20 elements, 6 levels with the
    # nested ones; 2 declarations + 2 = 4 namespaces.
    inner = ('<n:a xmlns:n="urn:n" xmlns:m="urn:m"><b><c/></b></n:a>' + "<x/>" * 13)
    assert over_limit(tree(inner, attrs(5)), LIMITS) is None


@pytest.mark.parametrize("inner, attributes, reason", [
    ("", attrs(6), "more than 5 attributes on one element"),
    ("", 'xmlns:n="urn:n" ' + attrs(6, "n:a"), "more than 5 attributes on one element"),
    ("<x/>" * 17, "", "more than 20 elements"),
    ("<a><b><c><d/></c></b></a>", "", "elements nested more than 6 deep"),
    ('<a xmlns:n="urn:n" xmlns:m="urn:m" xmlns:o="urn:o"/>', "",
     "more than 4 namespace declarations"),
])
def test_one_over_any_cap_is_refused_and_named(inner, attributes, reason):
    assert over_limit(tree(inner, attributes), LIMITS) == reason


def test_the_caps_are_settings():
    settings = load_settings({"SOAPSERVICE_XML_MAX_ATTRIBUTES": "50",
                              "SOAPSERVICE_XML_MAX_ELEMENTS": "1000",
                              "SOAPSERVICE_XML_MAX_DEPTH": "20",
                              "SOAPSERVICE_XML_MAX_NAMESPACES": "10"})
    assert XmlLimits.from_settings(settings) == XmlLimits(50, 1000, 20, 10)
    assert XmlLimits.from_settings(load_settings({})) == XmlLimits()
    with pytest.raises(ConfigError, match="SOAPSERVICE_XML_MAX_DEPTH"):
        load_settings({"SOAPSERVICE_XML_MAX_DEPTH": "0"})


# -- the attack, end to end ---------------------------------------------------------------

def _name(i: int) -> str:
    digits = "abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        i, r = divmod(i, 26)
        text = digits[r] + text
        if i == 0:
            return text


def freeze_request(ns=SOAP11, n=110_000) -> bytes:
    """The penetration test's request: a wrong-password GetWebHooks whose operation
    element carries ``n`` attributes (862 KB for 110,000)."""
    many = " ".join(f"{_name(i)}=''" for i in range(n))
    return (f'<s:Envelope xmlns:s="{ns}" xmlns:w="{TNS}"><s:Body><w:GetWebHooks {many}>'
            "<w:username>alice</w:username><w:password>wrong</w:password>"
            "</w:GetWebHooks></s:Body></s:Envelope>").encode()


LEGACY = "/webservice/webservice/soap3"
ENDPOINTS = [("/soap", SOAP11, "text/xml; charset=utf-8"),
             ("/soap12", SOAP12, "application/soap+xml; charset=utf-8"),
             (LEGACY, SOAP11, "text/xml; charset=utf-8")]


@server_fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("xmllimits"))
    srv.add_account("alice")
    yield srv.start()
    srv.stop()


def test_the_freeze_request_is_refused_on_every_endpoint_and_health_answers(server):
    body = freeze_request()
    assert 800_000 < len(body) < 1024 * 1024  # under the body limit: the parse runs
    bodies = {path: freeze_request(ns) for path, ns, _ in ENDPOINTS}

    def attack(endpoint):
        path, _ns, ctype = endpoint
        # Before the caps one such request held the process for ~58 s: a 20 s timeout
        # fails the test instead of hanging it.
        return requests.post(server.url + path, data=bodies[path], timeout=20,
                             headers={"Content-Type": ctype})

    with ThreadPoolExecutor(len(ENDPOINTS) * 2) as pool:
        answers = pool.map(attack, ENDPOINTS * 2)  # six at once, two per endpoint
        # Meanwhile the process answers others (a stalled reactor answers nobody).
        health = [requests.get(server.url + "/healthz", timeout=30).status_code
                  for _ in range(3)]
        answers = list(answers)
    assert health == [200, 200, 200]
    for (path, ns, _), answer in zip(ENDPOINTS * 2, answers, strict=True):
        assert answer.status_code == 500, (path, answer.status_code)
        text = answer.text
        assert ns in text and "Fault" in text, path
        assert "Client" in text or "Sender" in text, text
        assert "more than 500 attributes on one element" in text, text
        assert len(text) < 2000  # the fault does not echo the request
    log = server.log()
    assert "Traceback" not in log
    assert "authentication failed" not in log  # refused before the credentials


def test_a_request_within_the_caps_is_answered_as_usual(server):
    # 500 attributes: at the cap, so Spyne walks them; a wrong password is error 1.
    answer = requests.post(server.url + "/soap", data=freeze_request(n=500), timeout=20,
                           headers={"Content-Type": "text/xml; charset=utf-8"})
    assert answer.status_code == 200
    assert "<tns:error>1</tns:error>" in answer.text
