"""One HTTP attempt: POST the body with Twisted's non-blocking client, turn the answer
into (status, error). No policy here: what a status means is ``policy``'s business.

Connections go only to addresses the target policy allows, checked on the address
actually connected to: the host is resolved once, every address is checked, and the
connection is made to a checked address (no second lookup a DNS rebinding could
change). Redirects are not followed (Twisted's Agent never does). Connections are kept
in a pool, so a busy receiver costs one TCP handshake, not one per event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from twisted.internet import defer, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.error import (
    ConnectError,
    ConnectionRefusedError,
    DNSLookupError,
    TimeoutError,
)
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.threads import deferToThreadPool
from twisted.web.client import Agent, HTTPConnectionPool, ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

from soapservice.targets import TargetPolicy, TargetRefused, Unresolvable, literal_address

MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class AttemptResult:
    status: int | None
    error: str | None
    duration_ms: float


@implementer(IBodyProducer)
class _BytesProducer:
    def __init__(self, body: bytes):
        self.body, self.length = body, len(body)

    def startProducing(self, consumer):
        consumer.write(self.body)
        return defer.succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class _Drain(protocol.Protocol):
    """Reads and discards a response body (at most MAX_RESPONSE_BYTES), so the
    connection can go back to the pool."""

    def __init__(self, finished: defer.Deferred):
        self.finished, self.size = finished, 0

    def dataReceived(self, data):
        self.size += len(data)
        if self.size > MAX_RESPONSE_BYTES:
            self.transport.stopProducing()

    def connectionLost(self, reason):
        if not self.finished.called:
            self.finished.callback(None)


@implementer(IAgentEndpointFactory)
class CheckedEndpointFactory:
    def __init__(self, reactor, targets: TargetPolicy, resolver_pool):
        self.reactor, self.targets, self.pool = reactor, targets, resolver_pool

    def endpointForURI(self, uri):
        return _CheckedEndpoint(self, uri)

    def checked_addresses(self, host: str, port: int) -> defer.Deferred:
        """The target policy's addresses for ``host``: resolved once (in the DNS thread
        pool, or not at all for a literal address), every one of them checked."""
        if literal_address(host) is not None:
            d = defer.maybeDeferred(self.targets.resolve_checked, host, port)
        else:
            d = deferToThreadPool(self.reactor, self.pool, self.targets.resolve_checked,
                                  host, port)
        return d.addErrback(_refused)


def _refused(failure):
    """Word a refusal for ``lastError``: an unresolvable name is a DNS failure (it may
    resolve later), a forbidden address is the SSRF guard speaking."""
    failure.trap(TargetRefused)
    error = failure.value
    if isinstance(error, Unresolvable):
        raise DNSLookupError(str(error))
    raise TargetRefused(f"refused target address: {error}")


class _CheckedEndpoint:
    def __init__(self, factory: CheckedEndpointFactory, uri):
        self.factory, self.uri = factory, uri

    def connect(self, protocol_factory):
        host = self.uri.host.decode("idna") if isinstance(self.uri.host, bytes) else self.uri.host
        host = host.strip("[]")
        d = self.factory.checked_addresses(host, self.uri.port)
        d.addCallback(self._connect, host, protocol_factory)
        return d

    def _connect(self, addresses, host, protocol_factory):
        address = addresses[0]
        reactor = self.factory.reactor
        if ":" in address:
            endpoint = TCP6ClientEndpoint(reactor, address, self.uri.port)
        else:
            endpoint = TCP4ClientEndpoint(reactor, address, self.uri.port)
        if self.uri.scheme == b"https":
            endpoint = wrapClientTLS(optionsForClientTLS(host), endpoint)
        return endpoint.connect(protocol_factory).addCallback(_no_delay)


def _no_delay(proto):
    """Headers and body go out in separate writes: without TCP_NODELAY, Nagle's
    algorithm and the receiver's delayed ACK add ~40 ms to every request."""
    transport = proto.transport
    while transport is not None:
        if hasattr(transport, "setTcpNoDelay"):
            transport.setTcpNoDelay(True)
            break
        transport = getattr(transport, "transport", None)
    return proto


def describe_error(failure) -> str:
    error = failure.value
    if isinstance(error, TargetRefused):
        return str(error)
    if isinstance(error, defer.CancelledError | TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, DNSLookupError):
        return "DNS lookup failed"
    if isinstance(error, ResponseNeverReceived):
        reasons = getattr(error, "reasons", None) or []
        inner = reasons[0].value if reasons else None
        if inner is not None and "SSL" in type(inner).__name__:
            return f"TLS error: {inner}"
        return "connection closed without a response"
    if isinstance(error, ConnectError):
        return f"connection failed: {error.__class__.__name__}"
    name = type(error).__name__
    if "SSL" in name or "TLS" in name:
        return f"TLS error: {error}"
    return f"{name}: {error}"[:300]


class Sender:
    def __init__(self, reactor, targets: TargetPolicy, resolver_pool, timeout_sec: float,
                 max_per_host: int = 64):
        self.reactor = reactor
        self.timeout_sec = timeout_sec
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = max_per_host
        self.pool.cachedConnectionTimeout = 20
        self.agent = Agent.usingEndpointFactory(
            reactor, CheckedEndpointFactory(reactor, targets, resolver_pool), pool=self.pool)

    def send(self, url: str, headers: dict[bytes, list[bytes]], body: bytes) -> defer.Deferred:
        """POST once; fires with an :class:`AttemptResult`, never errbacks."""
        started = time.perf_counter()
        d = self.agent.request(b"POST", url.encode("utf-8"), Headers(headers),
                               _BytesProducer(body))
        d.addTimeout(self.timeout_sec, self.reactor)
        d.addCallback(self._read)

        def done(status):
            return AttemptResult(status, None, (time.perf_counter() - started) * 1000)

        def failed(failure):
            return AttemptResult(None, describe_error(failure),
                                 (time.perf_counter() - started) * 1000)

        return d.addCallbacks(done, failed)

    def _read(self, response):
        finished = defer.Deferred()
        response.deliverBody(_Drain(finished))
        # The status is the answer; the body is only drained, within the timeout.
        finished.addTimeout(self.timeout_sec, self.reactor)
        finished.addBoth(lambda _: response.code)
        return finished

    def close(self) -> defer.Deferred:
        return self.pool.closeCachedConnections()
