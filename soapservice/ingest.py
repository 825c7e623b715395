"""Event ingest: the one code path behind the Python function, ``soapservice emit`` and
``POST /events``. An accepted event is committed before the call returns."""

from __future__ import annotations

import json
import time

from soapservice import policy
from soapservice.errors import EVENTS
from soapservice.store import outbox

MAX_EVENT_BYTES = 256 * 1024


class IngestError(ValueError):
    """The event was refused; nothing was stored. The message says why."""


def encode(data) -> str:
    """The body exactly as it will be POSTed: compact JSON, encoded once."""
    if not isinstance(data, dict):
        raise IngestError("event data must be a JSON object")
    try:
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise IngestError(f"event data is not valid JSON: {exc}") from None
    if len(body.encode("utf-8")) > MAX_EVENT_BYTES:
        raise IngestError(f"event data is larger than {MAX_EVENT_BYTES} bytes")
    return body


def emit(account: str, event: str, data, *, window_sec: float,
         now: float | None = None) -> tuple[int, int]:
    """Store ``event`` with ``data`` for ``account``; returns (event id, webhooks queued).

    Blocks on the store: call from a worker thread when on the reactor.
    """
    if not isinstance(account, str) or not account:
        raise IngestError("account is required")
    if event not in EVENTS:
        raise IngestError(f"unknown event {event!r}; supported: {', '.join(EVENTS)}")
    body = encode(data)
    try:
        return outbox.store_event(account, event, body, policy.subscriber_of(data),
                                  time.time() if now is None else now, window_sec)
    except outbox.UnknownAccount:
        raise IngestError(f"unknown account {account!r}") from None


class Ingestor:
    """``emit`` bound to the settings, telling listeners (the delivery loop) afterwards."""

    def __init__(self, settings):
        self.settings = settings
        self.listeners: list = []

    def emit(self, account: str, event: str, data) -> tuple[int, int]:
        result = emit(account, event, data, window_sec=self.settings.buffer_window_sec)
        for listener in self.listeners:
            listener(result)
        return result
