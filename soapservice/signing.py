"""Request headers of a delivery, signed in the Standard Webhooks format.

The signature is the ``standardwebhooks`` library's (its key decoding, its message
``{id}.{timestamp}.{body}``, HMAC-SHA256, ``v1,<base64>``), computed from an HMAC
keyed once per secret and copied per message: the key's padding and the two hash
states are set up once, not at every delivery (``tests/test_signing.py`` checks the
result against the library's own ``sign``)."""

from __future__ import annotations

import hashlib
import hmac
from binascii import b2a_base64
from functools import lru_cache

from standardwebhooks import Webhook as _Signer

from soapservice import __version__

USER_AGENT = f"soapservice/{__version__}".encode()


@lru_cache(maxsize=4096)
def _keyed(secret: str) -> hmac.HMAC:
    """An HMAC-SHA256 keyed with the secret as the library decodes it (its errors for
    an empty or malformed secret included); copied, never updated itself."""
    return hmac.new(_Signer(secret)._whsecret, digestmod=hashlib.sha256)


@lru_cache(maxsize=4096)
def _encoded(event: str, app: str) -> tuple[list[bytes], list[bytes]]:
    return [event.encode()], [app.encode("utf-8")]


def sign(secret: str, msg_id: str, timestamp: int, body: str | bytes) -> str:
    """``v1,<signature>``, as ``standardwebhooks.Webhook(secret).sign`` writes it
    (``body`` as text, or as its UTF-8 bytes: the same signature)."""
    return _signature(secret, msg_id, timestamp, body).decode("ascii")


def _signature(secret: str, msg_id: str, timestamp: int, body: str | bytes) -> bytes:
    mac = _keyed(secret).copy()
    if isinstance(body, str):
        body = body.encode()
    mac.update(f"{msg_id}.{timestamp}.".encode())
    mac.update(body)  # the body's bytes as they are sent: not copied into the message
    return b"v1," + b2a_base64(mac.digest(), newline=False)


def message_id(delivery_id: int) -> str:
    """The ``webhook-id``: the same for every retry of one delivery."""
    return f"msg_{delivery_id}"


def headers(secret: str, msg_id: str, body: str | bytes, event: str, app: str,
            now: float, previous: str | None = None) -> dict[bytes, list[bytes]]:
    """``previous``: a rotated-out secret still in its grace period; the header then
    carries both signatures, the new one first (``v1,<new> v1,<old>``). ``body``: the
    text, or the UTF-8 bytes that are sent (signed without encoding it again)."""
    stamp = int(now)
    signature = _signature(secret, msg_id, stamp, body)
    if previous:
        signature += b" " + _signature(previous, msg_id, stamp, body)
    event_bytes, app_bytes = _encoded(event, app)
    return {
        b"content-type": _JSON,
        b"user-agent": _AGENT,
        b"webhook-id": [msg_id.encode()],
        b"webhook-timestamp": [str(stamp).encode()],
        b"webhook-signature": [signature],
        b"x-soapservice-event": event_bytes,
        b"x-soapservice-app": app_bytes,
    }


# The values every delivery repeats, as one-item lists shared by all (never changed:
# the sender copies them into the request's headers).
_JSON = [b"application/json"]
_AGENT = [USER_AGENT]
