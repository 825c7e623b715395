"""Wiring: the store, the API, the web tree and the delivery loop as one
``MultiService`` (``soapservice serve``)."""

from __future__ import annotations

import functools
import logging
import threading

from twisted.application import internet, service
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.web import server

from soapservice import metrics, notify, store
from soapservice.api import WebhookAPI
from soapservice.config import Settings
from soapservice.delivery import DeliveryService
from soapservice.ingest import Ingestor
from soapservice.mail import Mailer
from soapservice.sender import Sender
from soapservice.store import outbox
from soapservice.web.accesslog import AccessLog
from soapservice.web.events import Events
from soapservice.web.health import Health
from soapservice.web.limits import limited_request_factory
from soapservice.web.metrics import Metrics
from soapservice.web.reactivate import Reactivate
from soapservice.web.root import build_root

log = logging.getLogger(__name__)


class ThreadPoolService(service.Service):
    """A thread pool started and stopped with the application.

    Stopping joins the workers from another thread, never the reactor's: a WSGI worker
    writing its answer waits for the reactor thread (``blockingCallFromThread``), so
    joining it there hangs the process on SIGTERM while a call is in flight.
    """

    def __init__(self, pool: ThreadPool, reactor=None):
        self.pool = pool
        self.reactor = reactor

    def startService(self):
        super().startService()
        self.pool.start()

    def stopService(self):
        super().stopService()
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor
        stopped = defer.Deferred()

        def stop():
            try:
                self.pool.stop()
            finally:
                reactor.callFromThread(stopped.callback, None)

        threading.Thread(target=stop, name=f"stop-{self.pool.name}", daemon=True).start()
        return stopped


class ListenerService(service.Service):
    """PostgreSQL: wakes the delivery loop when any process announces due work."""

    def __init__(self, url, wake):
        from soapservice.store.listen import DueListener
        self.listener = DueListener(url, wake)

    def startService(self):
        super().startService()
        self.listener.start()

    def stopService(self):
        super().stopService()
        self.listener.stop()


class SequentialMultiService(service.MultiService):
    """Stops its children one after the other, last started first (Twisted's
    MultiService stops them all at once, and the delivery loop still needs the store
    thread while it finishes)."""

    @defer.inlineCallbacks
    def stopService(self):
        service.Service.stopService(self)
        if getattr(self, "site", None) is not None:
            self.site.draining = True  # keep-alive connections outlive the listening port
        for child in reversed(list(self)):
            yield defer.maybeDeferred(child.stopService)
        if getattr(self, "access_log", None) is not None:
            self.access_log.close()


class DrainingSite(server.Site):
    """A site that, once stopping, takes no new request on connections still open
    (keep-alive clients): 503 with ``Connection: close``, while attempts in flight end."""

    draining = False
    access_log: AccessLog | None = None

    def getResourceFor(self, request):
        if self.draining:
            request.channel.persistent = False
            request.setHeader(b"connection", b"close")
            request.setHeader(b"retry-after", b"10")
            from twisted.web.resource import ErrorPage
            return ErrorPage(503, "Service Unavailable", "shutting down; try again")
        return super().getResourceFor(request)

    def log(self, request):
        if self.access_log is not None:
            self.access_log.log(self._logDateTime, request)


def make_site(settings: Settings, reactor, pool, api: WebhookAPI, extra=None,
              access_log: AccessLog | None = None) -> server.Site:
    site = DrainingSite(build_root(api, settings, reactor, pool, extra))
    site.access_log = access_log
    site.requestFactory = limited_request_factory(settings.max_body_bytes)
    site.displayTracebacks = False
    return site


def make_delivery(settings: Settings, reactor, store_pool, dns_pool, targets,
                  **kwargs) -> DeliveryService:
    sender = metrics.MeteredSender(
        Sender(reactor, targets, dns_pool, settings.delivery_timeout_sec,
               max_per_host=min(256, settings.global_concurrency)))
    on_deactivate = functools.partial(notify.store_notification, base_url=settings.base_url,
                                      ttl_sec=settings.token_ttl_days * 86400)
    def run_in_store(fn, *args):
        return deferToThreadPool(reactor, store_pool, fn, *args)

    return DeliveryService(settings, sender, run_in_store, reactor,
                           on_deactivate=on_deactivate, **kwargs)


def metrics_site(reactor, pool, access_log: AccessLog | None = None) -> server.Site:
    """The small site of SOAPSERVICE_METRICS_PORT: /metrics and /healthz."""
    from twisted.web import resource
    root = resource.Resource()
    root.putChild(b"metrics", Metrics(reactor, pool))
    root.putChild(b"healthz", Health(reactor, pool))
    site = DrainingSite(root)
    site.access_log = access_log
    return site


def make_service(settings: Settings, reactor=None, *, web: bool = True
                 ) -> SequentialMultiService:
    """Children start in order and stop in reverse: the web stops taking requests
    first, then the delivery loop finishes its attempts, then the pools stop.

    ``web=False``: a worker (``soapservice worker``), the delivery loop only."""
    if reactor is None:
        from twisted.internet import reactor
    store.open_store(settings.database_url, synchronous=settings.sqlite_synchronous)
    outbox.on_lease_takeover[:] = [metrics.count_takeovers]
    top = SequentialMultiService()
    pool = ThreadPool(minthreads=2, maxthreads=16, name="soapservice-api")
    store_pool = ThreadPool(minthreads=1, maxthreads=1, name="soapservice-store")
    dns_pool = ThreadPool(minthreads=0, maxthreads=4, name="soapservice-dns")
    for p in (pool, store_pool, dns_pool):
        ThreadPoolService(p, reactor).setServiceParent(top)
    api = WebhookAPI(settings)
    ingestor = Ingestor(settings, functools.partial(deferToThreadPool, reactor, store_pool))
    top.delivery = None
    reactivate = Reactivate(settings, reactor, pool)
    top.mailer = None
    if settings.smtp_url and settings.delivery_enabled:
        # Before the delivery loop, so it stops after it (a last deactivation still mails).
        top.mailer = Mailer(settings, reactor,
                            functools.partial(deferToThreadPool, reactor, pool))
        top.mailer.setServiceParent(top)
    if settings.delivery_enabled:
        delivery = make_delivery(settings, reactor, store_pool, dns_pool, api.targets,
                                 after_deactivate=top.mailer and top.mailer.after_deactivate)
        delivery.setServiceParent(top)
        ingestor.listeners.append(delivery.wake_from_thread)
        api.on_webhook_activated.append(delivery.wake_from_thread)
        reactivate.on_webhook_activated.append(delivery.wake_from_thread)
        api.on_webhook_deleted.append(delivery.forget_webhook)
        top.delivery = delivery
        if store.is_postgres():
            ListenerService(settings.database_url, delivery.wake_from_thread
                            ).setServiceParent(top)
    ingestor.listeners.append(lambda _result: metrics.EVENTS.inc())
    top.access_log = AccessLog(settings.access_log, reactor)
    top.metrics = None
    if settings.metrics_port is not None:
        top.metrics = internet.TCPServer(
            settings.metrics_port, metrics_site(reactor, pool, top.access_log),
            interface=settings.host)
        top.metrics.setServiceParent(top)
    top.api, top.ingestor, top.site, top.web = api, ingestor, None, None
    if web:
        extra = {"events": Events(ingestor, settings.ingest_token, reactor, pool),
                 "reactivate": reactivate, "metrics": Metrics(reactor, pool)}
        top.site = make_site(settings, reactor, pool, api, extra, top.access_log)
        top.web = internet.TCPServer(settings.port, top.site, interface=settings.host)
        top.web.setServiceParent(top)
    return top
