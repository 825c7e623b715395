"""Brute-force throttling (SPEC §5, error 8) with an injected clock, and the
credential check around it: growing delays per user+address and per address, the
real user elsewhere unaffected, failures logged without the password."""

import logging
from types import SimpleNamespace

import pytest

from soapservice.auth import Authenticator, KdfGate, Throttle, Throttled, hash_password
from soapservice.login_throttle import client_key
from tests.support.doubles import SettableTime


@pytest.fixture
def clock():
    return SettableTime()


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
    assert max(len(key[1]) for key in throttle._keys if key[0] == "pair") <= 256


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


def test_cached_successes_end_the_run_of_failures(authenticator):
    # Issue: a success answered from the credential cache left the failure count as it
    # was, so six wrong/right alternations locked the right password out (error 8).
    assert authenticator.check("alice", PASSWORD, "10.0.0.1") is not None  # cached now
    for _ in range(20):
        assert authenticator.check("alice", "typo", "10.0.0.1") is None
        assert authenticator.check("alice", PASSWORD, "10.0.0.1").username == "alice"


# -- wide keys, known clients, IPv6 by /64 (issue: throttling keyed on the exact address) --

def test_guesses_at_one_account_from_many_addresses_are_throttled(clock):
    throttle = Throttle(clock=clock, free=5, account_free=20)
    throttle.succeeded("alice", "198.51.100.7")  # the owner, from where they work
    answered = 0
    for i in range(200):  # 40 addresses, 5 guesses each: none of them alone is throttled
        address = f"203.0.113.{i % 40}"
        if not throttle.blocked("alice", address):
            answered += 1
            throttle.failed("alice", address)
    assert answered == 21  # 20 free, then the account waits 1 s, 2 s, ... for strangers
    assert throttle.blocked("alice", "192.0.2.99")  # a new place must wait too
    assert not throttle.blocked("alice", "198.51.100.7")  # the owner's place is known
    assert not throttle.blocked("bob", "203.0.113.1")
    clock.now += 1.0  # a growing delay, not a lockout
    assert not throttle.blocked("alice", "192.0.2.99")


def test_one_patient_client_cannot_trip_the_account_key(clock):
    throttle = Throttle(clock=clock, free=5, account_free=20)
    for _ in range(100):
        clock.now += 1000.0  # waits out every delay
        throttle.failed("alice", "203.0.113.9")
    assert not throttle.blocked("alice", "192.0.2.99")


def test_ipv6_clients_are_counted_by_their_64(clock):
    throttle = Throttle(clock=clock, free=5)
    for i in range(1, 7):  # a new address of the same /64 for every guess
        throttle.failed("alice", f"2001:db8:1:2::{i:x}")
    assert throttle.blocked("alice", "2001:db8:1:2:ffff::1")
    assert not throttle.blocked("alice", "2001:db8:1:3::1")
    throttle.failed("carol", "::ffff:192.0.2.1")  # IPv4-mapped: the IPv4 address
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("not an address" * 10) == ("not an address" * 10)[:64]


def test_bad_logins_behind_a_nat_do_not_lock_out_its_known_users(clock):
    throttle = Throttle(clock=clock, free=5, address_free=50)
    nat = "192.0.2.1"
    throttle.succeeded("alice", nat)  # alice works from behind this NAT
    for i in range(55):  # someone else behind it guesses at many names
        throttle.failed(f"user{i}", nat)
    assert throttle.blocked("newcomer", nat)  # strangers from there wait
    assert not throttle.blocked("alice", nat)  # alice does not
    # A pair of her own is still hers to throttle: guessing at alice from the NAT.
    for _ in range(6):
        throttle.failed("alice", nat)
    assert throttle.blocked("alice", nat)


def test_a_known_client_forgotten_after_a_while(clock):
    throttle = Throttle(clock=clock, free=5, address_free=1, known_sec=100.0)
    throttle.succeeded("alice", "192.0.2.1")
    clock.now += 101.0
    fail(throttle, 2, user="mallory", address="192.0.2.1")
    assert throttle.blocked("alice", "192.0.2.1")


# -- password-hash work in flight --------------------------------------------------------

def test_the_gate_refuses_at_once_when_full_and_keeps_a_slot_for_known_clients():
    gate = KdfGate(slots=1, reserved=1, queue=0, wait_sec=0.01)
    with gate.slot(known=False) as first:
        assert first
        with gate.slot(known=False) as second:
            assert not second  # no waiting room: refused, no thread held
        with gate.slot(known=True) as owner:
            assert owner  # the reserved slot
            with gate.slot(known=True) as another:
                assert not another
    with gate.slot(known=False) as again:
        assert again  # released


def test_cached_successes_need_no_slot_and_guesses_get_error_8_when_full(clock):
    account = SimpleNamespace(id=1, username="alice",
                              password_hash=hash_password(PASSWORD, n=2**4))
    gate = KdfGate(slots=1, reserved=0, queue=0)
    checker = Authenticator({"alice": account}.get, clock=clock, gate=gate,
                            throttle=Throttle(clock=clock))
    assert checker.check("alice", PASSWORD, "10.0.0.1") is not None  # cached now
    with gate.slot(known=False):  # every slot busy (a flood of guesses)
        with pytest.raises(Throttled):
            checker.check("alice", "guess", "10.0.0.2")
        assert checker.check("alice", PASSWORD, "10.0.0.1") is not None
    assert not checker.throttle.blocked("alice", "10.0.0.2")  # refusals are no failures
