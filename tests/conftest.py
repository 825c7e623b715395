"""Shared fixtures: a real ``soapservice serve`` process on a free port with a temp
SQLite store (or the PostgreSQL of SOAPSERVICE_TEST_DATABASE_URL), and an account."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def soapservice(*args, env=None, input=None, check=True):
    """Run the ``soapservice`` command line as a user would."""
    return subprocess.run([sys.executable, "-m", "soapservice", *args], env=env, input=input,
                          capture_output=True, text=True, check=check, timeout=120)


class Server:
    """A running ``soapservice serve``; ``url`` is its base URL."""

    def __init__(self, tmp_path: Path, extra_env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_path = tmp_path / "soapservice.db"
        self.env = dict(os.environ)
        self.env.update({
            "SOAPSERVICE_DATABASE_URL": f"sqlite:///{self.db_path}",
            "SOAPSERVICE_PORT": str(self.port),
            "SOAPSERVICE_HOST": "127.0.0.1",
            "SOAPSERVICE_ALLOW_PRIVATE_TARGETS": "1",
            "SOAPSERVICE_INGEST_TOKEN": "test-ingest-token",
            "PYTHONUNBUFFERED": "1",
        })
        self.env.update(extra_env or {})
        self.log_path = tmp_path / "serve.log"
        self.proc = None

    def add_account(self, user="alice", password=PASSWORD, email=None):
        args = ["account", "add", user] + (["--email", email] if email else [])
        soapservice(*args, env=self.env, input=password + "\n")
        return user, password

    def start(self):
        """Start ``serve`` and wait until *this* process listens (its log says so): a
        /healthz answer alone could come from another test's server on a reused port."""
        for _ in range(3):
            self._log = open(self.log_path, "ab")
            offset = self.log_path.stat().st_size
            self.proc = subprocess.Popen([sys.executable, "-m", "soapservice", "serve"],
                                         env=self.env, stdout=self._log,
                                         stderr=subprocess.STDOUT)
            marker = f"listening on http://127.0.0.1:{self.port}/"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                text = self.log_path.read_bytes()[offset:].decode(errors="replace")
                if self.proc.poll() is not None:
                    if "Address already in use" in text or "Couldn't listen" in text:
                        break  # the port was taken meanwhile: try another
                    raise RuntimeError("server exited:\n" + text)
                if marker in text:
                    try:
                        if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                            return self
                    except requests.ConnectionError:
                        pass
                time.sleep(0.05)
            else:
                raise RuntimeError("server did not start:\n" + self.log())
            self._log.close()
            self._switch_port(free_port())
        raise RuntimeError("no free port found:\n" + self.log())

    def _switch_port(self, port):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env["SOAPSERVICE_PORT"] = str(port)

    def stop(self, sig=None):
        if self.proc and self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
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
