"""System notifications on deactivation, and the signed reactivation link.

The link's token names the webhook and one deactivation of it (its ordinal), expires,
and is signed with a server key kept in the store (HMAC-SHA256), so it cannot be forged
and stops working once the webhook is active again (or deactivated anew: the ordinal
no longer matches).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging

from soapservice import portal_links
from soapservice.steering import GONE_REASON
from soapservice.store import notifications as stored
from soapservice.store import server_secret, webhooks

log = logging.getLogger(__name__)

KEY_NAME = "reactivation_key"


class TokenError(ValueError):
    """The token is malformed, tampered with, or expired (``expired`` tells which)."""

    def __init__(self, message: str, expired: bool = False):
        super().__init__(message)
        self.expired = expired


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(key: bytes, webhook_id: int, deactivation: int, expires_at: float) -> str:
    payload = _b64(json.dumps([webhook_id, deactivation, int(expires_at)],
                              separators=(",", ":")).encode())
    mac = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{mac}"


def read_token(key: bytes, token: str, now: float) -> tuple[int, int]:
    """(webhook id, deactivation ordinal) of a valid token; else :class:`TokenError`."""
    try:
        payload, mac = token.split(".")
        expected = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(mac, expected):
            raise TokenError("the link is not valid")
        webhook_id, deactivation, expires_at = json.loads(_unb64(payload))
        webhook_id, deactivation = int(webhook_id), int(deactivation)
        expires_at = float(expires_at)
    except TokenError:
        raise
    except (ValueError, TypeError):
        raise TokenError("the link is not valid") from None
    if now > expires_at:
        raise TokenError("the link has expired", expired=True)
    return webhook_id, deactivation


def link_for(base_url: str, token: str) -> str:
    return f"{base_url}/reactivate/{token}"


def store_notification(event, *, base_url: str, ttl_sec: float, mail: bool = False) -> int:
    """Store the notification of a deactivation (runs inside the outcome transaction)
    and return its id; ``mail``: its mail is due now (kept pending across restarts)."""
    token = make_token(server_secret(KEY_NAME), event.webhook_id, event.deactivations,
                       event.at + ttl_sec)
    hook = webhooks.get_by_id(event.webhook_id)
    if event.last_error == GONE_REASON:  # the receiver said so (steering)
        why = "its receiver answered 410 Gone: gone (410), the URL is gone for good."
    else:
        why = (f"its URL stayed unreachable through the whole retry schedule "
               f"({event.failure_count} consecutive failed attempts).")
    reason = f"Webhook {hook.id} ({hook.app}, {hook.event}, {hook.url}) was deactivated: {why}"
    held = getattr(event, "held", 0)
    if held:
        reason += (f" {held} events of other webhooks at the same URL wait behind its "
                   f"buffer (held, to keep each subscriber's order); they go after the "
                   f"replay, or when the buffer is discarded or the webhook deleted.")
    # The portal link opens the customer portal on this webhook, valid as long.
    portal_link = portal_links.make_link(server_secret(KEY_NAME), base_url, event.account_id,
                                         event.webhook_id, event.at + ttl_sec)
    return stored.create(
        account_id=event.account_id, webhook_id=event.webhook_id, reason=reason,
        last_error=event.last_error, failure_count=event.failure_count,
        buffered=event.buffered, held=held, link=link_for(base_url, token), at=event.at,
        mail=mail, portal_link=portal_link)
