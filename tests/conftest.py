"""Shared fixtures and the two test layers.

Markers, applied here at collection so that no file has to remember them:
``server`` on every test that starts a ``soapservice`` process (through a fixture
declared with ``tests.support.server.server_fixture`` or one that builds a ``Server``
or a ``Worker``, or marked by hand), and
``postgres`` on every test of a store (``store_url``/``pg_database``), which then runs
on PostgreSQL too when SOAPSERVICE_TEST_DATABASE_URL is set. ``make test`` runs
``-m "not server"`` first (in-process, seconds), then ``-m server``.
"""

from __future__ import annotations

import os

import pytest

from tests.support import server as _server
from tests.support.server import PASSWORD, ROOT, Server, free_port, server_fixture, soapservice

__all__ = ["PASSWORD", "ROOT", "Server", "free_port", "soapservice", "require_tool"]

STORE_FIXTURES = {"store_url", "pg_database"}


PROCESSES = {"Server", "Worker"}  # tests.support.server's process starters


def _fixture_starts_server(func) -> bool:
    """Declared with server_fixture, or a fixture or test that builds a ``Server`` or a
    ``Worker``."""
    code = getattr(func, "__code__", None)
    return getattr(func, "starts_server", False) or (
        code is not None and bool(PROCESSES & set(code.co_names)))


def _starts_server(item) -> bool:
    if _fixture_starts_server(getattr(item, "function", None)):
        return True  # the test builds a Server itself
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(_fixture_starts_server(fixturedef.func)
               for fixturedefs in info.name2fixturedefs.values() for fixturedef in fixturedefs)


def pytest_collection_modifyitems(items):
    for item in items:
        if _starts_server(item):
            item.add_marker(pytest.mark.server)
        if STORE_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.postgres)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    """Fixtures of an unmarked test may not start a server (see support/server.py)."""
    _server.allowed = item.get_closest_marker("server") is not None
    try:
        return (yield)
    finally:
        _server.allowed = True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    _server.allowed = item.get_closest_marker("server") is not None
    try:
        return (yield)
    finally:
        _server.allowed = True


@server_fixture
def make_server(tmp_path):
    servers = []

    def make(extra_env=None, accounts=(("alice", PASSWORD),), start=True):
        srv = Server(tmp_path / f"s{len(servers)}", extra_env)
        (tmp_path / f"s{len(servers)}").mkdir(exist_ok=True)
        servers.append(srv)
        for user, password in accounts:
            srv.add_account(user, password)
        return srv.start() if start else srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def server(make_server):
    return make_server(accounts=(("alice", PASSWORD), ("bob", PASSWORD)))


def require_tool(name: str) -> str:
    """Path of an external tool; absent: skip locally, fail in CI (CI=true)."""
    import shutil
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install it; .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium (Selenium WebDriver) with a fresh profile; see tests/browser.py."""
    chromium = require_tool("chromium")
    chromedriver = require_tool("chromedriver")
    from tests.browser import start_chromium
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    driver = start_chromium(chromium, chromedriver, profile)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def pg_database():
    """This run's own PostgreSQL database (None unless SOAPSERVICE_TEST_DATABASE_URL is
    set); dropped when the run ends."""
    from tests import pgstore
    server = pgstore.server_url()
    if server is None:
        yield None
        return
    url = pgstore.create_database(server)
    yield url
    from soapservice import store
    store.close_store()
    pgstore.drop_database(server, url)


@pytest.fixture
def store_url(tmp_path, pg_database):
    """A fresh, empty store for store-level tests: a temp SQLite file, or this run's
    PostgreSQL database emptied (when SOAPSERVICE_TEST_DATABASE_URL is set)."""
    if pg_database is None:
        return f"sqlite:///{tmp_path / 't.db'}"
    from tests import pgstore
    pgstore.empty(pg_database)
    return pg_database


@pytest.fixture
def alice(store_url):
    """The store of ``store_url``, opened, with an account alice (a cheap hash)."""
    from soapservice import auth, store
    from soapservice.store import accounts
    store.open_store(store_url)
    return accounts.add("alice", auth.hash_password("pw", n=2**4))
