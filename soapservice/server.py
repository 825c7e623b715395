"""Wiring: the store, the API, the web tree and the delivery loop as one
``MultiService`` (``soapservice serve``)."""

from __future__ import annotations

import logging

from twisted.application import internet, service
from twisted.python.threadpool import ThreadPool
from twisted.web import server

from soapservice import store
from soapservice.api import WebhookAPI
from soapservice.config import Settings
from soapservice.web.accesslog import redacted_log_formatter
from soapservice.web.limits import limited_request_factory
from soapservice.web.root import build_root

log = logging.getLogger(__name__)


class ThreadPoolService(service.Service):
    """A thread pool started and stopped with the application."""

    def __init__(self, pool: ThreadPool):
        self.pool = pool

    def startService(self):
        super().startService()
        self.pool.start()

    def stopService(self):
        super().stopService()
        self.pool.stop()


def make_site(settings: Settings, reactor, pool, api: WebhookAPI, extra=None) -> server.Site:
    site = server.Site(build_root(api, settings, reactor, pool, extra),
                       logFormatter=redacted_log_formatter)
    site.requestFactory = limited_request_factory(settings.max_body_bytes)
    site.displayTracebacks = False
    return site


def make_service(settings: Settings, reactor=None) -> service.MultiService:
    if reactor is None:
        from twisted.internet import reactor
    store.open_store(settings.database_url)
    top = service.MultiService()
    pool = ThreadPool(minthreads=2, maxthreads=16, name="soapservice-api")
    ThreadPoolService(pool).setServiceParent(top)
    api = WebhookAPI(settings)
    site = make_site(settings, reactor, pool, api)
    web = internet.TCPServer(settings.port, site, interface=settings.host)
    web.setServiceParent(top)
    top.api, top.site, top.web = api, site, web
    return top
