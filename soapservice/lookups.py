"""Bounded name lookups: one tenant's names that never resolve must not hold the lookups
of everyone else (the system resolver blocks a thread for up to its own timeout).

Both kinds run lookups on threads of their own, at most ``per_key`` in flight per key
(a webhook at delivery, an account at creation), each waited for at most
``timeout_sec``. A lookup that timed out keeps its key's slot until its thread returns,
so a black-holed name costs its owner, never a shared thread beyond its share.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from twisted.internet import defer
from twisted.python.failure import Failure

from soapservice.services import Runner
from soapservice.targets import Unresolvable


class DeliveryLookups:
    """For the delivery loop (reactor thread): ``lookup(key, fn, host, port)`` runs
    ``fn(host, port)`` through ``run`` (a :class:`~soapservice.services.Runner` on the
    DNS pool) once ``key`` has a free slot; fails with
    :class:`Unresolvable` after ``timeout_sec`` (waiting included).

    A key may be ``(account, webhook)``: then the webhook has ``per_key`` slots and its
    account ``per_group`` in all, so one tenant with many black-holed webhooks holds at
    most ``per_group`` of the pool's threads, never all of them."""

    def __init__(self, reactor, run: Runner, timeout_sec: float, per_key: int = 2,
                 per_group: int | None = None):
        self.reactor, self.run = reactor, run
        self.timeout_sec, self.per_key, self.per_group = timeout_sec, per_key, per_group
        self.active: dict = {}
        self.groups: dict = {}
        self.waiting: dict = {}

    @staticmethod
    def _group(key):
        return key[0] if isinstance(key, tuple) else None

    def _free(self, key) -> bool:
        if self.active.get(key, 0) >= self.per_key:
            return False
        group = self._group(key)
        return group is None or self.per_group is None or \
            self.groups.get(group, 0) < self.per_group

    def lookup(self, key, fn, host: str, port: int) -> defer.Deferred:
        result = defer.Deferred(lambda d: self._drop(key, d))
        if self._free(key):
            self._run(key, result, fn, host, port)
        else:
            self.waiting.setdefault(key, deque()).append((result, fn, host, port))

        def timed_out(failure):
            failure.trap(defer.TimeoutError)
            raise Unresolvable(f"host {host!r}: no answer within {self.timeout_sec:g} s")
        return result.addTimeout(self.timeout_sec, self.reactor).addErrback(timed_out)

    def _run(self, key, result, fn, host, port):
        self.active[key] = self.active.get(key, 0) + 1
        group = self._group(key)
        if group is not None:
            self.groups[group] = self.groups.get(group, 0) + 1

        def finished(outcome):
            self._release(key)
            if result.called:
                return
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)
        self.run(fn, host, port).addBoth(finished)

    def _release(self, key):
        left = self.active.get(key, 1) - 1
        if left:
            self.active[key] = left
        else:
            self.active.pop(key, None)
        group = self._group(key)
        if group is not None:
            in_group = self.groups.get(group, 1) - 1
            if in_group:
                self.groups[group] = in_group
            else:
                self.groups.pop(group, None)
        # This key's waiting lookups first, then those of its account's other webhooks.
        others = [k for k in self.waiting if k != key and group is not None
                  and self._group(k) == group]
        for candidate in [key, *others]:
            if self._start_waiting(candidate):
                break

    def _start_waiting(self, key) -> bool:
        queue = self.waiting.get(key)
        started = False
        while queue and self._free(key):
            result, fn, host, port = queue.popleft()
            if not result.called:
                self._run(key, result, fn, host, port)
                started = True
                break
        if queue is not None and not queue:
            self.waiting.pop(key, None)
        return started

    def _drop(self, key, d):
        queue = self.waiting.get(key)
        if queue:
            self.waiting[key] = deque(item for item in queue if item[0] is not d)


class CreationLookups:
    """For CreateWebHook (API threads): ``resolve(key, fn, host, port)`` waits at most
    ``timeout_sec`` for ``fn(host, port)`` on a pool of its own; a key (account) with
    ``per_key`` lookups still running is refused at once instead of taking another
    API thread."""

    def __init__(self, timeout_sec: float, threads: int = 8, per_key: int = 2):
        self.timeout_sec, self.per_key = timeout_sec, per_key
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="soapservice-dns-api")
        self.active: dict = {}
        self.lock = threading.Lock()

    def resolve(self, key, fn, host: str, port: int):
        with self.lock:
            if self.active.get(key, 0) >= self.per_key:
                raise Unresolvable(f"host {host!r}: earlier lookups of this account "
                                   "are still unanswered; try again later")
            self.active[key] = self.active.get(key, 0) + 1
        future = self.executor.submit(fn, host, port)
        future.add_done_callback(lambda _: self._release(key))
        try:
            return future.result(self.timeout_sec)
        except FutureTimeout:
            raise Unresolvable(f"host {host!r}: no answer within "
                               f"{self.timeout_sec:g} s") from None

    def _release(self, key):
        with self.lock:
            left = self.active.get(key, 1) - 1
            if left:
                self.active[key] = left
            else:
                self.active.pop(key, None)
