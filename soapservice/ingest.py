"""Event ingest: the one code path behind the Python function, ``soapservice emit`` and
``POST /events``. An accepted event is committed before the call returns."""

from __future__ import annotations

import json
import time

from twisted.internet import defer
from twisted.python.failure import Failure

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
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError:
        raise IngestError("event data is not valid UTF-8 (a lone surrogate)") from None
    if size > MAX_EVENT_BYTES:
        raise IngestError(f"event data is larger than {MAX_EVENT_BYTES} bytes")
    return body


def prepare(account: str, event: str, data) -> tuple[str, str, str, str | None]:
    """Check and encode one event: (account, event, body, subscriber) for the store."""
    if not isinstance(account, str) or not account:
        raise IngestError("account is required")
    try:
        account.encode("utf-8")
    except UnicodeEncodeError:
        raise IngestError("account is not valid UTF-8") from None
    if event not in EVENTS:
        raise IngestError(f"unknown event {event!r}; supported: {', '.join(EVENTS)}")
    return account, event, encode(data), policy.subscriber_of(data)


def emit(account: str, event: str, data, *, window_sec: float,
         now: float | None = None) -> tuple[int, int]:
    """Store ``event`` with ``data`` for ``account``; returns (event id, webhooks queued).

    Blocks on the store: call from a worker thread when on the reactor.
    """
    account, event, body, subscriber = prepare(account, event, data)
    try:
        return outbox.store_event(account, event, body, subscriber,
                                  time.time() if now is None else now, window_sec)
    except outbox.UnknownAccount:
        raise IngestError(f"unknown account {account!r}") from None


class Ingestor:
    """``emit`` bound to the settings, telling listeners (the delivery loop) afterwards.

    :meth:`submit` is the reactor's way in (``POST /events``): events arriving while a
    write runs wait and go together into the next transaction on the store thread (a
    group commit: under load, one commit carries many events instead of every request
    queueing for SQLite's write lock). Each one's Deferred fires only after the commit
    that made it durable.
    """

    MAX_BATCH = 256

    def __init__(self, settings, run_in_store=None):
        """``run_in_store(fn, *args)``: run a store function on the store thread,
        returning a Deferred (required for :meth:`submit`)."""
        self.settings = settings
        self.listeners: list = []
        self._store = run_in_store
        self._queue: list[tuple[tuple, defer.Deferred]] = []
        self._writing = False

    def emit(self, account: str, event: str, data) -> tuple[int, int]:
        result = emit(account, event, data, window_sec=self.settings.buffer_window_sec)
        for listener in self.listeners:
            listener(result)
        return result

    def submit(self, account: str, event: str, data) -> defer.Deferred:
        """Store an event (call on the reactor thread); fires with (event id, webhooks
        queued) once committed, or fails with :class:`IngestError`."""
        try:
            item = prepare(account, event, data)
        except IngestError:
            return defer.fail()
        d = defer.Deferred()
        self._queue.append((item, d))
        if not self._writing:
            self._write()
        return d

    @defer.inlineCallbacks
    def _write(self):
        self._writing = True
        try:
            while self._queue:
                batch = self._queue[:self.MAX_BATCH]
                del self._queue[:self.MAX_BATCH]
                try:
                    results = yield self._store(outbox.store_events, [i for i, _ in batch],
                                                time.time(), self.settings.buffer_window_sec)
                except Exception:
                    failure = Failure()
                    for _, d in batch:
                        d.errback(failure)
                    continue
                if any(not isinstance(r, Exception) for r in results):
                    for listener in self.listeners:
                        listener(results[-1])
                for (_, d), result in zip(batch, results, strict=True):
                    if isinstance(result, outbox.UnknownAccount):
                        d.errback(IngestError(f"unknown account {result.args[0]!r}"))
                    else:
                        d.callback(result)
        finally:
            self._writing = False
