"""The portal's sessions and anti-forgery fields: pure rules on an injected clock.

A session is a signed cookie value (HMAC-SHA256 under a server key kept in the store),
not a row: any process of the service reads it, and nothing is written per sign-in. It
names the account, when it was issued and last used, a random id, and a fingerprint of
the account's password hash, so changing the password (``soapservice account passwd``)
ends every session at once. A session opened from a notification's link names its one
webhook and may act only on it.

Rules (docs/portal.rst): a session ends after ``IDLE_SEC`` without a request, and
``LIFETIME_SEC`` after sign-in whatever happens (``LINK_LIFETIME_SEC`` for a link's).
Each answer renews the idle clock (a new cookie value). Signing out revokes the id in
this process until the session would have ended anyway (the cookie is cleared too).

Every form carries a field derived from the session's id (or, for the sign-in form,
from a random value in its own ``SameSite=Strict`` cookie), which no other site can
read or compute: a cross-site POST never has it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

IDLE_SEC = 30 * 60.0
LIFETIME_SEC = 12 * 3600.0
LINK_LIFETIME_SEC = 3600.0
_VERSION = "p1"


@dataclass(frozen=True)
class Session:
    username: str
    webhook: int | None     # a link's session: only this webhook; None: the account
    issued: float
    seen: float
    sid: str
    fingerprint: str

    @property
    def full(self) -> bool:
        """Signed in with the password (not only arrived from a link)."""
        return self.webhook is None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Issues, reads, renews and ends sessions; thread-safe."""

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time,
                 idle_sec: float = IDLE_SEC, lifetime_sec: float = LIFETIME_SEC,
                 link_lifetime_sec: float = LINK_LIFETIME_SEC, max_revoked: int = 100_000):
        self._key = hmac.new(key, b"portal-session", hashlib.sha256).digest()
        self._clock = clock
        self.idle_sec, self.lifetime_sec = idle_sec, lifetime_sec
        self.link_lifetime_sec = link_lifetime_sec
        self._revoked: dict[str, float] = {}
        self._max_revoked = max_revoked
        self._lock = threading.Lock()

    # -- the cookie's value -------------------------------------------------------------
    def fingerprint(self, password_hash: str) -> str:
        return hmac.new(self._key, b"pw|" + password_hash.encode(),
                        hashlib.sha256).hexdigest()[:24]

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def _encode(self, s: Session) -> str:
        body = ".".join((_VERSION, _b64(s.username.encode("utf-8")), str(s.webhook or 0),
                         str(int(s.issued)), str(int(s.seen)), s.sid, s.fingerprint))
        return body + "." + self._mac(body)

    def issue(self, username: str, password_hash: str, webhook: int | None = None) -> str:
        now = self._clock()
        return self._encode(Session(username, webhook, now, now, secrets.token_urlsafe(16),
                                    self.fingerprint(password_hash)))

    def read(self, value: str | None) -> Session | None:
        """The session a cookie value names, if genuine, not expired and not ended."""
        if not value or len(value) > 1024:
            return None
        body, _, mac = value.rpartition(".")
        if not hmac.compare_digest(self._mac(body).encode(), mac.encode()):
            return None
        try:
            version, user, webhook, issued, seen, sid, fp = body.split(".")
            if version != _VERSION:
                return None
            s = Session(_unb64(user).decode("utf-8"), int(webhook) or None, float(issued),
                        float(seen), sid, fp)
        except (ValueError, UnicodeDecodeError):
            return None
        now = self._clock()
        lifetime = self.lifetime_sec if s.full else self.link_lifetime_sec
        if now - s.seen >= self.idle_sec or now - s.issued >= lifetime or now < s.issued - 60:
            return None
        with self._lock:
            if s.sid in self._revoked:
                return None
        return s

    def valid_for(self, s: Session, password_hash: str | None) -> bool:
        """The account still exists with the password the session was opened under."""
        return password_hash is not None and hmac.compare_digest(
            s.fingerprint, self.fingerprint(password_hash))

    def renew(self, s: Session) -> str:
        """The cookie value with the idle clock restarted (lifetime unchanged)."""
        return self._encode(Session(s.username, s.webhook, s.issued, self._clock(), s.sid,
                                    s.fingerprint))

    def end(self, s: Session) -> None:
        now = self._clock()
        with self._lock:
            if len(self._revoked) >= self._max_revoked:  # bounded: drop the lapsed
                self._revoked = {k: v for k, v in self._revoked.items() if v > now}
            self._revoked[s.sid] = s.issued + self.lifetime_sec

    def max_age(self, s: Session) -> int:
        """Seconds the cookie may live: to the session's hard end."""
        lifetime = self.lifetime_sec if s.full else self.link_lifetime_sec
        return max(0, int(s.issued + lifetime - self._clock()))

    # -- anti-forgery fields --------------------------------------------------------------
    def form_token(self, s: Session) -> str:
        return _b64(hmac.new(self._key, b"form|" + s.sid.encode(), hashlib.sha256).digest())

    def form_ok(self, s: Session, token: str) -> bool:
        return hmac.compare_digest(self.form_token(s).encode(), token.encode())

    def login_token(self, nonce: str) -> str:
        """The sign-in form's field, bound to the random value of its cookie."""
        return _b64(hmac.new(self._key, b"login|" + nonce.encode(), hashlib.sha256).digest())

    def login_ok(self, nonce: str, token: str) -> bool:
        return bool(nonce) and hmac.compare_digest(self.login_token(nonce).encode(),
                                                   token.encode())
