"""One HTTP attempt: POST the body with Twisted's non-blocking client, turn the answer
into an :class:`AttemptResult` (status, error words, failure kind, body snippet). No
policy here: what a status means is ``policy``'s business.

Connections go only to addresses the target policy allows, checked on the address
actually connected to: the host is resolved once, every address is checked, and the
connection is made to a checked address (no second lookup a DNS rebinding could
change). Redirects are not followed (Twisted's Agent never does). Connections are kept
in a pool, so a busy receiver costs one TCP handshake, not one per event.

Every attempt is bounded, whatever the receiver does: one deadline covers the lookup,
the connection, the headers and the body (a receiver that sends ``200`` headers and no
body fails with "timeout after N s" and its connection is aborted, never left open);
the response's header section may hold at most :data:`MAX_HEADER_BYTES` (Twisted's
client has no such limit: a header flood grew the process by gigabytes); at most
:data:`MAX_BODY_BYTES` of the body are read, then the connection is closed. An answer
whose body ends early is a failed attempt. ``send`` never raises: a URL that cannot be
sent fails that attempt only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from twisted.internet import defer, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.error import (
    ConnectError,
    ConnectingCancelledError,
    ConnectionRefusedError,
    DNSLookupError,
    TimeoutError,
)
from twisted.internet.ssl import optionsForClientTLS
from twisted.python.failure import Failure
from twisted.web._newclient import HEADER, STATUS, HTTP11ClientProtocol
from twisted.web.client import (
    URI,
    Agent,
    HTTPConnectionPool,
    PotentialDataLoss,
    ResponseDone,
    ResponseFailed,
    _ensureValidURI,
    _HTTP11ClientFactory,
)
from twisted.web.http_headers import Headers, _sanitizeLinearWhitespace
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

from soapservice.services import Runner
from soapservice.targets import (
    TargetPolicy,
    TargetRefused,
    Unresolvable,
    literal_address,
    needs_normalising,
    normalise_url,
)

MAX_HEADER_BYTES = 16 * 1024  # status line and headers of one answer
MAX_BODY_BYTES = 64 * 1024  # read of one answer's body; the rest is not waited for
SNIPPET_BYTES = 1024  # kept as text for the delivery log

# Failure kinds (``AttemptResult.kind``; the ``kind`` label of the attempts metric).
OK, STATUS_KIND, TIMEOUT, TLS, REFUSED, DNS, TARGET, URL, CLOSED, TOO_LARGE, CONNECT = (
    "ok", "status", "timeout", "tls", "refused", "dns", "target", "url", "closed",
    "too_large", "connect")


@dataclass(frozen=True)
class AttemptResult:
    status: int | None
    error: str | None
    duration_ms: float
    kind: str = OK  # OK or STATUS_KIND when there was an answer, else what went wrong
    snippet: str | None = None  # the first SNIPPET_BYTES of the answer's body, as text
    retry_after: str | None = None  # the answer's Retry-After header, as sent (steering)


class HeadersTooLarge(Exception):
    """The receiver's header section passed MAX_HEADER_BYTES."""


class BodyIncomplete(Exception):
    """The connection ended before the answer's body did."""


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


class _BoundedHeaders(HTTP11ClientProtocol):
    """Twisted's HTTP/1.1 client protocol with a cap on the answer's header section:
    bytes are counted while the parser is still before the body; past the cap the
    connection is aborted and the attempt fails with :class:`HeadersTooLarge`. Counted
    after parsing, so a read holding the end of the headers and the body is never
    held against the cap (a read is at most 64 KiB: the overshoot is bounded)."""

    _counted = None  # the parser whose header bytes _header_bytes counts
    _header_bytes = 0

    def dataReceived(self, data):
        parser = self._parser
        HTTP11ClientProtocol.dataReceived(self, data)
        if parser is None or parser is not self._parser or parser.state not in (
                STATUS, HEADER):
            return
        if parser is not self._counted:
            self._counted, self._header_bytes = parser, 0
        self._header_bytes += len(data)
        if self._header_bytes > MAX_HEADER_BYTES:
            self.transport.abortConnection()
            self._disconnectParser(Failure(HeadersTooLarge()))


class _BoundedFactory(_HTTP11ClientFactory):
    def buildProtocol(self, addr):
        return _BoundedHeaders(self._quiescentCallback)


class _Pool(HTTPConnectionPool):
    """Twisted's pool with the header cap, and a cap on idle kept-alive connections
    over all hosts (Twisted caps them per host only): past ``max_idle`` a connection
    that finished its request is closed instead of kept."""

    _factory = _BoundedFactory
    max_idle = 1024

    def _putConnection(self, key, connection):
        if len(self._timeouts) >= self.max_idle and connection not in self._timeouts:
            connection.transport.loseConnection()
            return
        HTTPConnectionPool._putConnection(self, key, connection)


class _Agent(Agent):
    """Twisted's Agent, minus two costs it pays at every request: the parse of the URL
    (a webhook's URL is sent again and again: parsed once, up to ``MAX_URLS`` kept) and
    a copy of the request's headers to add ``Host`` (added to the request's own
    headers, built anew for each attempt, at the same place: last). The same request
    goes out, byte for byte."""

    MAX_URLS = 4096

    def _init(self, reactor, endpointFactory, pool):
        Agent._init(self, reactor, endpointFactory, pool)
        self._parsed: dict[bytes, tuple] = {}

    def request(self, method, uri, headers=None, bodyProducer=None):
        known = self._parsed.get(uri)
        if known is None:
            parsed = URI.fromBytes(_ensureValidURI(uri.strip()))
            known = (parsed, (parsed.scheme, parsed.host, parsed.port),
                     self._computeHostValue(parsed.scheme, parsed.host, parsed.port))
            if len(self._parsed) >= self.MAX_URLS:
                self._parsed.clear()
            self._parsed[uri] = known
        parsed, key, host = known
        endpoint = self._getEndpoint(parsed)
        if headers is None:
            headers = Headers()
        raw = getattr(headers, "_rawHeaders", None)
        if raw is not None:  # Host is Twisted's own value: nothing to check
            raw.setdefault(b"Host", [host])
        elif not headers.hasHeader(b"host"):
            headers.addRawHeader(b"Host", host)
        return self._requestWithEndpoint(key, endpoint, method, parsed, headers,
                                         bodyProducer, parsed.originForm)


# The request's header names as Twisted writes them (canonical case), checked by Twisted
# once per name; bounded like the parsed URLs.
_NAMES: dict[bytes, bytes] = {}
_FAST_HEADERS = isinstance(getattr(Headers(), "_rawHeaders", None), dict)


def request_headers(headers: dict[bytes, list[bytes]]) -> Headers:
    """Twisted's ``Headers(headers)``, the same headers in the same order, built without
    its per-value Python work: each name is checked and put in canonical case by Twisted
    once, and a value is passed through Twisted's line-break clean-up only when it has a
    line break (``_sanitizeLinearWhitespace`` changes nothing else). Values must be
    bytes; anything else takes Twisted's own way."""
    if not _FAST_HEADERS:
        return Headers(headers)
    result = Headers()
    raw = result._rawHeaders
    for name, values in headers.items():
        canonical = _NAMES.get(name)
        if canonical is None:
            canonical = _canonical_name(name)
        cleaned = []
        for value in values:
            if value.__class__ is not bytes:
                return Headers(headers)
            cleaned.append(_sanitizeLinearWhitespace(value)
                           if b"\n" in value or b"\r" in value else value)
        raw[canonical] = cleaned
    return result


def _canonical_name(name) -> bytes:
    probe = Headers()
    probe.setRawHeaders(name, [])  # Twisted's check and canonical case (may raise)
    (canonical,) = probe._rawHeaders
    if isinstance(name, bytes):
        if len(_NAMES) >= 1024:
            _NAMES.clear()
        _NAMES[name] = canonical
    return canonical


def descriptor_budget(soft_limit: int, inbound: int, global_concurrency: int,
                      reserve: int = 64) -> tuple[int, int]:
    """(attempts in flight, idle connections kept) that fit the process's descriptor
    limit beside ``inbound`` connections and a ``reserve`` (store, logs, lookups):
    attempts keep at least 16, idle connections get what is left."""
    budget = max(32, soft_limit - inbound - reserve)
    in_flight = max(16, min(global_concurrency, budget * 2 // 3))
    return in_flight, max(0, budget - in_flight)


class _Body(protocol.Protocol):
    """Reads at most MAX_BODY_BYTES of a response body, keeping the first SNIPPET_BYTES;
    past the cap the connection is aborted (the answer's status stands). Fires
    ``finished`` with (status, snippet, Retry-After), or fails it with
    :class:`BodyIncomplete` when the connection ended before the body did; cancelling
    ``finished`` aborts the connection."""

    def __init__(self, connection, code: int | None = None, retry_after: str | None = None):
        self.finished = defer.Deferred(self._cancel)
        self.connection, self.code, self.retry_after = connection, code, retry_after
        self.size, self.head, self.capped = 0, [], False

    def _cancel(self, _d):
        _abort(self.connection)

    def dataReceived(self, data):
        if self.size < SNIPPET_BYTES:
            self.head.append(data[:SNIPPET_BYTES - self.size])
        self.size += len(data)
        if self.size > MAX_BODY_BYTES and not self.capped:
            self.capped = True
            _abort(self.connection)

    def connectionLost(self, reason):
        if self.finished.called:
            return
        if self.capped or reason.check(ResponseDone, PotentialDataLoss):
            snippet = b"".join(self.head).decode("utf-8", "replace") if self.head else ""
            self.finished.callback((self.code, snippet, self.retry_after))
        else:
            self.finished.errback(BodyIncomplete())


def _abort(connection):
    if connection is not None:
        connection.abortConnection()


@implementer(IAgentEndpointFactory)
class CheckedEndpointFactory:
    """``lookups`` (a :class:`soapservice.lookups.DeliveryLookups`) bounds lookups per
    key and in time; ``key`` is set by :meth:`Sender.send` just before the Agent asks
    for an endpoint (synchronously, on the reactor thread)."""

    key = None

    def __init__(self, reactor, targets: TargetPolicy, resolver_pool, lookups=None):
        self.reactor, self.targets = reactor, targets
        self.run = Runner(reactor, resolver_pool)  # DNS off the reactor
        self.lookups = lookups

    def endpointForURI(self, uri):
        return _CheckedEndpoint(self, uri, self.key)

    def checked_addresses(self, host: str, port: int, key=None) -> defer.Deferred:
        """The target policy's addresses for ``host``: resolved once (in the DNS thread
        pool, or not at all for a literal address), every one of them checked."""
        if literal_address(host) is not None:
            d = defer.maybeDeferred(self.targets.resolve_checked, host, port)
        elif self.lookups is not None:
            d = self.lookups.lookup(key if key is not None else host,
                                    self.targets.resolve_checked, host, port)
        else:
            d = self.run(self.targets.resolve_checked, host, port)
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
    def __init__(self, factory: CheckedEndpointFactory, uri, key=None):
        self.factory, self.uri, self.key = factory, uri, key

    def connect(self, protocol_factory):
        host = self.uri.host.decode("idna") if isinstance(self.uri.host, bytes) else self.uri.host
        host = host.strip("[]")
        d = self.factory.checked_addresses(host, self.uri.port, self.key)
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


def _tls_reason(error) -> str:
    """pyOpenSSL's error list as words: [('SSL routines', '', 'certificate verify
    failed')] -> 'certificate verify failed'."""
    try:
        reasons = [r[2] or r[1] for r in error.args[0] if isinstance(r, tuple)]
    except (IndexError, TypeError):
        reasons = []
    return "; ".join(r for r in reasons if r) or str(error) or type(error).__name__


def _is_tls(error) -> bool:
    module = type(error).__module__ or ""
    return module.startswith(("OpenSSL", "service_identity")) or any(
        word in type(error).__name__ for word in ("SSL", "TLS", "Verification"))


def classify(failure, timeout_sec: float) -> tuple[str, str]:
    """(kind, words for ``lastError``) of a failed attempt: each failure kind says
    what happened, in the log, the delivery list and the mail alike."""
    error = failure.value
    if isinstance(error, ResponseFailed) or isinstance(getattr(error, "reasons", None),
                                                        list):  # also Request*Failed
        reasons = [r.value for r in getattr(error, "reasons", None) or []]
        for inner in reasons:
            if isinstance(inner, HeadersTooLarge):
                return TOO_LARGE, (f"answer headers larger than {MAX_HEADER_BYTES // 1024}"
                                   " KiB (connection closed)")
            if _is_tls(inner):
                return TLS, f"TLS: {_tls_reason(inner)}"
        return CLOSED, "connection closed before the answer ended"
    if isinstance(error, TargetRefused):
        return (DNS, f"DNS: {error}") if isinstance(error, Unresolvable) else (
            TARGET, str(error))
    if isinstance(error, defer.CancelledError | defer.TimeoutError | TimeoutError
                  | ConnectingCancelledError):  # (the deadline came while connecting)
        return TIMEOUT, f"timeout after {timeout_sec:g} s"
    if isinstance(error, ConnectionRefusedError):
        return REFUSED, "connection refused"
    if isinstance(error, DNSLookupError):
        detail = error.args[0] if error.args and error.args[0] else "lookup failed"
        return DNS, f"DNS: {detail}"
    if _is_tls(error):
        return TLS, f"TLS: {_tls_reason(error)}"
    if isinstance(error, ConnectError):
        return CONNECT, f"connection failed: {error.__class__.__name__}"
    return CONNECT, f"{type(error).__name__}: {error}"[:300]


def describe_error(failure, timeout_sec: float = 10.0) -> str:
    return classify(failure, timeout_sec)[1]


class Sender:
    def __init__(self, reactor, targets: TargetPolicy, resolver_pool, timeout_sec: float,
                 max_per_host: int = 64, lookups=None, max_idle: int = 1024):
        self.reactor = reactor
        self.timeout_sec = timeout_sec
        self.pool = _Pool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = max_per_host
        self.pool.cachedConnectionTimeout = 20
        self.pool.max_idle = max_idle
        self.endpoints = CheckedEndpointFactory(reactor, targets, resolver_pool, lookups)
        self.agent = _Agent.usingEndpointFactory(reactor, self.endpoints, pool=self.pool)
        self._urls: dict[str, bytes] = {}  # stored URL -> what is requested
        # Attempts running, oldest first, with their deadlines: every attempt has the
        # same timeout, so the first is always the next to run out. One timer, set to
        # the first's deadline, cancels what ran out (instead of a timer per attempt,
        # set and cancelled at every request).
        self._deadlines: dict[defer.Deferred, float] = {}
        self._expiry = None

    def send(self, url: str, headers: dict[bytes, list[bytes]], body: bytes, key=None
             ) -> defer.Deferred:
        """POST once; fires with an :class:`AttemptResult` within the timeout (plus a
        reactor turn), never errbacks and never raises."""
        started = time.perf_counter()
        try:
            target = self._urls.get(url)
            if target is None:
                target = self._target(url)
            self.endpoints.key = key  # whose lookup this is (webhook id)
            try:
                d = self.agent.request(b"POST", target, request_headers(headers),
                                       _BytesProducer(body))
            finally:
                self.endpoints.key = None
        except Exception as exc:  # noqa: BLE001 (one unsendable URL fails one attempt)
            return defer.succeed(AttemptResult(
                None, f"URL cannot be sent: {exc}"[:300], 0.0, URL))
        d.addCallback(self._read)
        # One deadline for everything: cancelling aborts the connection, whether the
        # answer's headers or its body are still awaited.
        self._watch(d)
        return d.addCallbacks(self._done, self._failed, (started,), None, (started,))

    def _watch(self, d: defer.Deferred) -> None:
        self._deadlines[d] = self.reactor.seconds() + self.timeout_sec
        d.addBoth(self._unwatch, d)  # at once if it has its result already
        if self._expiry is None and self._deadlines:
            self._expiry = self.reactor.callLater(self.timeout_sec, self._expire)

    def _unwatch(self, result, d):
        deadlines = self._deadlines
        deadlines.pop(d, None)
        if not deadlines and self._expiry is not None:  # idle: no timer left behind
            if self._expiry.active():
                self._expiry.cancel()
            self._expiry = None
        return result

    def _expire(self) -> None:
        """Cancel the attempts whose deadline has come; wait for the next one's."""
        self._expiry = None
        now = self.reactor.seconds()
        expired, next_at = [], None
        for d, deadline in self._deadlines.items():
            if deadline > now:
                next_at = deadline
                break
            expired.append(d)
        for d in expired:
            self._deadlines.pop(d, None)
            d.cancel()  # a timeout, as classify() words it
        if next_at is not None and self._expiry is None:
            self._expiry = self.reactor.callLater(next_at - now, self._expire)

    def _done(self, answer, started):
        status, snippet, retry_after = answer
        return AttemptResult(status, None, (time.perf_counter() - started) * 1000,
                             OK if 200 <= status < 300 else STATUS_KIND, snippet,
                             retry_after)

    def _failed(self, failure, started):
        if failure.check(BodyIncomplete):
            kind, words = CLOSED, "connection closed before the answer's body ended"
        else:
            kind, words = classify(failure, self.timeout_sec)
        return AttemptResult(None, words, (time.perf_counter() - started) * 1000, kind)

    def _target(self, url: str) -> bytes:
        """The URL as requested (normalised if it was stored before URLs were
        normalised at creation), kept for the next attempt to it."""
        target = (normalise_url(url) if needs_normalising(url) else url).encode("ascii")
        if len(self._urls) >= _Agent.MAX_URLS:
            self._urls.clear()
        self._urls[url] = target
        return target

    def _read(self, response):
        connection = getattr(response._transport, "_producer", None)
        retry_after = response.headers.getRawHeaders(b"retry-after")
        body = _Body(connection, response.code,
                     retry_after[0].decode("latin-1")[:200] if retry_after else None)
        response.deliverBody(body)
        return body.finished

    def close(self) -> defer.Deferred:
        return self.pool.closeCachedConnections()
