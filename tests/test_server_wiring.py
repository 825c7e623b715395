"""make_app in process: what it builds, and the ports it listens on through endpoints,
on a memory reactor (no socket, no thread started)."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from soapservice import metrics, models
from soapservice.config import Settings
from soapservice.delivery import DeliveryService
from soapservice.server import make_app
from soapservice.services import Listener
from soapservice.store import Store


def test_make_app_wires_the_web_delivery_and_metrics_ports(store_url):
    reactor = MemoryReactorClock()
    settings = Settings(database_url=store_url, port=8123, metrics_port=9123)
    store = Store.open(store_url)
    app = make_app(settings, reactor, store=store)
    assert app.store is store and app.reactor is reactor
    assert isinstance(app.delivery, DeliveryService) and app.mailer is None
    assert isinstance(app.web, Listener) and isinstance(app.metrics, Listener)
    assert reactor.tcpServers == []  # nothing bound before start-up
    app.service.privilegedStartService()
    bound = {(port, interface): factory for port, factory, _, interface in reactor.tcpServers}
    assert bound[(8123, "127.0.0.1")] is app.site
    assert (9123, "127.0.0.1") in bound and bound[(9123, "127.0.0.1")] is not app.site
    assert app.web.address is not None
    # Stopping goes last-started first: the web port is the last child.
    assert list(app.service)[-1] is app.web


def test_a_worker_has_no_web_and_api_only_has_no_delivery(store_url):
    store = Store.open(store_url)
    worker = make_app(Settings(database_url=store_url), MemoryReactorClock(), store=store,
                      web=False)
    assert worker.web is None and worker.site is None and worker.delivery is not None
    api_only = make_app(Settings(database_url=store_url, delivery_enabled=False),
                        MemoryReactorClock(), store=store)
    assert api_only.delivery is None and api_only.web is not None


def test_make_app_sets_no_module_global_and_hands_the_hooks_to_the_parts(store_url):
    store = Store.open(store_url)
    bound = models.db.obj
    app = make_app(Settings(database_url=store_url), MemoryReactorClock(), store=store)
    assert models.db.obj is bound is store.database  # the caller opened it, once
    # Lease takeovers reach the metrics through the loop that claims, not a store global.
    assert app.delivery.on_takeover is metrics.count_takeovers
