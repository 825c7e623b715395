"""Bodies parsed on the reactor thread (forms anywhere, JSON at the JSON API) are small:
1 MiB of ``&`` in a form took 0.6 s of the reactor thread to split. The rule in-process,
then the refusals and a normal form call through a real server."""

import pytest
import requests

from soapservice.web.limits import MAX_FORM_FIELDS, form_refusal
from tests.conftest import PASSWORD, Server
from tests.support.server import server_fixture

FORM = b"application/x-www-form-urlencoded"
LIMIT = 64 * 1024


def refusal(body, ctype=FORM, path=b"/json/GetWebHooks"):
    refused = form_refusal(body, ctype, path, LIMIT)
    return None if refused is None else (refused.status[:3], refused.message)


def test_forms_and_json_api_bodies_within_the_limits_pass():
    assert refusal(b"&".join(b"f%d=v" % i for i in range(MAX_FORM_FIELDS))) is None
    assert refusal(b"a=" + b"x" * (LIMIT - 2)) is None
    assert refusal(b'{"username": "a"}', b"application/json") is None
    # A SOAP body is not parsed on the reactor: only the body limit applies to it.
    assert refusal(b"<x/>" * 100_000, b"text/xml", b"/soap") is None


@pytest.mark.parametrize("body, ctype, path, status, words", [
    (b"&" * (1 << 20), FORM, b"/json/GetWebHooks", b"413", b"form body larger than 65536"),
    (b"&" * MAX_FORM_FIELDS, FORM, b"/demo", b"400", b"more than 256 fields"),
    (b";" * MAX_FORM_FIELDS, FORM, b"/reactivate/x", b"400", b"more than 256 fields"),
    (b"".join(b"--B\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n"
              for _ in range(300)) + b"--B--\r\n",
     b"multipart/form-data; boundary=B", b"/json/GetWebHooks", b"400",
     b"more than 256 fields"),
    (b'{"a": "' + b"x" * LIMIT + b'"}', b"application/json",
     b"/webservice/webservice/json/getwebhooks", b"413", b"JSON API body larger than 65536"),
])
def test_bigger_ones_are_refused_with_a_reason(body, ctype, path, status, words):
    got_status, message = refusal(body, ctype, path)
    assert got_status == status and words in message


@server_fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("forms"))
    srv.add_account("alice")
    yield srv.start()
    srv.stop()


def test_through_the_server(server):
    flood = requests.post(server.url + "/json/GetWebHooks", data=b"&" * (1 << 20),
                          headers={"Content-Type": FORM.decode()}, timeout=10)
    assert flood.status_code == 413 and "form body larger than 65536" in flood.text
    many = requests.post(server.url + "/json/GetWebHooks", data=b"a=1&" * 300,
                         headers={"Content-Type": FORM.decode()}, timeout=10)
    assert many.status_code == 400 and "more than 256 fields" in many.text
    ok = requests.post(server.url + "/json/GetWebHooks",
                       data={"username": "alice", "password": PASSWORD}, timeout=10)
    assert ok.status_code == 200 and ok.json()["error"] == 0
    assert requests.get(server.url + "/healthz", timeout=30).status_code == 200
    # Answered before twisted.web saw a whole request, and still one access-log line each.
    log = server.log()
    assert '"POST /json/GetWebHooks HTTP/1.1" 413 ' in log
    assert '"POST /json/GetWebHooks HTTP/1.1" 400 ' in log
