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
import time

from soapservice.login_throttle import KdfGate, Throttle

__all__ = ["Authenticator", "KdfGate", "Throttle", "Throttled", "hash_password",
           "verify_password"]

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


class Authenticator:
    """Checks username/password against the store; caches good checks briefly.

    The cache keeps an HMAC of the password under a per-process key (never the password),
    tied to the stored hash, so a changed or removed password stops matching at once.
    Order: the throttle first (a blocked client learns nothing, not even from the cache),
    then the cache, then scrypt through the :class:`KdfGate`.
    """

    def __init__(self, find_account, cache_sec: float = 60.0, throttle: Throttle | None = None,
                 clock=time.monotonic, gate: KdfGate | None = None):
        self._find = find_account
        self._cache_sec = cache_sec
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._cache: dict[str, tuple[bytes, str, float]] = {}
        self.throttle = throttle or Throttle()
        self.gate = gate or KdfGate()

    def _mac(self, username: str, password: str) -> bytes:
        return hmac.new(self._key, f"{username}\0{password}".encode(), hashlib.sha256).digest()

    def check(self, username: str, password: str, address: str = "-"):
        """Return the account, ``None`` for bad credentials, or raise :class:`Throttled`."""
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        blocked = self.throttle.blocked(username, address)
        account = self._find(username)
        if blocked:
            log.info("login throttled for %s from %s", self._shown(username, account), address)
            raise Throttled()
        mac = self._mac(username, password)
        cached = self._cache.get(username)
        if (account is not None and cached is not None and cached[2] > self._clock()
                and cached[1] == account.password_hash and hmac.compare_digest(cached[0], mac)):
            # A success is a success, cached or not: it ends the run of failures, or
            # a user who mistypes now and then is locked out of their own password.
            self.throttle.succeeded(username, address)
            return account
        with self.gate.slot(self.throttle.known(username, address)) as held:
            if not held:
                log.info("login refused for %s from %s: too many password checks "
                         "at once", self._shown(username, account), address)
                raise Throttled()
            ok = verify_password(password, account.password_hash if account
                                 else _dummy_hash())
        if ok and account is not None:
            self._cache[username] = (mac, account.password_hash, self._clock() + self._cache_sec)
            self.throttle.succeeded(username, address)
            return account
        self.throttle.failed(username, address)
        log.warning("authentication failed for %s from %s", self._shown(username, account),
                    address)
        return None

    def _shown(self, username: str, account) -> str:
        """How a login names its user in the log: an account's name, else a tag (the
        same name gives the same tag in this process): a name that is no account may
        be a password typed into the wrong field, and is never written out."""
        if account is not None:
            return f"user {username!r}"
        tag = hmac.new(self._key, b"name\0" + username.encode("utf-8", "replace"),
                       hashlib.sha256).hexdigest()[:10]
        return f"unknown user #{tag}"


class Throttled(Exception):
    """Too many failed logins for this user/address, or too many checks at once:
    answer error 8."""
