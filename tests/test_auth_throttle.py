"""Brute-force throttling (SPEC §5, error 8) with an injected clock, and the
credential check around it: growing delays per user+address and per address, the
real user elsewhere unaffected, failures logged without the password."""

import logging
from types import SimpleNamespace

import pytest

from soapservice.auth import Authenticator, Throttle, Throttled, hash_password


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


def fail(throttle, times, user="alice", address="10.0.0.1"):
    for _ in range(times):
        throttle.failed(user, address)


def test_free_failures_then_growing_delay(clock):
    throttle = Throttle(clock=clock, free=5, base=1.0, cap=900.0)
    fail(throttle, 5)
    assert not throttle.blocked("alice", "10.0.0.1")
    for delay in (1, 2, 4, 8, 16):
        fail(throttle, 1)
        assert throttle.blocked("alice", "10.0.0.1")
        clock.now += delay - 0.001
        assert throttle.blocked("alice", "10.0.0.1"), delay
        clock.now += 0.001
        assert not throttle.blocked("alice", "10.0.0.1"), delay


def test_delay_is_capped(clock):
    throttle = Throttle(clock=clock, free=0, base=1.0, cap=60.0)
    fail(throttle, 200)  # 2**199 would overflow a naive float delay
    clock.now += 60.0
    assert not throttle.blocked("alice", "10.0.0.1")


def test_real_user_from_another_address_is_not_locked_out(clock):
    throttle = Throttle(clock=clock, free=5)
    fail(throttle, 30, address="203.0.113.66")  # an attacker guessing alice's password
    assert throttle.blocked("alice", "203.0.113.66")
    assert not throttle.blocked("alice", "198.51.100.7")
    assert not throttle.blocked("bob", "203.0.113.66")  # per user+address below the
    # per-address threshold: other users behind the attacker's address still get in


def test_per_address_throttle_across_user_names(clock):
    throttle = Throttle(clock=clock, free=5, address_free=50)
    for i in range(50):  # a spray: one guess per user name
        throttle.failed(f"user{i}", "203.0.113.66")
    assert not throttle.blocked("somebody", "203.0.113.66")
    throttle.failed("user50", "203.0.113.66")
    assert throttle.blocked("somebody", "203.0.113.66")
    assert not throttle.blocked("somebody", "198.51.100.7")


def test_user_named_star_does_not_count_twice(clock):
    # The per-address key once was ("*", address): user "*" doubled its own count.
    throttle = Throttle(clock=clock, free=100, address_free=3)
    fail(throttle, 3, user="*")
    assert not throttle.blocked("bob", "10.0.0.1")
    fail(throttle, 1, user="*")
    assert throttle.blocked("bob", "10.0.0.1")


def test_success_clears_the_user_key(clock):
    throttle = Throttle(clock=clock, free=2)
    fail(throttle, 2)
    throttle.succeeded("alice", "10.0.0.1")
    fail(throttle, 2)
    assert not throttle.blocked("alice", "10.0.0.1")


def test_old_failures_are_forgotten(clock):
    throttle = Throttle(clock=clock, free=5, address_free=5, forget_sec=3600)
    fail(throttle, 5)
    clock.now += 3601
    fail(throttle, 5)  # starts over: still within the free failures
    assert not throttle.blocked("alice", "10.0.0.1")
    fail(throttle, 1)
    assert throttle.blocked("alice", "10.0.0.1")


def test_long_user_names_cost_no_more_than_short_ones(clock):
    throttle = Throttle(clock=clock, free=1)
    fail(throttle, 2, user="x" * 1_000_000)
    assert throttle.blocked("x" * 1_000_000, "10.0.0.1")
    assert max(len(key[1]) for key in throttle._keys if key[0] == "user") <= 256


def test_memory_stays_bounded_under_a_spray(clock):
    throttle = Throttle(clock=clock, free=5, address_free=10**9, max_keys=1000)
    for i in range(10_000):
        throttle.failed(f"u{i}", f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._keys) <= 1000 + 2


# -- the credential check ---------------------------------------------------------------

PASSWORD = "s3cret-Pa55word!"


@pytest.fixture
def authenticator(clock):
    account = SimpleNamespace(id=1, username="alice",
                              password_hash=hash_password(PASSWORD, n=2**4))
    accounts = {"alice": account}
    return Authenticator(accounts.get, cache_sec=60, clock=clock,
                         throttle=Throttle(clock=clock, free=5))


def test_throttled_even_with_the_right_password_then_released(authenticator, clock):
    for _ in range(6):
        assert authenticator.check("alice", "guess", "10.0.0.1") is None
    with pytest.raises(Throttled):
        authenticator.check("alice", PASSWORD, "10.0.0.1")
    # From another address the real user gets in at once.
    assert authenticator.check("alice", PASSWORD, "10.9.9.9").username == "alice"
    clock.now += 1.0
    assert authenticator.check("alice", PASSWORD, "10.0.0.1").username == "alice"


def test_unknown_user_is_throttled_too(authenticator):
    for _ in range(6):
        assert authenticator.check("mallory", "guess", "10.0.0.1") is None
    with pytest.raises(Throttled):
        authenticator.check("mallory", "guess", "10.0.0.1")


def test_failures_logged_without_the_password(authenticator, caplog):
    caplog.set_level(logging.INFO, logger="soapservice.auth")
    for _ in range(7):
        try:
            authenticator.check("alice", "Hunter2-guess", "10.0.0.1")
        except Throttled:
            pass
    text = caplog.text
    assert text.count("authentication failed for user 'alice' from 10.0.0.1") == 6
    assert "throttled" in text
    assert "Hunter2" not in text and PASSWORD not in text


def test_wrong_types_are_bad_credentials(authenticator):
    assert authenticator.check("alice", 12345, "10.0.0.1") is None
    assert authenticator.check(None, PASSWORD, "10.0.0.1") is None


def test_cached_check_still_honours_the_throttle(authenticator, clock):
    assert authenticator.check("alice", PASSWORD, "10.0.0.1") is not None  # cached now
    for _ in range(6):
        authenticator.check("alice", "guess", "10.0.0.1")
    with pytest.raises(Throttled):
        authenticator.check("alice", PASSWORD, "10.0.0.1")
