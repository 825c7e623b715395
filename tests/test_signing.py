"""What a delivery puts on the wire. Its signature is the Standard Webhooks library's,
byte for byte: the keyed HMAC kept per secret gives what ``standardwebhooks.Webhook.sign``
gives, for every secret and body, and a receiver verifying with the library accepts it;
the request's bytes are the same at every attempt (the sender keeps parsed URLs)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import standardwebhooks

from soapservice import signing
from soapservice.api import new_secret

NOW = 1_700_000_123.75
BODIES = ['{"k":1}', "", '{"name":"Zoë","emoji":"\U0001f600"}', "x" * 70_000]


@pytest.mark.parametrize("body", BODIES)
def test_signature_is_the_librarys(body):
    secret = new_secret()
    library = standardwebhooks.Webhook(secret).sign(
        "msg_42", datetime.fromtimestamp(int(NOW), UTC), body)
    assert signing.sign(secret, "msg_42", int(NOW), body) == library
    # Kept per secret: a second message with the same key signs afresh.
    other = standardwebhooks.Webhook(secret).sign(
        "msg_43", datetime.fromtimestamp(int(NOW), UTC), body)
    assert signing.sign(secret, "msg_43", int(NOW), body) == other != library


def test_headers_verify_with_the_library_and_carry_both_signatures_in_a_rotation():
    new, old, body = new_secret(), new_secret(), '{"k":7,"opt":"in"}'
    sent = signing.headers(new, "msg_7", body, "optin_finalized", "Zoë's app", NOW, old)
    plain = {k.decode(): v[0].decode("utf-8") for k, v in sent.items()}
    assert plain["webhook-timestamp"] == str(int(NOW))
    assert plain["x-soapservice-app"] == "Zoë's app"
    assert list(sent) == [b"content-type", b"user-agent", b"webhook-id",
                          b"webhook-timestamp", b"webhook-signature",
                          b"x-soapservice-event", b"x-soapservice-app"]
    stamp = datetime.fromtimestamp(int(NOW), UTC)
    assert plain["webhook-signature"] == " ".join(
        standardwebhooks.Webhook(s).sign("msg_7", stamp, body) for s in (new, old))
    for secret in (new, old):  # each side of the rotation verifies on its own
        verifier = standardwebhooks.Webhook(secret)
        verifier._Webhook__verify_timestamp = lambda header: stamp
        assert verifier.verify(body, plain) == {"k": 7, "opt": "in"}


def test_a_secret_the_library_refuses_is_refused_the_same_way():
    with pytest.raises(standardwebhooks.webhooks.EmptyWebhookSecretError):
        signing.sign("whsec_", "msg_1", int(NOW), "{}")


def test_each_attempt_goes_out_byte_for_byte_the_same_on_a_kept_connection():
    """What the receiver reads: the signed headers in their order, Host last (once),
    Content-Length first, then the body, for the first attempt to a URL and for the
    next one on the same kept-alive connection (the parsed URL reused)."""
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    from soapservice.sender import Sender
    from soapservice.targets import TargetPolicy

    reactor = MemoryReactorClock()
    sender = Sender(reactor, TargetPolicy(allow_private=True), None, timeout_sec=5)
    secret, body = "whsec_" + "QUJD" * 8, '{"k":1}'
    signature = standardwebhooks.Webhook(secret).sign(
        "msg_5", datetime.fromtimestamp(int(NOW), UTC), body)
    transport = StringTransport()
    results = []
    for attempt in range(2):
        sent = signing.headers(secret, "msg_5", body, "optin_finalized", "Zoë", NOW)
        sender.send("http://127.0.0.1:8080/h/1?x=1", sent, body.encode(),
                    key=(1, 1)).addCallback(results.append)
        if attempt == 0:
            _host, _port, factory, *_rest = reactor.tcpClients[0]
            protocol = factory.buildProtocol(None)
            protocol.makeConnection(transport)
        assert transport.value() == (
            b"POST /h/1?x=1 HTTP/1.1\r\nContent-Length: 7\r\n"
            b"Content-Type: application/json\r\nUser-Agent: " + signing.USER_AGENT + b"\r\n"
            b"Webhook-Id: msg_5\r\nWebhook-Timestamp: 1700000123\r\n"
            b"Webhook-Signature: " + signature.encode() + b"\r\n"
            b"X-Soapservice-Event: optin_finalized\r\nX-Soapservice-App: Zo\xc3\xab\r\n"
            b"Host: 127.0.0.1:8080\r\n\r\n" + body.encode())
        transport.clear()
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        assert [r.status for r in results] == [200] * (attempt + 1)
    assert len(reactor.tcpClients) == 1  # the second attempt reused the connection
