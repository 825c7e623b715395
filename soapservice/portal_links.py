"""Signed, expiring links that open the customer portal on one webhook (SPEC §7).

A notification mail carries one beside the reactivation link. The token names the
account and the webhook and when it expires, and is signed with HMAC-SHA256 under a key
derived from the server key the reactivation links use (``notify.KEY_NAME`` in the
store: created once, kept across restarts). The derivation keeps the two kinds apart: a
reactivation token is never a valid portal token, nor the other way round. Verifying
compares the signature in constant time before it reads anything of the payload.

Pure: no store, no clock of its own (``now`` is a parameter), no Twisted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

# The path under the public base URL at which the portal takes a token (``make_link``).
LINK_PATH = "/portal/link/"
# Tokens longer than this are refused unread (a valid one is under 120 characters).
MAX_TOKEN_LENGTH = 512
_PURPOSE = b"soapservice portal link v1"


class LinkError(ValueError):
    """The token is malformed, tampered with, or expired (``expired`` says which)."""

    def __init__(self, message: str, expired: bool = False):
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class PortalLink:
    """What a valid token names."""

    account_id: int
    webhook_id: int
    expires_at: int  # UNIX seconds


def link_key(server_key: bytes) -> bytes:
    """The portal links' own key, derived from the server key (the reactivation key)."""
    return hmac.new(server_key, _PURPOSE, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(server_key: bytes, payload: str) -> str:
    return _b64(hmac.new(link_key(server_key), payload.encode("ascii"),
                         hashlib.sha256).digest())


def make_token(server_key: bytes, account_id: int, webhook_id: int,
               expires_at: float) -> str:
    """A token naming the account and webhook, valid until ``expires_at`` (UNIX s)."""
    payload = _b64(json.dumps([int(account_id), int(webhook_id), int(expires_at)],
                              separators=(",", ":")).encode("ascii"))
    return f"{payload}.{_mac(server_key, payload)}"


def make_link(server_key: bytes, base_url: str, account_id: int, webhook_id: int,
              expires_at: float) -> str:
    """The full link for a mail: ``<base_url>/portal/link/<token>``."""
    token = make_token(server_key, account_id, webhook_id, expires_at)
    return f"{base_url.rstrip('/')}{LINK_PATH}{token}"


def verify(server_key: bytes, token: str, now: float) -> PortalLink:
    """What a valid, unexpired token names; else :class:`LinkError` (``expired`` set
    when only the time is wrong: the signature was good)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise LinkError("the link is not valid")
    payload, mac = token.split(".")
    try:
        expected = _mac(server_key, payload)
    except UnicodeEncodeError:
        raise LinkError("the link is not valid") from None
    if not hmac.compare_digest(mac.encode("ascii", "replace"), expected.encode("ascii")):
        raise LinkError("the link is not valid")
    try:
        values = json.loads(_unb64(payload))
        if not (isinstance(values, list) and len(values) == 3
                and all(type(v) is int for v in values)):
            raise ValueError(values)
        account_id, webhook_id, expires_at = values
    except ValueError:
        raise LinkError("the link is not valid") from None
    if now > expires_at:
        raise LinkError("the link has expired", expired=True)
    return PortalLink(account_id, webhook_id, expires_at)


def token_of(path_or_link: str) -> str:
    """The token of a link or of a request path ending in it (what follows LINK_PATH)."""
    return path_or_link.rsplit(LINK_PATH, 1)[-1].split("?", 1)[0]
