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
import time

from twisted.application import service
from twisted.internet import defer, task

from soapservice import outage, policy, purging, signing, store
from soapservice.liveness import LIVE_OWNERS as _LIVE_OWNERS
from soapservice.liveness import SPACE as _SPACE
from soapservice.liveness import owner_is_dead  # noqa: F401 (its old home)
from soapservice.sender import TIMEOUT, AttemptResult
from soapservice.store import outbox

log = logging.getLogger(__name__)

SWEEP_SEC = 5.0
# SQLite: how often to check whether another process (``soapservice emit``, another
# ``serve``) committed, so their events go out promptly, not at the next sweep.
WATCH_SEC = 0.2
# The first purge runs this long after start (a service restarted more often than
# the purge interval purges all the same); then every SOAPSERVICE_PURGE_INTERVAL_SEC.
FIRST_PURGE_SEC = 30.0
# How often the receivers' bookkeeping drops webhooks not sent to for a delivery timeout.
FORGET_EVERY_SEC = 1.0
# Outcome batches of a busy process (at least FLUSH_BUSY requests running) go to the
# store once FLUSH_BATCH outcomes, or half of the running requests' worth, are
# gathered, or FLUSH_WAIT_SEC after the first: a store hop has a fixed cost (two
# transactions, the claim's reads of the fronts and slots) that a handful of outcomes
# paid whole. A process with fewer requests running sends each outcome at once.
FLUSH_BUSY = 32
FLUSH_BATCH = 64
FLUSH_WAIT_SEC = 0.004
class Receivers:
    """What the loop learns of each webhook's receiver, for the claim's limits
    (:class:`policy.Limits`): a limit halved at each time-out and grown by one per
    answer (:func:`policy.limit_after_answer`); 1 while the receiver, with requests
    running, has answered none of them for longer than its usual answer time allows
    (:func:`policy.learned_limits`); which webhooks
    were sent to lately (they keep their fair share of the process's limit) and which
    receivers answered lately (while the process's limit is shared, the others get one
    request at a time). In memory, per process: a restarted process learns anew; a
    webhook not sent to for a delivery timeout is forgotten. Used on the reactor thread
    only; :meth:`limits` hands the claim (on the store thread) copies."""

    def __init__(self, per_webhook: int, total: int, window_sec: float):
        self.per_webhook, self.total, self.window_sec = per_webhook, total, window_sec
        self.running: dict[int, tuple[int, float]] = {}  # delivery id -> (webhook, since)
        self.limit: dict[int, int] = {}  # webhook id -> learned limit (below per_webhook)
        self.usual_sec: dict[int, float] = {}  # webhook id -> answer time (moving average)
        self.answered_at: dict[int, float] = {}  # webhook id -> its latest answer's arrival
        self.last_sent: dict[int, float] = {}  # webhook id -> its latest request's start
        self._forgot_at: float | None = None

    def started(self, delivery_id: int, webhook_id: int, now: float) -> None:
        self.running[delivery_id] = (webhook_id, now)
        self.last_sent[webhook_id] = now

    def finished(self, delivery_id: int, webhook_id: int, result, now: float) -> None:
        self.running.pop(delivery_id, None)
        timed_out = getattr(result, "kind", None) == TIMEOUT
        limit = policy.limit_after_answer(self.limit.get(webhook_id, self.per_webhook),
                                          self.per_webhook, timed_out)
        if limit < self.per_webhook:
            self.limit[webhook_id] = limit
        else:
            self.limit.pop(webhook_id, None)
        if result.status is not None:
            self.answered_at[webhook_id] = now
            seconds = result.duration_ms / 1000.0
            usual = self.usual_sec.get(webhook_id)
            self.usual_sec[webhook_id] = seconds if usual is None else (
                0.8 * usual + 0.2 * seconds)

    def limits(self, now: float) -> policy.Limits:
        oldest: dict[int, float] = {}
        for hook_id, since in self.running.values():
            if since < oldest.get(hook_id, since + 1.0):
                oldest[hook_id] = since
        # Silent since: the oldest running request's start or the latest answer, if
        # later. One slow answer among quick ones is not a hanging receiver.
        silent = {hook_id: max(since, self.answered_at.get(hook_id, since))
                  for hook_id, since in oldest.items()}
        if self._forgot_at is None or now - self._forgot_at >= FORGET_EVERY_SEC:
            self._forget(now - self.window_sec, oldest)
            self._forgot_at = now
        # ``active`` and ``heard`` are live views of the two dicts, not copies (10,000
        # webhook ids copied at every claim would cost milliseconds): the claim only
        # asks them ``in`` and ``len``, which are atomic under the GIL while the reactor
        # thread adds and removes entries.
        return policy.Limits(self.per_webhook, self.total, self.last_sent.keys(),
                             policy.learned_limits(self.limit, silent, self.usual_sec, now),
                             self.usual_sec.keys())

    def _forget(self, before: float, running: dict[int, float]) -> None:
        """Drop what is known of webhooks not sent to since ``before`` (none running)."""
        gone = [h for h, at in self.last_sent.items() if at < before and h not in running]
        for hook_id in gone:
            del self.last_sent[hook_id]
            self.limit.pop(hook_id, None)
            self.usual_sec.pop(hook_id, None)
            self.answered_at.pop(hook_id, None)


class DeliveryService(service.Service):
    name = "delivery"

    def __init__(self, settings, sender, run_in_store, reactor, *, rand=random.random,
                 on_deactivate=None, after_deactivate=None, owner=None, on_takeover=None):
        """``run_in_store(fn, *args)`` runs a store function off the reactor thread and
        returns a Deferred (tests pass a synchronous one with a ``task.Clock``)."""
        self.settings = settings
        self.sender = sender
        self._store = run_in_store
        self.reactor = reactor
        self.rand = rand
        self.on_deactivate = on_deactivate  # in the store transaction (notification)
        self.after_deactivate = after_deactivate  # on the reactor, after commit (mail)
        self.on_takeover = on_takeover  # in the store thread: expired leases taken over
        # host/pidns:pid:token; the token is new at every start, so an owner id never
        # outlives its process (see :func:`owner_is_dead`). Fits the 64-character column.
        self.owner = owner or f"{_SPACE}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_sec = settings.delivery_timeout_sec * 2 + 30
        self.in_flight: dict[int, int] = {}  # webhook id -> requests running
        self.sending: dict[int, defer.Deferred] = {}  # delivery id -> attempt
        self.receivers = Receivers(settings.per_webhook_concurrency,
                                   settings.global_concurrency, settings.delivery_timeout_sec)
        self.deleted: set[int] = set()
        self._outcomes: list[outbox.Outcome] = []
        self._claiming = False
        self._again = False
        self._flushing = False
        self._flush_call = None  # the delayed flush of a small batch (FLUSH_WAIT_SEC)
        self._timer = None
        self._first_purge = None
        self._buffering = None  # the rest of a deactivation going to the buffer
        self._buffer_again = False
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
            self._first_purge = self.reactor.callLater(FIRST_PURGE_SEC, self._start_purge)
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
        for call in (self._timer, self._wake_call, self._first_purge, self._flush_call):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._wake_call = self._first_purge = self._flush_call = None
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
                    dict(self.in_flight), self.limits(), self.on_takeover)
                for claim in claims:
                    self._start(claim)
                if not (self._again or (claims and len(claims) == capacity)):
                    break
            yield self._schedule_next()
        except Exception as exc:
            if outage.is_store_error(exc):  # one line per outage, with its cause
                outage.STORE.failed(exc, "delivery loop: claiming")
            else:
                log.exception("delivery loop: claiming failed; retrying at the next sweep")
        finally:
            self._claiming = False
            if self._again and not self.stopping:
                # Woken while the last claim or _schedule_next ran (an event stored
                # meanwhile): look again now, not at the next sweep (a 5 s p99 in
                # the latency benchmark).
                self.wake()

    def limits(self) -> policy.Limits:
        """The per-webhook limits of the next claim (see :class:`Receivers`)."""
        return self.receivers.limits(self.now())

    @defer.inlineCallbacks
    def _schedule_next(self):
        due = yield self._store(outbox.next_due_at, self.now())
        self._set_timer(due)

    def _set_timer(self, due: float | None) -> None:
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
        msg_id = signing.message_id(claim.message_delivery_id)
        now = time.time()
        secret, previous = claim.signing_secrets(now)
        body = claim.body.encode("utf-8")  # signed and sent as these bytes
        headers = signing.headers(secret, msg_id, body, claim.event, claim.app, now,
                                  previous)
        try:
            d = self.sender.send(claim.url, headers, body,
                                 key=(claim.account_id, claim.webhook_id))
        except Exception as exc:  # noqa: BLE001 (fails this delivery, not the claimed batch)
            log.exception("delivery %d: the sender raised", claim.delivery_id)
            d = defer.succeed(AttemptResult(None, f"cannot send: {exc}"[:300], 0.0, "url"))
        self.sending[claim.delivery_id] = d
        self.receivers.started(claim.delivery_id, claim.webhook_id, self.now())
        d.addCallback(self._finished, claim)

    def _finished(self, result, claim: outbox.Claim):
        self.sending.pop(claim.delivery_id, None)
        self.receivers.finished(claim.delivery_id, claim.webhook_id, result, self.now())
        left = self.in_flight.get(claim.webhook_id, 1) - 1
        if left:
            self.in_flight[claim.webhook_id] = left
        else:
            self.in_flight.pop(claim.webhook_id, None)
        self._outcomes.append(outbox.Outcome(claim.delivery_id, claim.token, claim.webhook_id,
                                             result.status, result.error, result.duration_ms,
                                             getattr(result, "snippet", None),
                                             getattr(result, "retry_after", None)))
        if not self._flushing:
            self._flush_soon()

    def _batch_ready(self) -> bool:
        """The gathered outcomes go to the store now (see FLUSH_BUSY)."""
        gathered, running = len(self._outcomes), len(self.sending)
        return gathered > 0 and (running < FLUSH_BUSY or gathered >= FLUSH_BATCH
                                 or 2 * gathered >= running or self.stopping)

    def _flush_soon(self) -> None:
        """Flush at the next reactor turn when the batch is ready, else at the latest
        FLUSH_WAIT_SEC from now (call when no flush is running)."""
        call = self._flush_call
        if self._batch_ready():
            if call is not None and call.active():
                call.cancel()
            self._flush_call = None
            self._flushing = True
            self.reactor.callLater(0, self._flush)
        elif self._outcomes and (call is None or not call.active()):
            self._flush_call = self.reactor.callLater(FLUSH_WAIT_SEC, self._flush_late)

    def _flush_late(self) -> None:
        self._flush_call = None
        if not self._flushing and self._outcomes:
            self._flush()

    @defer.inlineCallbacks
    def _flush(self):
        """Write the gathered outcomes in one transaction; outcomes arriving meanwhile
        go in the next one (a group commit), at once if they make a batch."""
        self._flushing = True
        try:
            claimed = yield self._write_outcomes()
        finally:
            self._flushing = False
        if self._outcomes and not self.stopping:
            self._flush_soon()
        if not claimed or self._again:
            self.wake()

    @defer.inlineCallbacks
    def _write_outcomes(self):
        """Record the gathered outcomes; unless a claim is running, the same store call
        then claims what the finished attempts' slots (and any promoted heads) allow
        and, when that left slots free, reads when the next delivery is due: one hop to
        the store thread per batch instead of three. True when the last batch claimed
        that way and nothing more is due now (no further claim needed)."""
        claimed, first = False, True
        while self._outcomes and (first or self._batch_ready()):
            first = False
            batch, self._outcomes = self._outcomes, []
            now = self.now()
            outcomes = (batch, now, self.settings.retry_schedule_sec, self.rand,
                        self.on_deactivate, self.settings.max_retry_after_sec)
            claim = None
            if not (self._claiming or self.stopping):
                self._claiming = True  # no other claim meanwhile: the capacity holds
                claim = (self.owner, now, self.lease_sec,
                         self.settings.global_concurrency - len(self.sending),
                         dict(self.in_flight), self.limits(), self.on_takeover)
            try:
                d = self._store(_record_then_claim, outcomes, claim)
                if claim is not None:
                    self._claiming_d = d
                deactivated, claims, due = yield d
            except Exception as exc:
                if outage.is_store_error(exc):
                    outage.STORE.failed(exc, "delivery loop: recording outcomes")
                else:
                    log.exception("delivery loop: recording %d outcomes failed; their "
                                  "leases expire and they are attempted again", len(batch))
                claimed = False
                continue
            finally:
                if claim is not None:
                    self._claiming = False
                    self._claiming_d = None
            outage.STORE.recovered()
            for event in deactivated:
                log.warning("webhook %d deactivated after %d failed attempts (%s); "
                            "%d events buffered", event.webhook_id, event.failure_count,
                            event.last_error, event.buffered)
                if self.after_deactivate is not None:
                    self.after_deactivate(event)
            if deactivated:
                self._buffer_rest()
            claimed = self._started_claims(claims, due, claim)
        return claimed

    def _started_claims(self, claims, due, claim) -> bool:
        """Start what :func:`_record_then_claim` claimed; True when that claim needs
        no follow-up (it left slots free, so nothing more is due now)."""
        if claim is None:
            return False
        if isinstance(claims, Exception):
            if outage.is_store_error(claims):
                outage.STORE.failed(claims, "delivery loop: claiming")
            else:
                log.error("delivery loop: claiming failed; claiming again", exc_info=claims)
            return False
        for found in claims:
            self._start(found)
        if len(claims) >= claim[3]:
            return False  # full: there may be more
        self._set_timer(due)
        return True

    def _buffer_rest(self):
        """A deactivation moved the first rows of its queue to the buffer: the rest
        follows in short steps (soapservice.purging.buffer_rest), one run at a time."""
        if self._buffering is not None:
            self._buffer_again = True
            return
        self._buffer_again = False
        d = self._buffering = purging.buffer_rest(self._store, self.reactor,
                                                  lambda: self.stopping)

        def done(_):
            self._buffering = None
            if self._buffer_again and not self.stopping:
                self._buffer_rest()
        d.addErrback(lambda f: log.error("moving a deactivated webhook's queue to its "
                                         "buffer failed: %s (the next purge goes on)",
                                         f.getErrorMessage()))
        d.addBoth(done)

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

    def _start_purge(self):
        self._first_purge = None
        if self.running and not self.stopping:
            self._purge.start(self.settings.purge_interval_sec, now=True)

    def purge(self):
        """What the retention and the keeping let go, in short steps with pauses
        (soapservice.purging): claims, outcomes and ingest go in between."""
        d = purging.run(self._store, self.reactor, self.settings, self.now(),
                        lambda: self.stopping)
        return d.addErrback(lambda f: log.error("purge failed: %s", f.getErrorMessage()))


def _record_then_claim(outcomes: tuple, claim: tuple | None):
    """In the store thread: record an outcome batch (its own transaction), then, given
    ``claim`` (claim_due's arguments), claim in another and, if that left slots free,
    read when the next delivery is due. (deactivations, claims or the claim's error,
    next due time); an error recording the outcomes is raised, nothing claimed."""
    deactivated = outbox.record_outcomes(*outcomes)
    if claim is None:
        return deactivated, [], None
    try:
        claims = outbox.claim_due(*claim)
        due = outbox.next_due_at(claim[1]) if len(claims) < claim[3] else None
    except Exception as exc:  # noqa: BLE001 (the outcomes are committed: report it)
        return deactivated, exc, None
    return deactivated, claims, due
