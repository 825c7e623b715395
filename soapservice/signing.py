"""Request headers of a delivery, signed in the Standard Webhooks format."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from standardwebhooks import Webhook as _Signer

from soapservice import __version__

USER_AGENT = f"soapservice/{__version__}".encode()


@lru_cache(maxsize=4096)
def _signer(secret: str) -> _Signer:
    return _Signer(secret)


def message_id(delivery_id: int) -> str:
    """The ``webhook-id``: the same for every retry of one delivery."""
    return f"msg_{delivery_id}"


def headers(secret: str, msg_id: str, body: str, event: str, app: str,
            now: float) -> dict[bytes, list[bytes]]:
    stamp = datetime.fromtimestamp(int(now), UTC)
    signature = _signer(secret).sign(msg_id, stamp, body)
    return {
        b"content-type": [b"application/json"],
        b"user-agent": [USER_AGENT],
        b"webhook-id": [msg_id.encode()],
        b"webhook-timestamp": [str(int(now)).encode()],
        b"webhook-signature": [signature.encode()],
        b"x-soapservice-event": [event.encode()],
        b"x-soapservice-app": [app.encode("utf-8")],
    }
