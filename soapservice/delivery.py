"""The delivery loop: claims due deliveries, sends them, records outcomes.

A Twisted service on the reactor thread. All store work runs on one dedicated store
thread (SQLite likes a single writer; the reactor never blocks); HTTP runs on the
reactor through :class:`soapservice.sender.Sender`. The loop is woken when an event is
stored or a webhook reactivated (no polling delay on the hot path), by a timer set to
the next due retry, and by a periodic sweep as a safety net (for work stored by other
processes). Outcomes are written in group commits: every outcome that arrives while a
write is running goes into the next one.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import time

from twisted.application import service
from twisted.internet import defer, task

from soapservice import signing, store
from soapservice.store import outbox

log = logging.getLogger(__name__)

SWEEP_SEC = 5.0
# SQLite: how often to check whether another process (``soapservice emit``, another
# ``serve``) committed, so their events go out promptly, not at the next sweep.
WATCH_SEC = 0.2
PURGE_SEC = 3600.0
_LIVE_OWNERS: set[str] = set()  # owner ids of the delivery services running in this process


def _process_space() -> str:
    """Where a pid means one process: this host name and PID namespace (two containers
    may share a host name, each with its own pid 1)."""
    try:
        namespace = f"{os.stat('/proc/self/ns/pid').st_ino:x}"
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()[:32]}/{namespace}"


_SPACE = _process_space()


def owner_is_dead(owner: str, space: str = _SPACE, pid: int | None = None,
                  live: set[str] = _LIVE_OWNERS) -> bool:
    """True only when the process that holds ``owner``'s leases surely is gone.

    Owner ids are ``host/pid-namespace:pid:token``. Within this host and PID namespace
    an owner is dead when no process has its pid (or only a zombie), or when its pid is
    this very process but not one of its running services (an earlier life under the
    same pid: a restarted container). An owner elsewhere cannot be judged (another host
    or container sharing the store): its leases run out by themselves.
    """
    pid = os.getpid() if pid is None else pid
    try:
        owner_space, owner_pid, _token = owner.rsplit(":", 2)
        owner_pid = int(owner_pid)
    except ValueError:
        return False
    if owner_space != space:
        return False
    if owner_pid == pid:
        return owner not in live
    return not _pid_alive(owner_pid)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a process id: don't judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    try:  # a killed process nobody has reaped yet is a zombie: gone all the same
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


class DeliveryService(service.Service):
    name = "delivery"

    def __init__(self, settings, sender, run_in_store, reactor, *, rand=random.random,
                 on_deactivate=None, after_deactivate=None, owner=None):
        """``run_in_store(fn, *args)`` runs a store function off the reactor thread and
        returns a Deferred (tests pass a synchronous one with a ``task.Clock``)."""
        self.settings = settings
        self.sender = sender
        self._store = run_in_store
        self.reactor = reactor
        self.rand = rand
        self.on_deactivate = on_deactivate  # in the store transaction (notification)
        self.after_deactivate = after_deactivate  # on the reactor, after commit (mail)
        # host/pidns:pid:token; the token is new at every start, so an owner id never
        # outlives its process (see :func:`owner_is_dead`). Fits the 64-character column.
        self.owner = owner or f"{_SPACE}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_sec = settings.delivery_timeout_sec * 2 + 30
        self.in_flight: dict[int, int] = {}  # webhook id -> requests running
        self.sending: dict[int, defer.Deferred] = {}  # delivery id -> attempt
        self.deleted: set[int] = set()
        self._outcomes: list[outbox.Outcome] = []
        self._claiming = False
        self._again = False
        self._flushing = False
        self._timer = None
        self._wake_call = None
        self._claiming_d = None
        self._started = defer.succeed(None)
        self._sweep = task.LoopingCall(self.wake)
        self._sweep.clock = reactor
        self._purge = task.LoopingCall(self.purge)
        self._purge.clock = reactor
        self._watch = task.LoopingCall(self._check_outside_commits)
        self._watch.clock = reactor
        self._data_version = None
        self.stopping = False

    def now(self) -> float:
        return self.reactor.seconds()

    # -- life cycle -------------------------------------------------------------------
    def startService(self):
        super().startService()
        self.stopping = False
        _LIVE_OWNERS.add(self.owner)
        self._started = self._take_back_orphans()
        self._started.addBoth(self._start_loops)

    def _take_back_orphans(self) -> defer.Deferred:
        """Leases of a process that provably died (killed on this host) are due again
        at once, instead of when their lease runs out: a restart after a crash
        continues immediately. A process that may be alive keeps its leases."""
        d = self._store(outbox.release_orphans, owner_is_dead, self.now())

        def report(released):
            for owner, count in released.items():
                log.warning("took back %d deliveries leased by %s (no longer running); "
                            "they may reach their receivers a second time", count, owner)

        def failed(failure):
            log.error("could not take back orphaned leases (%s); they are retried when "
                      "their lease expires", failure.getErrorMessage())
        return d.addCallbacks(report, failed)

    def _start_loops(self, _):
        if self.running and not self.stopping:
            self._sweep.start(SWEEP_SEC, now=True)
            self._purge.start(PURGE_SEC, now=False)
            if self.settings.database_url.startswith("sqlite"):
                self._watch.start(WATCH_SEC, now=False)

    @defer.inlineCallbacks
    def stopService(self):
        """Stop claiming, let attempts in flight finish (they are bounded by the
        delivery timeout), record them, and give back every lease still held."""
        self.stopping = True
        super().stopService()
        yield self._started
        for loop in (self._sweep, self._purge, self._watch):
            if loop.running:
                loop.stop()
        for call in (self._timer, self._wake_call):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._wake_call = None
        while self._claiming_d is not None:  # a claim running in the store finishes first
            yield self._claiming_d
        if self.sending:
            yield defer.DeferredList(list(self.sending.values()), consumeErrors=True)
        yield self._flush()
        yield self._store(outbox.release, self.owner, self.now())
        _LIVE_OWNERS.discard(self.owner)
        yield self.sender.close()

    # -- waking -----------------------------------------------------------------------
    def wake(self):
        """Look for due work as soon as possible (call on the reactor thread)."""
        if self.stopping or not self.running:
            return
        if self._claiming:
            self._again = True
            return
        if self._wake_call is None or not self._wake_call.active():
            self._wake_call = self.reactor.callLater(0, self._claim_tracked)

    def _claim_tracked(self):
        if self._claiming:
            return
        d = self._claiming_d = self._claim()

        def done(_):
            if self._claiming_d is d:
                self._claiming_d = None
        d.addBoth(done)

    def wake_from_thread(self, *_):
        self.reactor.callFromThread(self.wake)

    def forget_webhook(self, webhook_id: int):
        """The webhook was deleted: start no request for it any more (thread-safe)."""
        self.deleted.add(webhook_id)

    # -- the loop ---------------------------------------------------------------------
    @defer.inlineCallbacks
    def _claim(self):
        if self._claiming or self.stopping:
            return
        self._claiming = True
        try:
            while not self.stopping:
                self._again = False
                capacity = self.settings.global_concurrency - len(self.sending)
                claims = yield self._store(
                    outbox.claim_due, self.owner, self.now(), self.lease_sec, capacity,
                    dict(self.in_flight), self.settings.per_webhook_concurrency)
                for claim in claims:
                    self._start(claim)
                if not (self._again or (claims and len(claims) == capacity)):
                    break
            yield self._schedule_next()
        except Exception:
            log.exception("delivery loop: claiming failed; retrying at the next sweep")
        finally:
            self._claiming = False
            if self._again and not self.stopping:
                # Woken while the last claim or _schedule_next ran (an event stored
                # meanwhile): look again now, not at the next sweep (a 5 s p99 in
                # the latency benchmark).
                self.wake()

    @defer.inlineCallbacks
    def _schedule_next(self):
        due = yield self._store(outbox.next_due_at, self.now())
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if due is not None and not self.stopping:
            delay = max(0.0, min(due - self.now(), SWEEP_SEC))
            self._timer = self.reactor.callLater(delay, self.wake)

    def _start(self, claim: outbox.Claim):
        if claim.webhook_id in self.deleted:
            return  # its rows are gone with the webhook; nothing to record
        if self.stopping:
            return  # claimed while stopping: stopService releases the lease unsent
        self.in_flight[claim.webhook_id] = self.in_flight.get(claim.webhook_id, 0) + 1
        msg_id = signing.message_id(claim.delivery_id)
        headers = signing.headers(claim.secret, msg_id, claim.body, claim.event, claim.app,
                                  time.time())
        d = self.sender.send(claim.url, headers, claim.body.encode("utf-8"))
        self.sending[claim.delivery_id] = d
        d.addCallback(self._finished, claim)

    def _finished(self, result, claim: outbox.Claim):
        self.sending.pop(claim.delivery_id, None)
        left = self.in_flight.get(claim.webhook_id, 1) - 1
        if left:
            self.in_flight[claim.webhook_id] = left
        else:
            self.in_flight.pop(claim.webhook_id, None)
        self._outcomes.append(outbox.Outcome(claim.delivery_id, claim.token, claim.webhook_id,
                                             result.status, result.error, result.duration_ms))
        if not self._flushing:
            self._flushing = True
            self.reactor.callLater(0, self._flush)

    @defer.inlineCallbacks
    def _flush(self):
        """Write every outcome gathered so far in one transaction; outcomes arriving
        meanwhile wait for the next one (a group commit)."""
        self._flushing = True
        try:
            yield self._write_outcomes()
        finally:
            self._flushing = False
        self.wake()

    @defer.inlineCallbacks
    def _write_outcomes(self):
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            try:
                deactivated = yield self._store(
                    outbox.record_outcomes, batch, self.now(),
                    self.settings.retry_schedule_sec, self.rand, self.on_deactivate)
            except Exception:
                log.exception("delivery loop: recording %d outcomes failed; their leases "
                              "expire and they are attempted again", len(batch))
                continue
            for event in deactivated:
                log.warning("webhook %d deactivated after %d failed attempts (%s); "
                            "%d events buffered", event.webhook_id, event.failure_count,
                            event.last_error, event.buffered)
                if self.after_deactivate is not None:
                    self.after_deactivate(event)

    @defer.inlineCallbacks
    def _check_outside_commits(self):
        try:
            version = yield self._store(store.data_version)
        except Exception as exc:  # the sweep still runs; say why once in a while
            log.debug("data_version check failed: %s", exc)
            return
        if version != self._data_version:
            if self._data_version is not None:
                self.wake()
            self._data_version = version

    def purge(self):
        return self._store(outbox.purge, self.now(), self.settings.retention_sec).addErrback(
            lambda f: log.error("purge failed: %s", f.getErrorMessage()))
