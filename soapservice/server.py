"""Wiring: the store, the API, the web tree and the delivery loop as one
``MultiService`` (``soapservice serve``)."""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.internet.threads import blockingCallFromThread
from twisted.python.threadpool import ThreadPool
from twisted.web import resource, server

from soapservice import metrics, notify
from soapservice.api import WebhookAPI
from soapservice.config import Settings
from soapservice.delivery import DeliveryService
from soapservice.ingest import Ingestor
from soapservice.lookups import DeliveryLookups
from soapservice.mail import Mailer
from soapservice.sender import Sender, descriptor_budget
from soapservice.services import Listener, Runner, tcp_description
from soapservice.store import Store
from soapservice.web.accesslog import AccessLog
from soapservice.web.clientaddr import parse_networks
from soapservice.web.connections import ConnectionLimits, GuardedSite
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

    def __init__(self, site: DrainingSite | None = None, access_log: AccessLog | None = None):
        super().__init__()
        self.site, self.access_log = site, access_log

    @defer.inlineCallbacks
    def stopService(self):
        service.Service.stopService(self)
        if self.site is not None:
            self.site.draining = True  # keep-alive connections outlive the listening port
        for child in reversed(list(self)):
            yield defer.maybeDeferred(child.stopService)
        if self.access_log is not None:
            self.access_log.close()


class DrainingSite(GuardedSite):
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
    site = DrainingSite(build_root(api, settings, reactor, pool, extra),
                        ConnectionLimits.from_settings(settings), reactor)
    site.access_log = access_log
    site.requestFactory = limited_request_factory(
        settings.max_body_bytes, settings.max_form_bytes,
        parse_networks(settings.trusted_proxies))
    site.displayTracebacks = False
    return site


def _delivery_descriptors(settings: Settings) -> tuple[Settings, int]:
    """Fit delivery's connections under RLIMIT_NOFILE beside the inbound cap and a
    reserve: fewer attempts in flight (said in the log) and fewer idle connections."""
    import resource
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return settings, 1024
    inbound = ConnectionLimits.from_settings(settings).max_connections  # the same cap
    in_flight, idle = descriptor_budget(soft, inbound, settings.global_concurrency)
    if in_flight < settings.global_concurrency:
        log.warning("descriptor limit %d: delivery keeps at most %d requests in flight "
                    "(SOAPSERVICE_GLOBAL_CONCURRENCY=%d) beside %d inbound connections; "
                    "raise the limit (ulimit -n) for more", soft, in_flight,
                    settings.global_concurrency, inbound)
        settings = settings.replace(global_concurrency=in_flight)
    return settings, min(idle, 1024)


def make_delivery(settings: Settings, reactor, store_pool, dns_pool, targets,
                  **kwargs) -> DeliveryService:
    settings, max_idle = _delivery_descriptors(settings)
    sender = metrics.MeteredSender(
        Sender(reactor, targets, dns_pool, settings.delivery_timeout_sec,
               lookups=DeliveryLookups(reactor, Runner(reactor, dns_pool), min(
                   settings.dns_timeout_sec, settings.delivery_timeout_sec), per_key=1,
                   per_group=max(1, settings.dns_threads // 4)),
               max_per_host=min(256, settings.global_concurrency), max_idle=max_idle))
    on_deactivate = functools.partial(notify.store_notification, base_url=settings.base_url,
                                      ttl_sec=settings.token_ttl_days * 86400,
                                      mail=bool(settings.smtp_url))
    return DeliveryService(settings, sender, Runner(reactor, store_pool), reactor,
                           on_deactivate=on_deactivate, on_takeover=metrics.count_takeovers,
                           **kwargs)


class TestSenderService(service.Service):
    """TestWebHook's sender (the delivery sender's class, so the same target guard and
    timeout), called from API threads; its connections close with the service."""

    def __init__(self, reactor, sender: Sender):
        self.reactor, self.sender = reactor, sender

    def send(self, url: str, headers, body: bytes):
        return blockingCallFromThread(self.reactor, self.sender.send, url, headers, body)

    def stopService(self):
        super().stopService()
        return self.sender.close()


def metrics_site(reactor, pool, access_log: AccessLog | None = None) -> server.Site:
    """The small site of SOAPSERVICE_METRICS_PORT: /metrics and /healthz."""
    root = resource.Resource()
    root.putChild(b"metrics", Metrics(reactor, pool))
    root.putChild(b"healthz", Health(reactor, pool))
    site = DrainingSite(root)
    site.access_log = access_log
    return site


@dataclass
class App:
    """What :func:`make_app` built. Start and stop ``service``; the rest is what the
    command line and tests reach for (``web.address`` is the bound address)."""

    settings: Settings  # with the bound port when SOAPSERVICE_PORT was 0
    store: Store
    reactor: Any  # the reactor everything was wired to
    service: SequentialMultiService
    api: WebhookAPI
    ingestor: Ingestor
    access_log: AccessLog
    delivery: DeliveryService | None = None
    mailer: Mailer | None = None
    site: DrainingSite | None = None
    web: Listener | None = None
    metrics: Listener | None = None


def make_app(settings: Settings, reactor=None, *, store: Store, web: bool = True) -> App:
    """The whole service, wired, on ``store`` (opened by the caller: ``Store.open``).
    Its children start in order and stop in reverse: the web stops taking requests
    first, then the delivery loop finishes its attempts, then the pools stop. Nothing
    here sets a module global: what the parts call back (wake-ups, lease takeovers into
    the metrics, notifications) is handed to them. It writes to the store once: the
    operator's system webhook is made to match the settings.

    ``web=False``: a worker (``soapservice worker``), the delivery loop only."""
    if reactor is None:
        from twisted.internet import reactor
    import time

    from soapservice.store import operator_events
    operator_events.configure(settings.operator_webhook_url,
                              settings.operator_webhook_secret, time.time())
    early = None
    if web and settings.port == 0:
        # Port 0: bind now, so that WSDLs and links name the port the system chose.
        early = Listener(reactor, tcp_description(0, settings.host))
        settings = settings.replace(port=early.bind().port)
    top = SequentialMultiService()
    pool = ThreadPool(minthreads=2, maxthreads=16, name="soapservice-api")
    # The delivery loop's store work (claims, outcomes, purge chunks) and ingest's group
    # commits run on two threads, each with its own connection: an event's commit waits
    # at most for one short delivery transaction (SQLite WAL: one writer at a time,
    # ``BEGIN IMMEDIATE`` queues), never behind a queue of claims and outcome batches.
    store_pool = ThreadPool(minthreads=1, maxthreads=1, name="soapservice-store")
    ingest_pool = ThreadPool(minthreads=1, maxthreads=1, name="soapservice-ingest")
    dns_pool = ThreadPool(minthreads=0, maxthreads=settings.dns_threads,
                          name="soapservice-dns")
    for p in (pool, store_pool, ingest_pool, dns_pool):
        ThreadPoolService(p, reactor).setServiceParent(top)
    api = WebhookAPI(settings)
    ingestor = Ingestor(settings, Runner(reactor, ingest_pool))
    delivery: DeliveryService | None = None
    reactivate = Reactivate(settings, reactor, pool)
    mailer: Mailer | None = None
    if settings.smtp_url and settings.delivery_enabled:
        # Before the delivery loop, so it stops after it (a last deactivation still mails).
        mailer = Mailer(settings, reactor, Runner(reactor, pool))
        mailer.setServiceParent(top)
    if settings.delivery_enabled:
        delivery = make_delivery(settings, reactor, store_pool, dns_pool, api.targets,
                                 after_deactivate=mailer and mailer.after_deactivate)
        delivery.setServiceParent(top)
        ingestor.listeners.append(delivery.wake_from_thread)
        api.on_webhook_activated.append(delivery.wake_from_thread)
        reactivate.on_webhook_activated.append(delivery.wake_from_thread)
        api.on_webhook_deleted.append(delivery.forget_webhook)
        if store.postgres:
            ListenerService(settings.database_url, delivery.wake_from_thread
                            ).setServiceParent(top)
    ingestor.on_stored.append(metrics.EVENTS.inc)
    top.access_log = access_log = AccessLog(settings.access_log, reactor)
    metrics_port: Listener | None = None
    if settings.metrics_port is not None:
        metrics_port = Listener(reactor, tcp_description(settings.metrics_port, settings.host),
                                metrics_site(reactor, pool, access_log))
        metrics_port.setServiceParent(top)
    app = App(settings, store, reactor, top, api, ingestor, access_log, delivery, mailer,
              metrics=metrics_port)
    if web:
        tests = TestSenderService(reactor, Sender(reactor, api.targets, dns_pool,
                                                  settings.delivery_timeout_sec,
                                                  max_per_host=4))
        tests.setServiceParent(top)
        api.send_test = tests.send
        extra = {"events": Events(ingestor, settings.ingest_token, reactor, pool),
                 "reactivate": reactivate, "metrics": Metrics(reactor, pool)}
        top.site = app.site = make_site(settings, reactor, pool, api, extra, access_log)
        if early is not None:
            early.serve(app.site)
            app.web = early
        else:
            app.web = Listener(reactor, tcp_description(settings.port, settings.host),
                               app.site)
        app.web.setServiceParent(top)
    return app
