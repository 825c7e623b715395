"""Inbound connections: a deadline per request and a cap on open connections.

twisted.web's idle timeout (``Site(timeout=...)``) restarts on every byte received, so a
client sending one byte every few seconds keeps a connection forever, and nothing caps how
many it keeps: 1,100 such connections at a 1,024 descriptor limit left no legitimate call
answered. Here instead

- a request's headers must be complete within ``header_timeout_sec`` of the connection
  being ready for it (opened, or the previous answer sent: this is also how long an idle
  keep-alive connection stays open), and its body within ``body_timeout_sec`` of the
  headers; bytes arriving meanwhile change nothing. A request cut off this way gets
  ``408``, an idle connection is just closed;
- at most ``max_connections`` are open at once, a share of the process's descriptor limit
  that keeps the rest for delivery, the store and the logs. At the cap a new connection
  takes the place of the one that has waited longest for its next request (a slow or
  idle client; a connection whose request is being answered is never dropped), so slow
  clients cannot crowd out clients that send their request at once; only when every
  connection is busy with a request is the newcomer answered ``503`` and closed.
"""

from __future__ import annotations

import logging
import resource
from collections import OrderedDict
from dataclasses import dataclass

from twisted.internet import protocol
from twisted.web import http, server

log = logging.getLogger(__name__)

_CLOSE_GRACE_SEC = 2.0  # after a clean close, how long before the socket is aborted
_REPORT_EVERY_SEC = 60.0


def default_max_connections() -> int:
    """Half of the soft descriptor limit (512 of 1,024), at least 64."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(64, soft // 2)


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_sec: float = 10.0
    body_timeout_sec: float = 30.0
    max_connections: int = 512

    @classmethod
    def from_settings(cls, settings) -> ConnectionLimits:
        return cls(settings.header_timeout_sec, settings.body_timeout_sec,
                   settings.max_connections or default_max_connections())


def _answer(status: bytes, text: bytes) -> bytes:
    return (b"HTTP/1.1 %s\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (status, len(text), text))


class GuardedChannel(http.HTTPChannel):
    """An HTTP channel with request deadlines that bytes do not extend."""

    _deadline = None
    _closer = None
    _received = False  # bytes of the next request have arrived
    busy = False  # a complete request is being answered

    def connectionMade(self):
        super().connectionMade()
        self._ready()

    def dataReceived(self, data):
        self._received = True
        super().dataReceived(data)

    def allHeadersReceived(self):
        super().allHeadersReceived()
        if not self.busy and self._deadline is not None:
            self._arm(self.site.limits.body_timeout_sec, "body")

    def allContentReceived(self):
        self._cancel()
        self.busy = True
        self.site.guard.busy(self)
        super().allContentReceived()

    def requestDone(self, request):
        # Ready before twisted hands over pipelined bytes: they may hold a whole request.
        if self.persistent and self._closer is None:
            self._ready()
        super().requestDone(request)

    def connectionLost(self, reason):
        self._cancel()
        if self._closer is not None and self._closer.active():
            self._closer.cancel()
        self.site.guard.lost(self)
        for request in self.requests:
            # A client that has read its whole answer may hang up before the thread
            # that wrote it calls finish() (WSGI, deferred answers): twisted would then
            # never log that request. It is logged here, as it was answered.
            if request.startedWriting and not request.finished:
                self.site.log(request)
        super().connectionLost(reason)

    # -- deadlines ---------------------------------------------------------------------
    def _ready(self):
        self.busy = False
        self._received = any(self._dataBuffer)
        self.site.guard.waiting(self)
        self._arm(self.site.limits.header_timeout_sec, "headers")

    def _arm(self, seconds: float, part: str):
        self._cancel()
        self._deadline = self.site.reactor.callLater(seconds, self._expired, part, seconds)

    def _cancel(self):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _expired(self, part: str, seconds: float):
        self._deadline = None
        if self._received:
            self.site.guard.tally("timed out", f"sent no complete request {part} within "
                                  f"{seconds:g} s")
            self.transport.write(_answer(b"408 Request Timeout", b"request %s not received "
                                         b"within %g s\n" % (part.encode(), seconds)))
        self.close()

    def close(self):
        """Close now, and abort the socket if the client does not let go."""
        self._cancel()
        self.persistent = False
        if self._closer is None and self.transport is not None:
            self._closer = self.site.reactor.callLater(_CLOSE_GRACE_SEC,
                                                       self.transport.abortConnection)
            self.transport.loseConnection()


class _Busy(protocol.Protocol):
    def connectionMade(self):
        self.transport.write(_answer(b"503 Service Unavailable",
                                     b"too many connections; try again\n"))
        self.transport.loseConnection()


class ConnectionGuard:
    """The open connections of one site, those waiting for a request oldest first."""

    def __init__(self, limits: ConnectionLimits, reactor):
        self.limits, self.reactor = limits, reactor
        self.open: set[GuardedChannel] = set()
        self._waiting: OrderedDict[GuardedChannel, None] = OrderedDict()
        self._counts: dict[str, int] = {}
        self._reasons: dict[str, str] = {}
        self._reported_at: float | None = None

    def admit(self) -> bool:
        """Room for one more connection (making it if need be)?"""
        if len(self.open) < self.limits.max_connections:
            return True
        if not self._waiting:
            self.tally("refused", f"arrived while all {self.limits.max_connections} "
                       "connections were answering requests (503)")
            return False
        oldest, _ = self._waiting.popitem(last=False)
        self.open.discard(oldest)  # its descriptor goes within this turn of the reactor
        self.tally("dropped", f"waited longest for a request while "
                   f"{self.limits.max_connections} connections were open")
        oldest.close()
        return True

    def waiting(self, channel):
        self.open.add(channel)
        self._waiting[channel] = None
        self._waiting.move_to_end(channel)

    def busy(self, channel):
        self._waiting.pop(channel, None)

    def lost(self, channel):
        self.open.discard(channel)
        self._waiting.pop(channel, None)

    def tally(self, what: str, reason: str):
        """One log line per minute at most, with the counts since the last one."""
        self._counts[what] = self._counts.get(what, 0) + 1
        self._reasons[what] = reason
        now = self.reactor.seconds()
        if self._reported_at is None or now - self._reported_at >= _REPORT_EVERY_SEC:
            self._reported_at = now
            parts = "; ".join(f"{n} {w}: {self._reasons[w]}" for w, n in self._counts.items())
            log.warning("inbound connections: %s", parts)
            self._counts.clear()


class GuardedSite(server.Site):
    """A site whose connections are :class:`GuardedChannel` under one guard."""

    protocol = GuardedChannel

    def __init__(self, resource, limits: ConnectionLimits | None = None, reactor=None,
                 **kwargs):
        kwargs.setdefault("timeout", None)  # twisted's byte-reset idle timeout: replaced
        super().__init__(resource, reactor=reactor, **kwargs)
        self.limits = limits or ConnectionLimits()
        self.guard = ConnectionGuard(self.limits, self.reactor)

    def buildProtocol(self, addr):
        if not self.guard.admit():
            busy = _Busy()
            busy.factory = self
            return busy
        return super().buildProtocol(addr)
