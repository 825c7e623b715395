"""The four operations, independent of any wire format.

Each takes plain values and returns an :class:`Envelope` (error, message, result) with
the result as plain dicts; the SOAP, JSON and legacy layers only translate. Everything
here blocks (store, password hashing): protocol layers call it from worker threads.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from soapservice import auth, outage, signing
from soapservice.config import Settings
from soapservice.errors import EVENTS, Error, log_internal_error
from soapservice.lookups import CreationLookups
from soapservice.store import accounts, deliveries, resend, webhooks
from soapservice.targets import TargetPolicy, TargetRefused
from soapservice.xmltext import NOT_XML

log = logging.getLogger(__name__)

MAX_APP_LENGTH = 255
DELIVERIES_DEFAULT, DELIVERIES_MAX = 50, 500
GRACE_DEFAULT_SEC, GRACE_MAX_SEC = 86400, 604800
RESEND_WINDOW_SEC = 14 * 86400
TESTS_PER_MINUTE = 10

# TestWebHook's body: the shape of the legacy platform's sample event (SPEC §2), the
# same for every event name.
TEST_SAMPLE = json.dumps({
    "id": 371, "optinsetup_id": 60, "subscriber_id": 6049065,
    "fields": [{"id": 1, "value": "max.muster@example.com"}, {"id": 2, "value": "Herr"},
               {"id": 3, "value": "Max"}, {"id": 4, "value": "Muster"}],
    "lists": [{"id": 1, "value": 1}, {"id": 3, "value": 0}, {"id": 5, "value": 0}],
    "activate_at": "2025-11-11 09:27:29"}, separators=(",", ":"))


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


class Refused(Exception):
    """An operation's answer with an error code and message."""

    def __init__(self, error: Error, message: str):
        super().__init__(message)
        self.error, self.message = error, message


def timestamp(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def webhook_dict(hook, buffered: int, held: int | None = None) -> dict:
    """A webhook as every protocol returns it (SPEC §1 field names). GetWebHooks adds
    ``heldEvents`` (SPEC §7; an XML attribute in SOAP, which clients holding the older
    WSDL ignore); the other operations answer exactly as before."""
    out = {
        "id": hook.id, "app": hook.app, "event": hook.event, "url": hook.url,
        "active": bool(hook.active), "created": timestamp(hook.created_at),
        "deactivatedAt": timestamp(hook.deactivated_at),
        "failureCount": hook.failure_count, "bufferedEvents": buffered,
        "droppedEvents": hook.dropped_events,
        "lastSuccessAt": timestamp(hook.last_success_at),
        "lastFailureAt": timestamp(hook.last_failure_at),
        "lastError": hook.last_error, "secret": hook.secret,
    }
    if held is not None:
        out["heldEvents"] = held
    return out


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    import base64
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _present(value) -> bool:
    return value is not None and not (isinstance(value, str) and value.strip() == "")


def _require(**params):
    for name, value in params.items():
        if not _present(value):
            raise Refused(Error.MISSING_PARAMETER, f"Missing required parameter: {name}")


# What XML 1.0 cannot carry (and lone surrogates, which UTF-8 cannot): stored once via
# the JSON API, such a value would break every SOAP answer listing it.


def _check_text(**params):
    for name, value in params.items():
        if isinstance(value, str) and NOT_XML.search(value):
            raise Refused(Error.INVALID_VALUE, f"{name} contains characters that are not allowed")


def _webhook_id(value) -> int:
    if isinstance(value, bool):
        raise Refused(Error.INVALID_VALUE, "webhookId must be a positive integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise Refused(Error.INVALID_VALUE, "webhookId must be a positive integer") from None
    if number <= 0 or number > 2**63 - 1:
        raise Refused(Error.INVALID_VALUE, "webhookId must be a positive integer")
    return number


# The registry's operations by the core method behind each (WebhookAPI.as_account).
_CORE = {"CreateWebHook": "_create", "GetWebHooks": "_list", "ActivateWebHook": "_activate",
         "DeleteWebHookById": "_delete", "GetWebHookDeliveries": "_deliveries",
         "RotateWebHookSecret": "_rotate", "ResendWebHookEvents": "_resend",
         "TestWebHook": "_test"}


class WebhookAPI:
    def __init__(self, settings: Settings, authenticator: auth.Authenticator | None = None,
                 target_policy: TargetPolicy | None = None, resolve=None):
        self.settings = settings
        self.auth = authenticator or auth.Authenticator(
            accounts.find, cache_sec=settings.auth_cache_sec,
            gate=auth.KdfGate(slots=settings.login_concurrency))
        self.targets = target_policy or TargetPolicy(settings.allow_private_targets,
                                                     settings.allowed_target_cidrs)
        self._resolve = resolve
        # CreateWebHook's lookups: bounded in time, at most 2 in flight per account.
        self.lookups = CreationLookups(settings.dns_timeout_sec)
        # Called with a webhook id after it is deleted or deactivated by the API, so an
        # in-process delivery loop drops what it holds for it at once.
        self.on_webhook_deleted: list = []
        # Called with a webhook id after ActivateWebHook queued replayed deliveries.
        self.on_webhook_activated: list = []
        # TestWebHook's sender: (url, headers, body) -> sender.AttemptResult, blocking
        # (the wiring runs the delivery sender on the reactor for it). None: no tests.
        self.send_test = None
        self._tests: dict[int, deque] = {}
        self._tests_lock = threading.Lock()
        self.clock = time.monotonic

    # -- plumbing ---------------------------------------------------------------------
    def _call(self, fn, username, password, address, **params) -> Envelope:
        def authenticated():
            _require(username=username, password=password)
            _check_text(username=username, password=password, **params)
            try:
                account = self.auth.check(username, password, address or "-")
            except auth.Throttled:
                return Envelope(Error.THROTTLED, "Too many failed logins; try again later")
            if account is None:
                return Envelope(Error.AUTH_FAILED, "Authentication failed")
            return fn(account, **params)
        return self._guarded(authenticated)

    def as_account(self, account, operation: str, **params) -> Envelope:
        """The core of ``operation`` (a registry name) for an account its portal session
        already authenticated: the same checks, refusals and answers as the call with
        the password (``params`` by the core's names: ``webhook_id``, ``state``, ...)."""
        fn = getattr(self, _CORE[operation])

        def checked():
            _check_text(**params)
            return fn(account, **params)
        return self._guarded(checked)

    def _guarded(self, run) -> Envelope:
        try:
            return run()
        except Refused as refused:
            return Envelope(refused.error, refused.message)
        except Exception as exc:
            if outage.is_store_error(exc):  # logged once per episode, with its cause
                outage.STORE.failed(exc, "api")
                return Envelope(Error.INTERNAL, "The service cannot use its store right "
                                "now; try again later")
            reference = log_internal_error(log, "api")
            return Envelope(Error.INTERNAL, f"Internal error (reference {reference})")

    # -- operations -------------------------------------------------------------------
    def create_webhook(self, username, password, app=None, event=None, url=None,
                       address=None) -> Envelope:
        return self._call(self._create, username, password, address, app=app, event=event,
                          url=url)

    def _create(self, account, app, event, url):
        _require(app=app, event=event, url=url)
        if len(app) > MAX_APP_LENGTH:
            raise Refused(Error.INVALID_VALUE, f"app is longer than {MAX_APP_LENGTH} characters")
        if event not in EVENTS:
            raise Refused(Error.UNKNOWN_EVENT,
                          f"Unknown event {event!r}; supported: {', '.join(EVENTS)}")
        try:
            url = self.targets.check_url(url, functools.partial(
                self.lookups.resolve, account.id, self._resolve or self.targets.resolver))
        except TargetRefused as exc:
            raise Refused(Error.INVALID_URL, f"Invalid URL: {exc}") from None
        try:
            hook = webhooks.create(account.id, app, event, url, new_secret(),
                                   self.settings.max_webhooks_per_account)
        except webhooks.LimitReached:
            raise Refused(Error.LIMIT_REACHED, "Webhook limit of the account reached "
                          f"({self.settings.max_webhooks_per_account})") from None
        except webhooks.Duplicate as duplicate:
            # A retried create (a timeout, a lost answer) gets what the first one made.
            hook = duplicate.args[0]
            buffered = webhooks.buffered_counts([hook])[0]
            return Envelope(Error.OK, f"OK: webhook {hook.id} exists already with this "
                            "app, event and URL; it is returned unchanged",
                            webhook_dict(hook, buffered))
        return Envelope(Error.OK, "OK", webhook_dict(hook, 0))

    def get_webhooks(self, username, password, app=None, event=None,
                     address=None) -> Envelope:
        return self._call(self._list, username, password, address, app=app, event=event)

    def _list(self, account, app, event):
        app = app if _present(app) else None
        event = event if _present(event) else None
        if event is not None and event not in EVENTS:
            raise Refused(Error.UNKNOWN_EVENT,
                          f"Unknown event {event!r}; supported: {', '.join(EVENTS)}")
        rows = webhooks.listing(account.id, app, event)
        held = webhooks.held_counts([h for h, _ in rows])
        return Envelope(Error.OK, "OK", [webhook_dict(h, n, k)
                                         for (h, n), k in zip(rows, held, strict=True)])

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
            raise Refused(Error.INVALID_VALUE, "replayEvents must be 0 or 1")
        outcome = webhooks.activate(account.id, number, replay_flag)
        if outcome is None:
            raise Refused(Error.NOT_FOUND, f"Webhook {number} not found")
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
            raise Refused(Error.NOT_FOUND, f"Webhook {number} not found")
        for callback in self.on_webhook_deleted:
            callback(number)
        return Envelope(Error.OK, "OK", number)


    def get_webhook_deliveries(self, username, password, webhookId=None, state=None,
                               limit=None, beforeId=None, address=None) -> Envelope:
        return self._call(self._deliveries, username, password, address,
                          webhook_id=webhookId, state=state, limit=limit, before_id=beforeId)

    def _deliveries(self, account, webhook_id, state, limit, before_id):
        _require(webhookId=webhook_id)
        number = _webhook_id(webhook_id)
        state = str(state).strip() if _present(state) else None
        if state is not None and state not in deliveries.STATES:
            raise Refused(Error.INVALID_VALUE,
                          f"state must be one of {', '.join(deliveries.STATES)}")
        count = _int_in("limit", limit, 1, DELIVERIES_MAX, DELIVERIES_DEFAULT)
        before = _int_in("beforeId", before_id, 1, 2**63 - 1, None)
        if webhooks.get(account.id, number) is None:
            raise Refused(Error.NOT_FOUND, f"Webhook {number} not found")
        rows = deliveries.for_webhook(number, state, count, before)
        return Envelope(Error.OK, "OK", [delivery_dict(row) for row in rows])

    def rotate_webhook_secret(self, username, password, webhookId=None, graceSeconds=None,
                              address=None) -> Envelope:
        return self._call(self._rotate, username, password, address,
                          webhook_id=webhookId, grace=graceSeconds)

    def _rotate(self, account, webhook_id, grace):
        _require(webhookId=webhook_id)
        number = _webhook_id(webhook_id)
        grace_sec = _int_in("graceSeconds", grace, 0, GRACE_MAX_SEC, GRACE_DEFAULT_SEC)
        hook = webhooks.rotate_secret(account.id, number, new_secret(), grace_sec)
        if hook is None:
            raise Refused(Error.NOT_FOUND, f"Webhook {number} not found")
        buffered = webhooks.buffered_counts([hook])[0]
        return Envelope(Error.OK, "OK", webhook_dict(hook, buffered))


    def resend_webhook_events(self, username, password, webhookId=None, eventId=None,
                              since=None, until=None, address=None) -> Envelope:
        return self._call(self._resend, username, password, address, webhook_id=webhookId,
                          event_id=eventId, since=since, until=until)

    def _resend(self, account, webhook_id, event_id, since, until):
        _require(webhookId=webhook_id)
        number = _webhook_id(webhook_id)
        event = None
        if _present(event_id):
            event = _int_in("eventId", event_id, 1, 2**63 - 1, None)
        now = time.time()
        end = _moment("until", until, now)
        start = _moment("since", since, end - RESEND_WINDOW_SEC)
        if start > end:
            raise Refused(Error.INVALID_VALUE, "since must not be after until")
        if end - start > RESEND_WINDOW_SEC:
            raise Refused(Error.INVALID_VALUE, "The window from since to until is at most "
                          "14 days; resend in several calls")
        try:
            queued = resend.resend(account.id, number, event, start, end, now)
        except resend.TooMany:
            raise Refused(Error.INVALID_VALUE, f"More than {resend.MAX_EVENTS} events match; "
                          "narrow since/until") from None
        except ValueError:
            raise Refused(Error.INVALID_VALUE, f"Webhook {number} is inactive: activate it "
                          "first") from None
        if queued is None:
            raise Refused(Error.NOT_FOUND, f"Webhook {number} not found")
        if queued:
            for callback in self.on_webhook_activated:  # wakes an in-process loop
                callback(number)
        return Envelope(Error.OK, "OK", queued)

    def test_webhook(self, username, password, webhookId=None, address=None) -> Envelope:
        return self._call(self._test, username, password, address, webhook_id=webhookId)

    def _test(self, account, webhook_id):
        _require(webhookId=webhook_id)
        number = _webhook_id(webhook_id)
        hook = webhooks.get(account.id, number)
        if hook is None:
            raise Refused(Error.NOT_FOUND, f"Webhook {number} not found")
        if self.send_test is None:
            raise Refused(Error.INTERNAL, "This process sends no tests")
        if not self._test_allowed(hook.id):
            raise Refused(Error.THROTTLED, f"At most {TESTS_PER_MINUTE} tests per minute "
                          "per webhook; try again later")
        msg_id = "msg_test_" + secrets.token_hex(8)
        now = time.time()
        previous = (hook.previous_secret if (hook.previous_secret_until or 0) > now
                    else None)
        headers = signing.headers(hook.secret, msg_id, TEST_SAMPLE, hook.event, hook.app,
                                  now, previous)
        headers[b"x-soapservice-test"] = [b"1"]
        outcome = self.send_test(hook.url, headers, TEST_SAMPLE.encode())
        error = outcome.error
        ok = outcome.status is not None and 200 <= outcome.status < 300
        if error is None and not ok:
            error = f"HTTP {outcome.status}"
        return Envelope(Error.OK, "OK", {
            "status": outcome.status, "durationMs": int(round(outcome.duration_ms)),
            "error": None if ok else error, "messageId": msg_id})

    def _test_allowed(self, hook_id: int) -> bool:
        """At most TESTS_PER_MINUTE per webhook in any 60 s (per process)."""
        now = self.clock()
        with self._tests_lock:
            recent = self._tests.setdefault(hook_id, deque())
            while recent and recent[0] <= now - 60:
                recent.popleft()
            if len(recent) >= TESTS_PER_MINUTE:
                return False
            recent.append(now)
            return True


def _int_in(name: str, value, low: int, high: int, default):
    """An optional integer parameter within [low, high]; error 6 otherwise."""
    if not _present(value):
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise Refused(Error.INVALID_VALUE, f"{name} must be an integer") from None
    if not low <= number <= high:
        raise Refused(Error.INVALID_VALUE, f"{name} must be between {low} and {high}")
    return number


def _moment(name: str, value, default: float) -> float:
    """An optional dateTime parameter (a datetime, or ISO 8601 text; UTC when it names
    no zone) as a timestamp; error 6 when unreadable."""
    if not _present(value):
        return default
    if not isinstance(value, datetime):
        try:
            value = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise Refused(Error.INVALID_VALUE, f"{name} must be a dateTime "
                          "(e.g. 2026-12-01T10:00:00Z)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _snippet(text):
    return None if text is None else text[:1024]


def delivery_dict(row) -> dict:
    """A delivery as GetWebHookDeliveries returns it (SPEC §7 field names)."""
    delivery, attempts = row.delivery, row.attempts
    latest = attempts[0] if attempts else None
    return {
        "id": delivery.id, "messageId": signing.message_id(
            delivery.id if delivery.message_of is None else delivery.message_of),
        "eventId": row.event.id, "event": row.event.name,
        "subscriberId": row.event.subscriber, "state": row.state,
        "created": timestamp(delivery.created_at), "attemptCount": delivery.attempts,
        "nextAttemptAt": timestamp(delivery.next_at) if row.state in (
            "pending", "failed", "held") else None,
        "deliveredAt": timestamp(delivery.delivered_at),
        "lastStatus": latest.status if latest else None,
        "lastError": latest.error if latest else None,
        "attempts": [{"at": timestamp(a.at), "status": a.status, "error": a.error,
                      "durationMs": int(round(a.duration_ms or 0)),
                      "responseSnippet": _snippet(a.response_snippet)} for a in attempts],
    }
