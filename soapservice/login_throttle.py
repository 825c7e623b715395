"""Who may try a password now: growing delays after failed logins, and a bound on
password-hash work in flight. Pure (the clock is injected) and thread-safe.

Failures are counted under three keys, each with its free allowance before delays begin:

- the account from one client (``pair``): 5 free;
- one client, any account (``address``): 50 free, a spray over many names;
- one account, any client (``account``): 20 free, guesses from many addresses.

A "client" is its address, IPv6 addresses by their /64 (one host usually holds a whole
/64, so rotating within it must not start over). Past its allowance each failure blocks
its key for ``base * 2**k`` seconds (1, 2, 4, ... capped at ``cap``): a growing delay,
not a lockout, and a key with no failure for ``forget_sec`` starts over. A client's
failures at one account count toward the wide keys only up to the pair's allowance, so
one patient client cannot trip them alone.

The wide keys (address, account) would let strangers lock out a real user: 55 bad logins
behind one NAT or proxy used to refuse everyone there, and guesses at one account from
anywhere would refuse its owner everywhere. So a client that logged in to an account
successfully within ``known_sec`` is *known* for that account, and only its own pair key
applies to it: the owner keeps working from where they work while strangers wait.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass


def client_key(address: str) -> str:
    """The address a client is counted under: IPv4 as is, IPv6 by its /64."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass
class _Failures:
    count: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0


class Throttle:
    def __init__(self, clock=time.monotonic, free=5, base=1.0, cap=900.0,
                 address_free=50, account_free=20, forget_sec=3600.0,
                 known_sec=30 * 86400.0, max_keys=100_000):
        self._clock = clock
        self._free = {"pair": free, "address": address_free, "account": account_free}
        self._base, self._cap = base, cap
        self._forget_sec, self._known_sec = forget_sec, known_sec
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._keys: dict[tuple, _Failures] = {}
        self._known: OrderedDict[tuple, float] = OrderedDict()

    @staticmethod
    def _user(username: str) -> str:
        # Account names are at most 255 characters: a longer one is no account, and a
        # spray of megabyte-long names must not cost megabytes per key.
        return username[:256]

    def _applicable(self, username: str, address: str) -> list[tuple]:
        user, client = self._user(username), client_key(address)
        keys = [("pair", user, client)]
        seen = self._known.get((user, client))
        if seen is None or self._clock() - seen > self._known_sec:
            keys += [("address", client), ("account", user)]
        return keys

    def known(self, username: str, address: str) -> bool:
        """Did this client log in to this account lately?"""
        with self._lock:
            return len(self._applicable(username, address)) == 1

    def blocked(self, username: str, address: str) -> bool:
        now = self._clock()
        with self._lock:
            return any(self._keys[k].blocked_until > now
                       for k in self._applicable(username, address) if k in self._keys)

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._keys) >= self._max_keys:  # bounded memory under a spray attack
                self._keys = {k: v for k, v in self._keys.items() if v.blocked_until > now}
            pair_count = 0
            for key in self._applicable(username, address):  # the pair key first
                if key[0] != "pair" and pair_count > self._free["pair"]:
                    break  # one client alone never trips the wide keys
                entry = self._keys.setdefault(key, _Failures())
                if entry.count and now - entry.last_failure > self._forget_sec:
                    entry.count = 0
                entry.count += 1
                entry.last_failure = now
                free = self._free[key[0]]
                if key[0] == "pair":
                    pair_count = entry.count
                if entry.count > free:
                    delay = min(self._cap, self._base * 2 ** min(entry.count - free - 1, 64))
                    entry.blocked_until = now + delay

    def succeeded(self, username: str, address: str) -> None:
        user, client = self._user(username), client_key(address)
        with self._lock:
            self._keys.pop(("pair", user, client), None)
            self._known[(user, client)] = self._clock()
            self._known.move_to_end((user, client))
            while len(self._known) > self._max_keys:
                self._known.popitem(last=False)


class KdfGate:
    """At most ``slots`` password hashes at once (scrypt takes ~50 ms of a core each),
    plus ``reserved`` slots only known clients may use; at most ``queue`` others wait,
    each up to ``wait_sec``. A login that finds no slot is refused at once (error 8)
    instead of holding an API thread: 48 concurrent wrong passwords once held every API
    thread in scrypt and a valid call waited 5.9 s. Checks answered from the credential
    cache need no slot."""

    def __init__(self, slots=2, reserved=1, queue=4, wait_sec=1.0):
        self._shared = threading.BoundedSemaphore(slots)
        self._reserved = threading.BoundedSemaphore(reserved) if reserved else None
        self._queue, self._wait_sec = queue, wait_sec
        self._waiting = 0
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, known: bool):
        """Yields True with a slot held, or False if none is to be had."""
        held = self._take(known)
        try:
            yield held is not None
        finally:
            if held is not None:
                held.release()

    def _take(self, known: bool):
        if self._shared.acquire(blocking=False):
            return self._shared
        if known and self._reserved is not None and self._reserved.acquire(
                timeout=self._wait_sec):
            return self._reserved
        with self._lock:
            if self._waiting >= self._queue:
                return None
            self._waiting += 1
        try:
            return self._shared if self._shared.acquire(timeout=self._wait_sec) else None
        finally:
            with self._lock:
                self._waiting -= 1
