"""A real ``soapservice serve`` on a free port of 127.0.0.1 with a temp SQLite store,
driven as a user would (environment, the command line), and ``server_fixture``: the
fixture decorator whose tests pytest marks ``server`` (tests/conftest.py), so that
``-m "not server"`` is the fast in-process layer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent.parent
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
        self.preexec_fn = None  # e.g. to set the process's descriptor limit

    def add_account(self, user="alice", password=PASSWORD, email=None):
        args = ["account", "add", user] + (["--email", email] if email else [])
        soapservice(*args, env=self.env, input=password + "\n")
        return user, password

    def start(self, timeout: float = 90.0):
        """Start ``serve`` and wait until *this* process listens (its log says so): a
        /healthz answer alone could come from another test's server on a reused port.
        ``timeout``: seconds to wait (a benchmark's million-row store starts slower)."""
        check_allowed("soapservice serve")
        for _ in range(3):
            self._log = open(self.log_path, "ab")
            offset = self.log_path.stat().st_size
            self.proc = subprocess.Popen([sys.executable, "-m", "soapservice", "serve"],
                                         env=self.env, stdout=self._log,
                                         stderr=subprocess.STDOUT,
                                         preexec_fn=self.preexec_fn)
            marker = f"listening on http://127.0.0.1:{self.port}/"
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                text = self.log_path.read_bytes()[offset:].decode(errors="replace")
                if self.proc.poll() is not None:
                    if "Address already in use" in text or "Couldn't listen" in text:
                        break  # the port was taken meanwhile: try another
                    raise RuntimeError("server exited:\n" + text)
                if marker in text:
                    try:  # (a loaded machine may take seconds to answer: ask again)
                        if requests.get(self.url + "/healthz", timeout=10).status_code == 200:
                            return self
                    except requests.RequestException:  # refused, or a read timeout
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



# Set by tests/conftest.py for each test: False while a test without the ``server``
# marker runs, so a server started from an unmarked test fails loudly instead of
# slowing the fast layer (outside pytest, e.g. in bench, always allowed).
allowed = True


def check_allowed(what: str) -> None:
    if not allowed:
        raise RuntimeError(f"{what} started by a test not marked 'server': start it from a "
                           "fixture declared with tests.support.server.server_fixture, or "
                           "mark the test with pytest.mark.server")


def server_fixture(func=None, **kwargs):
    """``pytest.fixture`` for a fixture that starts a server process: every test that
    uses it (directly or through other fixtures) is marked ``server``."""
    def declare(f):
        f.starts_server = True
        return pytest.fixture(**kwargs)(f)
    return declare(func) if func is not None else declare


class Worker:
    """A running ``soapservice worker`` (the delivery loop only) beside a ``Server`` on
    the same store; ``metrics()`` reads its own metrics port."""

    def __init__(self, env, log_path, metrics_port):
        check_allowed("soapservice worker")
        self.metrics_port = metrics_port
        self.log_path = log_path
        self._log = open(log_path, "ab")
        env = dict(env, SOAPSERVICE_METRICS_PORT=str(metrics_port))
        self.proc = subprocess.Popen([sys.executable, "-m", "soapservice", "worker"],
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.owner = None

    def wait_started(self, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if self.proc.poll() is not None:
                raise RuntimeError("worker exited:\n" + text)
            for line in text.splitlines():
                if " worker " in line and " delivering from " in line:
                    self.owner = line.split(" worker ", 1)[1].split(" delivering", 1)[0]
                    return self
            time.sleep(0.05)
        raise RuntimeError("worker did not start:\n" + self.log_path.read_text())

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
