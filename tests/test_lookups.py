"""Bounded name lookups: a tenant's black-holed names cost that tenant only. Delivery
lookups on a Clock (deterministic); creation lookups with a resolver double that never
answers (released at the end)."""

from __future__ import annotations

import threading
import time

import pytest
from twisted.internet.task import Clock

from soapservice.lookups import CreationLookups, DeliveryLookups
from soapservice.services import Runner
from soapservice.targets import Unresolvable


class Reactor(Clock):
    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


class HeldPool:
    """A 'thread pool' whose calls finish when the test says (a black-holed name's
    thread is busy until then)."""

    def __init__(self):
        self.calls = []

    def callInThreadWithCallback(self, on_result, f, *args, **kwargs):
        self.calls.append((on_result, f, args))

    def finish(self, index):
        on_result, f, args = self.calls[index]
        on_result(True, f(*args))


def results_of(d):
    out = []
    d.addBoth(out.append)
    return out


def test_a_black_holed_webhook_never_delays_another_and_times_out_alone():
    reactor, pool = Reactor(), HeldPool()
    lookups = DeliveryLookups(reactor, Runner(reactor, pool), timeout_sec=5, per_key=1)
    resolve = lambda host, port: ["93.184.216.34"]  # noqa: E731
    hung = results_of(lookups.lookup("evil-hook", resolve, "hole.test", 80))
    queued = results_of(lookups.lookup("evil-hook", resolve, "hole2.test", 80))
    victim = results_of(lookups.lookup("victim-hook", resolve, "fine.test", 80))
    assert len(pool.calls) == 2  # the evil webhook's second lookup waits for its slot
    pool.finish(1)
    assert victim == [["93.184.216.34"]]  # at once, whatever the evil names do
    reactor.advance(4.999)
    assert hung == [] and queued == []
    reactor.advance(0.002)
    assert isinstance(hung[0].value, Unresolvable) and "no answer within 5 s" in str(
        hung[0].value)
    assert isinstance(queued[0].value, Unresolvable)
    # The hung thread still holds the evil webhook's slot: no second thread for it.
    more = results_of(lookups.lookup("evil-hook", resolve, "hole3.test", 80))
    assert len(pool.calls) == 2 and more == []
    pool.finish(0)  # the system resolver gave up at last
    assert len(pool.calls) == 3  # now its next lookup runs


def test_one_account_with_many_black_holed_webhooks_holds_only_its_share():
    reactor, pool = Reactor(), HeldPool()
    lookups = DeliveryLookups(reactor, Runner(reactor, pool), timeout_sec=5, per_key=1,
                              per_group=2)
    resolve = lambda host, port: ["93.184.216.34"]  # noqa: E731
    hung = [results_of(lookups.lookup(("mallory", hook), resolve, f"hole{hook}.test", 80))
            for hook in range(10)]
    assert len(pool.calls) == 2  # mallory's ten webhooks share two threads
    victim = results_of(lookups.lookup(("alice", 1), resolve, "fine.test", 80))
    assert len(pool.calls) == 3
    pool.finish(2)
    assert victim == [["93.184.216.34"]]  # at once, whatever mallory's names do
    reactor.advance(5.001)
    assert all(isinstance(h[0].value, Unresolvable) for h in hung)
    pool.finish(0)  # one of mallory's threads came back: its slot goes to mallory again
    later = results_of(lookups.lookup(("mallory", 3), resolve, "fine.test", 80))
    assert len(pool.calls) == 4
    pool.finish(3)
    assert later == [["93.184.216.34"]]


def test_creation_lookups_are_bounded_in_time_and_per_account():
    gate = threading.Event()

    def black_hole(host, port):  # answers only when the test ends
        gate.wait(600)
        return ["93.184.216.34"]

    lookups = CreationLookups(timeout_sec=0.2, threads=4, per_key=2)
    try:
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(Unresolvable, match="no answer within 0.2 s"):
                lookups.resolve("mallory", black_hole, "hole.test", 80)
            # (unbounded, it would wait for the black hole: 600 s; the margin is for a
            # loaded machine, where 0.2 s can take many times that)
            assert time.monotonic() - started < 60
        # Mallory's two lookups still hang: a third is refused at once (before taking a
        # thread: the message says so; waiting would end in "no answer within").
        with pytest.raises(Unresolvable, match="still unanswered"):
            lookups.resolve("mallory", black_hole, "hole.test", 80)
        # Another account is answered as usual.
        assert lookups.resolve("alice", lambda h, p: ["93.184.216.35"], "ok.test", 80) == [
            "93.184.216.35"]
    finally:
        gate.set()
        lookups.executor.shutdown(wait=True)
