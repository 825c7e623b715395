"""Event ingest: the one code path behind the Python function, ``soapservice emit`` and
``POST /events``. An accepted event is committed before the call returns."""

from __future__ import annotations

import json
import time

from twisted.internet import defer
from twisted.python.failure import Failure

from soapservice import policy
from soapservice.errors import EVENTS
from soapservice.store import idempotency, outbox

MAX_EVENT_BYTES = 256 * 1024


class IngestError(ValueError):
    """The event was refused; nothing was stored. The message says why."""


# Deeper data is refused: the legacy events nest 3 levels, and 964 levels passed the
# JSON parser only to blow the stack of the encoder (a 500 with a CRITICAL traceback).
MAX_EVENT_DEPTH = 32


def _deeper_than(data, limit: int) -> bool:
    """Whether lists/objects in ``data`` nest more than ``limit`` levels (iteratively)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items if isinstance(item, dict | list))
    return False


class IdempotencyConflict(IngestError):
    """The idempotency key was used within the day for another event or other data."""


class Stored(tuple):
    """(event id, webhooks queued); ``duplicate``: the event stored earlier under the
    same idempotency key, nothing stored now."""

    duplicate: bool

    def __new__(cls, event_id: int, queued: int, duplicate: bool = False):
        self = super().__new__(cls, (event_id, queued))
        self.duplicate = duplicate
        return self


def check_idempotency_key(key) -> str:
    """1..255 printable ASCII characters (space to tilde)."""
    if (not isinstance(key, str) or not 1 <= len(key) <= 255
            or any(not " " <= c <= "~" for c in key)):
        raise IngestError("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return key


def encode(data) -> str:
    """The body exactly as it will be POSTed: compact JSON, encoded once."""
    if not isinstance(data, dict):
        raise IngestError("event data must be a JSON object")
    if _deeper_than(data, MAX_EVENT_DEPTH):
        raise IngestError(f"event data nests deeper than {MAX_EVENT_DEPTH} levels")
    try:
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
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
         now: float | None = None, idempotency_key: str | None = None) -> Stored:
    """Store ``event`` with ``data`` for ``account``; returns (event id, webhooks queued).

    With ``idempotency_key``, the same key for the same account within 24 hours stores
    nothing and returns the first event's id (``.duplicate`` is then True); the key
    with another event or other data raises :class:`IdempotencyConflict`.
    Blocks on the store: call from a worker thread when on the reactor.
    """
    account, event, body, subscriber = prepare(account, event, data)
    now = time.time() if now is None else now
    return store_prepared((account, event, body, subscriber), now, window_sec,
                          idempotency_key)


def store_prepared(item: tuple, now: float, window_sec: float,
                   idempotency_key: str | None) -> Stored:
    account, event, body, subscriber = item
    try:
        if idempotency_key is None:
            return Stored(*outbox.store_event(account, event, body, subscriber, now,
                                              window_sec))
        key = check_idempotency_key(idempotency_key)
        return Stored(*idempotency.store_event_once(account, event, body, subscriber, key,
                                                    now, window_sec))
    except outbox.UnknownAccount:
        raise IngestError(f"unknown account {account!r}") from None
    except idempotency.Conflict:
        raise IdempotencyConflict("Idempotency-Key already used within 24 hours for "
                                  "another event or other data") from None


class Ingestor:
    """``emit`` bound to the settings, telling listeners (the delivery loop) afterwards.

    :meth:`submit` is the reactor's way in (``POST /events``): events arriving while a
    write runs wait and go together into the next transaction on the store thread (a
    group commit: under load, one commit carries many events instead of every request
    queueing for SQLite's write lock). Each one's Deferred fires only after the commit
    that made it durable.
    """

    MAX_BATCH = 256

    def __init__(self, settings, run_in_store):
        """``run_in_store(fn, *args)``: run a store function on the store thread,
        returning a Deferred."""
        self.settings = settings
        self.listeners: list = []
        # Called with the number of events one commit stored (the events counter): the
        # listeners above hear once per group commit, whatever it carried.
        self.on_stored: list = []
        self._store = run_in_store
        self._queue: list[tuple[tuple, defer.Deferred]] = []
        self._writing = False

    def submit(self, account: str, event: str, data,
               idempotency_key: str | None = None) -> defer.Deferred:
        """Store an event (call on the reactor thread); fires with (event id, webhooks
        queued) once committed, or fails with :class:`IngestError`. With an
        idempotency key the event is stored on its own (not in a group commit)."""
        try:
            item = prepare(account, event, data)
            if idempotency_key is not None:
                check_idempotency_key(idempotency_key)
        except IngestError:
            return defer.fail()
        if idempotency_key is not None:
            d = self._store(store_prepared, item, time.time(),
                            self.settings.buffer_window_sec, idempotency_key)
            return d.addCallback(self._stored_one)
        d = defer.Deferred()
        self._queue.append((item, d))
        if not self._writing:
            self._write()
        return d

    def _stored_one(self, result: Stored) -> Stored:
        if not result.duplicate:
            for listener in self.listeners:
                listener(result)
            for count in self.on_stored:
                count(1)
        return result

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
                stored = sum(not isinstance(r, Exception) for r in results)
                if stored:
                    for listener in self.listeners:
                        listener(results[-1])
                    for count in self.on_stored:
                        count(stored)
                for (_, d), result in zip(batch, results, strict=True):
                    if isinstance(result, outbox.UnknownAccount):
                        d.errback(IngestError(f"unknown account {result.args[0]!r}"))
                    else:
                        d.callback(result)
        finally:
            self._writing = False
