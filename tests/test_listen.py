"""``soapservice listen``: what it answers and what it prints for good, bad and
unsigned deliveries."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from soapservice.listen import check_signature
from soapservice.signing import headers as signed_headers
from tests.conftest import free_port

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _headers(secret=SECRET, body='{"n": 1}'):
    raw = signed_headers(secret, "msg_7", body, "optin_finalized", "crm", time.time())
    return {k.decode(): v[0].decode() for k, v in raw.items()}


def test_check_signature_says_why():
    body = b'{"n": 1}'
    assert check_signature([SECRET], body, _headers()) == "signature verified"
    other = "whsec_" + "A" * 32
    assert check_signature([other, SECRET], body, _headers()) == "signature verified"
    wrong = check_signature([other], body, _headers())
    assert wrong.startswith("signature NOT verified: ") and "match" in wrong.lower()
    tampered = check_signature([SECRET], b'{"n": 2}', _headers())
    assert tampered.startswith("signature NOT verified")
    assert check_signature([], body, _headers()) == "signature not checked (no --secret)"
    assert check_signature([SECRET], body, {}) == "no webhook-signature header"


@pytest.mark.server
def test_listen_prints_each_delivery_and_answers_the_chosen_status(tmp_path):
    port = free_port()
    out = open(tmp_path / "listen.out", "w")
    proc = subprocess.Popen([sys.executable, "-m", "soapservice", "listen", "--port",
                             str(port), "--secret", SECRET, "--status", "503"],
                            stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "receiving webhooks" not in (tmp_path / "listen.out").read_text():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        answer = requests.post(f"http://127.0.0.1:{port}/hook", data=b'{"n": 1}',
                               headers=_headers(), timeout=10)
        assert answer.status_code == 503
        forged = requests.post(f"http://127.0.0.1:{port}/hook", data=b'{"n": 1}',
                               headers=_headers("whsec_" + "B" * 32), timeout=10)
        assert forged.status_code == 503
        time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        out.close()
    lines = (tmp_path / "listen.out").read_text().splitlines()
    deliveries = [line for line in lines if "webhook-id" in line]
    assert len(deliveries) == 2
    assert "optin_finalized  webhook-id msg_7  POST /hook  signature verified  -> 503" \
        in deliveries[0]
    assert "signature NOT verified" in deliveries[1]
    assert '    {"n": 1}' in lines


@pytest.mark.server
def test_listen_refuses_a_bad_status():
    proc = subprocess.run([sys.executable, "-m", "soapservice", "listen", "--status", "99"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not an HTTP status" in proc.stderr
