"""In-process doubles for the parts the delivery loop, the ingestor and the web
resources are handed (sender, store runner, thread pool, reactor, time source)."""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from soapservice.sender import AttemptResult


class ScriptedSender:
    """Records each request; the test answers them (or ``auto`` answers at once)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.auto = None  # callable(request) -> status (None: connection refused)

    def send(self, url, headers, body, key=None):
        d = defer.Deferred()
        request = {"url": url, "headers": headers, "body": json.loads(body), "raw": body,
                   "d": d}
        self.requests.append(request)
        if self.auto is not None:
            self.answer(request, self.auto(request))
        return d

    @staticmethod
    def answer(request, status, retry_after=None):
        error = None if status is not None else "connection refused"
        request["d"].callback(AttemptResult(status, error, 1.0, retry_after=retry_after))

    def open(self):
        return [r for r in self.requests if not r["d"].called]

    def close(self):
        return defer.succeed(None)


def inline_runner(fn, *args, **kwargs):
    """A store runner that runs the store function at once (its result as a Deferred)."""
    return defer.maybeDeferred(fn, *args, **kwargs)


class ManualRunner:
    """A store runner (the store thread's stand-in) that holds the calls ``hold`` picks
    (all by default) until the test runs them, so a test decides what happens while a
    store call is in flight; the other calls run at once."""

    def __init__(self, hold=lambda fn: True):
        self.hold = hold
        self.calls: list = []

    def __call__(self, fn, *args):
        if not self.hold(fn):
            return defer.maybeDeferred(fn, *args)
        d = defer.Deferred()
        self.calls.append((fn, args, d))
        return d

    def run_next(self):
        fn, args, d = self.calls.pop(0)
        d.callback(fn(*args))

    def run_all(self):
        while self.calls:
            self.run_next()


class InlinePool:
    """A 'thread pool' that runs the call at once (deferToThreadPool's interface)."""

    def callInThreadWithCallback(self, on_result, f, *args, **kwargs):
        try:
            result = f(*args, **kwargs)
        except BaseException:
            on_result(False, Failure())
        else:
            on_result(True, result)


class InlineReactor(MemoryReactorClock):
    """A memory reactor with a clock whose ``callFromThread`` runs the call at once
    (with ``InlinePool``, ``deferToThreadPool`` answers synchronously)."""

    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


class SettableTime:
    """A time source (``time.time``'s interface) that moves only when the test says."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now
