"""The addresses that WSDLs, links and the start line name without
SOAPSERVICE_PUBLIC_URL: the bound port, IPv6 in brackets, never a wildcard address."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import requests

from soapservice.addresses import PerAddress, base_from_host, bracket
from soapservice.config import Settings
from tests.support.server import server_fixture

SOAP_ADDRESS = re.compile(rb':address location="([^"]+)"')


class Serve:
    """``soapservice serve`` with ``env``; ``line`` is its start line, ``port`` the
    port it names."""

    def __init__(self, tmp_path, env):
        self.env = {**os.environ, "SOAPSERVICE_DATABASE_URL": f"sqlite:///{tmp_path}/s.db",
                    "PYTHONUNBUFFERED": "1", **env}
        self.log = tmp_path / "serve.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "soapservice", "serve"],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            match = re.search(r"listening on (http://\S+?):(\d+)/.*", text)
            if match:
                self.line, self.port, self.text = match.group(0), int(match.group(2)), text
                self.url = f"{match.group(1)}:{self.port}"
                return
            assert self.proc.poll() is None, text
            time.sleep(0.05)
        raise AssertionError("serve did not start:\n" + self.log.read_text())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


@server_fixture
def serve(tmp_path):
    started = []

    def start(**env):
        started.append(Serve(tmp_path, {k: str(v) for k, v in env.items()}))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def _locations(url, headers=None):
    out = []
    for path in ("/soap?wsdl", "/soap12?wsdl", "/webservice/webservice/soap3?wsdl"):
        answer = requests.get(url + path, headers=headers or {}, timeout=30)
        assert answer.status_code == 200, path
        out.append(SOAP_ADDRESS.search(answer.content).group(1).decode())
    return out


def test_port_0_names_the_bound_port(serve):
    srv = serve(SOAPSERVICE_HOST="127.0.0.1", SOAPSERVICE_PORT=0)
    assert srv.port != 0 and srv.url == f"http://127.0.0.1:{srv.port}"
    assert f"WSDL: http://127.0.0.1:{srv.port}/soap?wsdl" in srv.line
    base = f"http://127.0.0.1:{srv.port}"
    assert _locations(srv.url) == [f"{base}/soap", f"{base}/soap12",
                                   f"{base}/webservice/webservice/soap3"]
    demo = requests.get(srv.url + "/demo/operations.json", timeout=30).json()
    assert demo["baseUrl"] == base


def test_a_wildcard_host_names_the_address_each_request_came_in_on(serve):
    srv = serve(SOAPSERVICE_HOST="0.0.0.0", SOAPSERVICE_PORT=0)
    assert "0.0.0.0" not in srv.line.replace("SOAPSERVICE_HOST=0.0.0.0", "")
    assert "links in notifications" in srv.text and "SOAPSERVICE_PUBLIC_URL" in srv.text
    port = srv.port
    assert _locations(f"http://127.0.0.1:{port}") == [
        f"http://127.0.0.1:{port}/soap", f"http://127.0.0.1:{port}/soap12",
        f"http://127.0.0.1:{port}/webservice/webservice/soap3"]
    # Another name for the same server: its own address, not the first request's.
    other = {"Host": f"soap.example.test:{port}"}
    assert _locations(f"http://127.0.0.1:{port}", other) == [
        f"http://soap.example.test:{port}/soap", f"http://soap.example.test:{port}/soap12",
        f"http://soap.example.test:{port}/webservice/webservice/soap3"]
    assert _locations(f"http://127.0.0.1:{port}")[0] == f"http://127.0.0.1:{port}/soap"
    demo = requests.get(f"http://127.0.0.1:{port}/demo/operations.json", headers=other,
                        timeout=30).json()
    assert demo["baseUrl"] == f"http://soap.example.test:{port}"
    # Named as the committed snapshots name it, each document is the snapshot.
    from tests.conftest import ROOT
    for path, snapshot in (("/soap?wsdl", "soapservice.wsdl"),
                           ("/soap12?wsdl", "soapservice12.wsdl"),
                           ("/webservice/webservice/soap3?wsdl", "legacy-soap3.wsdl")):
        served = requests.get(f"http://127.0.0.1:{port}{path}", timeout=30,
                              headers={"Host": "127.0.0.1:8080"}).content
        assert served == (ROOT / "wsdl" / snapshot).read_bytes(), snapshot
    # A garbled Host header never reaches the document.
    bad = requests.get(f"http://127.0.0.1:{port}/soap?wsdl", timeout=30,
                       headers={"Host": '"><x a="'})
    assert bad.status_code == 200 and b'"><x' not in bad.content
    assert b"0.0.0.0" not in bad.content


def test_ipv6_hosts_are_bracketed(serve):
    import socket
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    srv = serve(SOAPSERVICE_HOST="::1", SOAPSERVICE_PORT=0)
    base = f"http://[::1]:{srv.port}"
    assert srv.url == base and f"WSDL: {base}/soap?wsdl" in srv.line
    assert _locations(base)[0] == f"{base}/soap"
    wild = serve(SOAPSERVICE_HOST="::", SOAPSERVICE_PORT=0)
    assert ":::" not in wild.text
    assert _locations(f"http://[::1]:{wild.port}")[0] == f"http://[::1]:{wild.port}/soap"


@pytest.mark.parametrize(("host", "base"), [
    ("127.0.0.1", "http://127.0.0.1:8080"),
    ("::1", "http://[::1]:8080"),
    ("hooks.internal", "http://hooks.internal:8080"),
])
def test_base_url_without_public_url(host, base):
    settings = Settings(host=host, port=8080)
    assert settings.base_url == base and not settings.address_from_request


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_base_url_of_a_wildcard_host_names_this_machine(host):
    import socket
    settings = Settings(host=host, port=8080)
    assert settings.base_url == f"http://{bracket(socket.gethostname())}:8080"
    assert settings.address_from_request
    assert not Settings(host=host, public_url="https://hooks.example.com/").address_from_request
    assert Settings(host=host, public_url="https://x.test/").base_url == "https://x.test"


@pytest.mark.parametrize(("header", "base"), [
    ("127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("[::1]:8080", "http://[::1]:8080"),
    ("Hooks.Example.COM", "http://hooks.example.com"),
    ("", "http://fallback"), (None, "http://fallback"),
    ("a b", "http://fallback"), ('x"/><y', "http://fallback"), ("h:99999999", "http://fallback"),
    ("x" * 300, "http://fallback"),
])
def test_base_from_host(header, base):
    assert base_from_host(header, "http://fallback") == base


def test_per_address_documents_are_bounded():
    built = []
    docs = PerAddress(lambda a: built.append(a) or a.encode(), size=2)
    assert [docs.get(a) for a in ("a", "b", "a", "c", "b")] == [b"a", b"b", b"a", b"c", b"b"]
    assert built == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came
