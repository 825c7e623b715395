"""What a reactivation link (``/reactivate/<token>``) may do, checked against the store.

The token (see :mod:`soapservice.notify`) names a webhook and one deactivation of it. It
acts at most once: once the webhook is active again, or deactivated anew (the ordinal
moved on), or deleted, the link is refused with a reason a person can read. The check
and the activation run in one write transaction, so two clicks cannot both act.
Everything here blocks: the web page calls it from the API thread pool.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from soapservice import notify
from soapservice.store import existing_secret, notifications, webhooks, write_transaction

if TYPE_CHECKING:
    from soapservice.models import Webhook


class LinkRefused(Exception):
    """The link cannot act; ``status`` is the HTTP status of the page (404 or 410)."""

    def __init__(self, status: int, title: str, detail: str):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class FormRefused(Exception):
    """The confirming POST did not come from the page this server showed."""


@dataclass
class LinkView:
    webhook_id: int
    app: str
    event: str
    url: str
    deactivated_at: float | None
    reason: str | None
    last_error: str | None
    failure_count: int
    buffered: int
    # Keys the page's anti-forgery field to this link (not the server key itself).
    form_key: bytes


def form_key(key: bytes, token: str) -> bytes:
    return hmac.new(key, b"reactivate-form|" + token.encode(), hashlib.sha256).digest()


def form_value(key: bytes, nonce: str) -> str:
    """The hidden field of the page: bound to the link and to the browser's cookie."""
    return hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()


def _hook_for(token: str, now: float) -> tuple[Webhook, bytes]:
    key = existing_secret(notify.KEY_NAME)  # read only: a GET must not create it
    if key is None:
        raise LinkRefused(404, "This link is not valid",
                          "It was not issued by this server, or it was changed on its way.")
    try:
        webhook_id, ordinal = notify.read_token(key, token, now)
    except notify.TokenError as exc:
        if exc.expired:
            raise LinkRefused(410, "This link has expired",
                              "Reactivation links work for a limited time. Reactivate the "
                              "webhook with the ActivateWebHook operation instead.") from None
        raise LinkRefused(404, "This link is not valid",
                          "It was not issued by this server, or it was changed on its way."
                          ) from None
    hook = webhooks.get_by_id(webhook_id)
    if hook is None:
        raise LinkRefused(410, "This webhook no longer exists",
                          f"Webhook {webhook_id} was deleted; there is nothing to reactivate.")
    if hook.active:
        raise LinkRefused(410, "This webhook is already active",
                          f"Webhook {hook.id} was reactivated already (with this link or "
                          "through the API), so this link has no more use.")
    if hook.deactivations != ordinal:
        raise LinkRefused(410, "This link has been replaced",
                          f"Webhook {hook.id} was reactivated and deactivated again after "
                          "this link was sent. Use the link of the newest notification.")
    return hook, key


def view(token: str, now: float) -> LinkView:
    """What the GET page shows; :class:`LinkRefused` when the link cannot act."""
    hook, key = _hook_for(token, now)
    return LinkView(hook.id, hook.app, hook.event, hook.url, hook.deactivated_at,
                    notifications.latest_reason(hook.id), hook.last_error, hook.failure_count,
                    webhooks.buffered_count(hook.id), form_key(key, token))


def reactivate(token: str, replay: bool, now: float, nonce: str,
               field: str) -> tuple[LinkView, int]:
    """Check the link and the form, then activate (replaying or discarding the buffer)
    in the same transaction. Returns the view as it was and the replayed count."""
    with write_transaction():
        before = view(token, now)
        expected = form_value(before.form_key, nonce) if nonce else ""
        if not (nonce and field and hmac.compare_digest(field, expected)):
            raise FormRefused("the form does not belong to this browser session")
        hook = webhooks.get_by_id(before.webhook_id)
        outcome = None if hook is None else webhooks.activate(
            hook.account_id, hook.id, replay, now)
        if outcome is None:  # cannot happen inside the transaction; be safe anyway
            raise LinkRefused(410, "This webhook no longer exists",
                              f"Webhook {before.webhook_id} was deleted.")
        return before, outcome[1]
