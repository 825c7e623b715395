"""The four operations, independent of any wire format.

Each takes plain values and returns an :class:`Envelope` (error, message, result) with
the result as plain dicts; the SOAP, JSON and legacy layers only translate. Everything
here blocks (store, password hashing): protocol layers call it from worker threads.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from soapservice import auth
from soapservice.config import Settings
from soapservice.errors import EVENTS, Error
from soapservice.store import accounts, webhooks
from soapservice.targets import TargetPolicy, TargetRefused

log = logging.getLogger(__name__)

MAX_APP_LENGTH = 255


@dataclass
class Envelope:
    error: int
    message: str
    result: Any = None

    def as_dict(self) -> dict:
        out = {"error": int(self.error), "message": self.message}
        if self.result is not None:
            out["result"] = self.result
        return out


class Failure(Exception):
    def __init__(self, error: Error, message: str):
        super().__init__(message)
        self.error, self.message = error, message


def timestamp(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def webhook_dict(hook, buffered: int) -> dict:
    """A webhook as every protocol returns it (SPEC §1 field names)."""
    return {
        "id": hook.id, "app": hook.app, "event": hook.event, "url": hook.url,
        "active": bool(hook.active), "created": timestamp(hook.created_at),
        "deactivatedAt": timestamp(hook.deactivated_at),
        "failureCount": hook.failure_count, "bufferedEvents": buffered,
        "droppedEvents": hook.dropped_events,
        "lastSuccessAt": timestamp(hook.last_success_at),
        "lastFailureAt": timestamp(hook.last_failure_at),
        "lastError": hook.last_error, "secret": hook.secret,
    }


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    import base64
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _present(value) -> bool:
    return value is not None and not (isinstance(value, str) and value.strip() == "")


def _require(**params):
    for name, value in params.items():
        if not _present(value):
            raise Failure(Error.MISSING_PARAMETER, f"Missing required parameter: {name}")


# What XML 1.0 cannot carry (and lone surrogates, which UTF-8 cannot): stored once via
# the JSON API, such a value would break every SOAP answer listing it.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _check_text(**params):
    for name, value in params.items():
        if isinstance(value, str) and _NOT_XML.search(value):
            raise Failure(Error.INVALID_VALUE, f"{name} contains characters that are not allowed")


def _webhook_id(value) -> int:
    if isinstance(value, bool):
        raise Failure(Error.INVALID_VALUE, "webhookId must be a positive integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise Failure(Error.INVALID_VALUE, "webhookId must be a positive integer") from None
    if number <= 0 or number > 2**63 - 1:
        raise Failure(Error.INVALID_VALUE, "webhookId must be a positive integer")
    return number


class WebhookAPI:
    def __init__(self, settings: Settings, authenticator: auth.Authenticator | None = None,
                 target_policy: TargetPolicy | None = None, resolve=None):
        self.settings = settings
        self.auth = authenticator or auth.Authenticator(accounts.find,
                                                        cache_sec=settings.auth_cache_sec)
        self.targets = target_policy or TargetPolicy(settings.allow_private_targets,
                                                     settings.allowed_target_cidrs)
        self._resolve = resolve
        # Called with a webhook id after it is deleted or deactivated by the API, so an
        # in-process delivery loop drops what it holds for it at once.
        self.on_webhook_deleted: list = []
        # Called with a webhook id after ActivateWebHook queued replayed deliveries.
        self.on_webhook_activated: list = []

    # -- plumbing ---------------------------------------------------------------------
    def _call(self, fn, username, password, address, **params) -> Envelope:
        try:
            _require(username=username, password=password)
            _check_text(username=username, password=password, **params)
            try:
                account = self.auth.check(username, password, address or "-")
            except auth.Throttled:
                return Envelope(Error.THROTTLED, "Too many failed logins; try again later")
            if account is None:
                return Envelope(Error.AUTH_FAILED, "Authentication failed")
            return fn(account, **params)
        except Failure as failure:
            return Envelope(failure.error, failure.message)
        except Exception:
            reference = uuid.uuid4().hex[:12]
            log.exception("internal error, reference %s", reference)
            return Envelope(Error.INTERNAL, f"Internal error (reference {reference})")

    # -- operations -------------------------------------------------------------------
    def create_webhook(self, username, password, app=None, event=None, url=None,
                       address=None) -> Envelope:
        return self._call(self._create, username, password, address, app=app, event=event,
                          url=url)

    def _create(self, account, app, event, url):
        _require(app=app, event=event, url=url)
        if len(app) > MAX_APP_LENGTH:
            raise Failure(Error.INVALID_VALUE, f"app is longer than {MAX_APP_LENGTH} characters")
        if event not in EVENTS:
            raise Failure(Error.UNKNOWN_EVENT,
                          f"Unknown event {event!r}; supported: {', '.join(EVENTS)}")
        try:
            self.targets.check_url(url, self._resolve)
        except TargetRefused as exc:
            raise Failure(Error.INVALID_URL, f"Invalid URL: {exc}") from None
        try:
            hook = webhooks.create(account.id, app, event, url, new_secret(),
                                   self.settings.max_webhooks_per_account)
        except webhooks.LimitReached:
            raise Failure(Error.LIMIT_REACHED, "Webhook limit of the account reached "
                          f"({self.settings.max_webhooks_per_account})") from None
        return Envelope(Error.OK, "OK", webhook_dict(hook, 0))

    def get_webhooks(self, username, password, app=None, event=None,
                     address=None) -> Envelope:
        return self._call(self._list, username, password, address, app=app, event=event)

    def _list(self, account, app, event):
        app = app if _present(app) else None
        event = event if _present(event) else None
        if event is not None and event not in EVENTS:
            raise Failure(Error.UNKNOWN_EVENT,
                          f"Unknown event {event!r}; supported: {', '.join(EVENTS)}")
        rows = webhooks.listing(account.id, app, event)
        return Envelope(Error.OK, "OK", [webhook_dict(h, n) for h, n in rows])

    def activate_webhook(self, username, password, webhookId=None, replayEvents=None,
                         address=None) -> Envelope:
        return self._call(self._activate, username, password, address,
                          webhook_id=webhookId, replay=replayEvents)

    def _activate(self, account, webhook_id, replay):
        _require(webhookId=webhook_id)
        number = _webhook_id(webhook_id)
        if not _present(replay):
            replay_flag = False
        elif str(replay).strip() in ("0", "1"):
            replay_flag = str(replay).strip() == "1"
        else:
            raise Failure(Error.INVALID_VALUE, "replayEvents must be 0 or 1")
        outcome = webhooks.activate(account.id, number, replay_flag)
        if outcome is None:
            raise Failure(Error.NOT_FOUND, f"Webhook {number} not found")
        hook, replayed = outcome
        if replayed:
            for callback in self.on_webhook_activated:
                callback(hook.id)
        result = webhook_dict(hook, 0)
        result["replayedEvents"] = replayed
        return Envelope(Error.OK, "OK", result)

    def delete_webhook(self, username, password, webhookId=None, address=None) -> Envelope:
        return self._call(self._delete, username, password, address, webhook_id=webhookId)

    def _delete(self, account, webhook_id):
        _require(webhookId=webhook_id)
        number = _webhook_id(webhook_id)
        if not webhooks.delete(account.id, number):
            raise Failure(Error.NOT_FOUND, f"Webhook {number} not found")
        for callback in self.on_webhook_deleted:
            callback(number)
        return Envelope(Error.OK, "OK", number)
