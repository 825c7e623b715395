"""Credentials: slow salted hashes, a short cache of good checks, and throttling.

Everything here may block (scrypt takes tens of milliseconds): call it from a worker
thread, never from the reactor thread. The SOAP layer already runs in the WSGI pool.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

# scrypt N=2^15, r=8, p=1: ~32 MiB and tens of ms per check; the parameters are stored
# with each hash, so raising them later only affects new and changed passwords.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    salt = os.urandom(16)
    digest = _scrypt(password, salt, n, SCRYPT_R, SCRYPT_P)
    salt64, digest64 = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${salt64}${digest64}"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * 1024 * 1024, dklen=32)


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# A hash of a random password: unknown users pay the same KDF as wrong passwords.
_DUMMY_HASH = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_hex(16))
    return _DUMMY_HASH


@dataclass
class _Failures:
    count: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0


class Throttle:
    """Growing delays after repeated failed logins, per user+address and per address.

    The first ``free`` failures cost nothing; after that each failure blocks the key for
    ``base * 2**k`` seconds, capped at ``cap``, so a brute-force run slows to a crawl
    while the real user, from another address, is unaffected and locked out of their
    own address for minutes at most. A success clears the user+address key; a key
    with no failure for ``forget_sec`` starts over, so an office behind one NAT address
    does not collect a lifetime of typos into a permanent block.
    """

    def __init__(self, clock=time.monotonic, free=5, base=1.0, cap=900.0,
                 address_free=50, forget_sec=3600.0, max_keys=100_000):
        self._clock = clock
        self._free, self._base, self._cap = free, base, cap
        self._address_free = address_free
        self._forget_sec = forget_sec
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._keys: dict[tuple, _Failures] = {}

    @staticmethod
    def _user_key(username, address) -> tuple:
        # Account names are at most 255 characters: a longer one is no account, and a
        # spray of megabyte-long names must not cost megabytes per key.
        return ("user", username[:256], address)

    @staticmethod
    def _address_key(address) -> tuple:
        return ("address", address)

    def blocked(self, username: str, address: str) -> bool:
        now = self._clock()
        with self._lock:
            return any(self._keys[k].blocked_until > now for k in (
                self._user_key(username, address), self._address_key(address))
                if k in self._keys)

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._keys) >= self._max_keys:  # bounded memory under a spray attack
                self._keys = {k: v for k, v in self._keys.items() if v.blocked_until > now}
            for key, free in ((self._user_key(username, address), self._free),
                              (self._address_key(address), self._address_free)):
                entry = self._keys.setdefault(key, _Failures())
                if entry.count and now - entry.last_failure > self._forget_sec:
                    entry.count = 0
                entry.count += 1
                entry.last_failure = now
                if entry.count > free:
                    delay = min(self._cap, self._base * 2 ** min(entry.count - free - 1, 64))
                    entry.blocked_until = now + delay

    def succeeded(self, username: str, address: str) -> None:
        with self._lock:
            self._keys.pop(self._user_key(username, address), None)


class Authenticator:
    """Checks username/password against the store; caches good checks briefly.

    The cache keeps an HMAC of the password under a per-process key (never the password),
    tied to the stored hash, so a changed or removed password stops matching at once.
    """

    def __init__(self, find_account, cache_sec: float = 60.0, throttle: Throttle | None = None,
                 clock=time.monotonic):
        self._find = find_account
        self._cache_sec = cache_sec
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._cache: dict[str, tuple[bytes, str, float]] = {}
        self.throttle = throttle or Throttle()

    def _mac(self, username: str, password: str) -> bytes:
        return hmac.new(self._key, f"{username}\0{password}".encode(), hashlib.sha256).digest()

    def check(self, username: str, password: str, address: str = "-"):
        """Return the account, ``None`` for bad credentials, or raise :class:`Throttled`."""
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        if self.throttle.blocked(username, address):
            log.info("login throttled for user %r from %s", username[:100], address)
            raise Throttled()
        account = self._find(username)
        mac = self._mac(username, password)
        cached = self._cache.get(username)
        if (account is not None and cached is not None and cached[2] > self._clock()
                and cached[1] == account.password_hash and hmac.compare_digest(cached[0], mac)):
            return account
        ok = verify_password(password, account.password_hash if account else _dummy_hash())
        if ok and account is not None:
            self._cache[username] = (mac, account.password_hash, self._clock() + self._cache_sec)
            self.throttle.succeeded(username, address)
            return account
        self.throttle.failed(username, address)
        # Never the password; the name cut short (it is whatever the client sent).
        log.warning("authentication failed for user %r from %s", username[:100], address)
        return None


class Throttled(Exception):
    """Too many failed logins for this user/address: answer error 8."""
