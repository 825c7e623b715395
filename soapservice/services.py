"""Two small pieces of Twisted wiring the service uses everywhere: the one runner for
blocking work, and a listening port from a server endpoint description."""

from __future__ import annotations

from twisted.application import service
from twisted.internet import defer, endpoints, protocol
from twisted.internet.interfaces import IListeningPort
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure


class Runner:
    """Runs blocking work (store calls, password hashing, DNS) on one thread pool and
    answers on the reactor thread: ``runner(fn, *args, **kwargs)`` -> Deferred. The one
    way work leaves the reactor thread (callers take a runner, not a pool)."""

    def __init__(self, reactor, pool):
        self.reactor, self.pool = reactor, pool

    def __call__(self, fn, *args, **kwargs) -> defer.Deferred:
        return deferToThreadPool(self.reactor, self.pool, fn, *args, **kwargs)


def tcp_description(port: int, host: str) -> str:
    """The server endpoint description of a TCP port on ``host`` (IPv6 quoted)."""
    return f"tcp:{port}:interface={endpoints.quoteStringArgument(host)}"


class Listener(service.Service):
    """A port listened on through ``serverFromString`` (``tcp:8080:interface=...``).

    It binds in ``privilegedStartService`` (or earlier, :meth:`bind`), so a port in use
    fails start-up with ``CannotListenError`` before any thread starts, and port 0 is
    known before the site that names it exists; :attr:`address` is the bound address.
    """

    def __init__(self, reactor, description: str, factory: protocol.Factory | None = None):
        self.endpoint = endpoints.serverFromString(reactor, description)
        self.factory = factory
        self.port: IListeningPort | None = None

    def bind(self):
        """Listen now (once) and return the bound address. Without a factory yet,
        connections wait for :meth:`serve` (the reactor is not running before start)."""
        if self.port is None:
            outcome: list = []
            self.endpoint.listen(self.factory or protocol.Factory()).addBoth(outcome.append)
            if not outcome:
                raise RuntimeError("the endpoint did not listen at once")
            if isinstance(outcome[0], Failure):
                outcome[0].raiseException()
            self.port = outcome[0]
        return self.port.getHost()

    def serve(self, factory: protocol.Factory) -> None:
        """Connections on the port bound by :meth:`bind` go to ``factory`` from now on."""
        self.factory = factory
        if self.port is not None:
            self.port.factory = factory
            factory.doStart()

    @property
    def address(self):
        """The bound address (``.host``, ``.port``); None before binding."""
        return None if self.port is None else self.port.getHost()

    def privilegedStartService(self):
        super().privilegedStartService()
        self.bind()

    def startService(self):
        super().startService()
        self.bind()

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None
