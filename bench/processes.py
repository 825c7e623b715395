"""The processes of a benchmark: a real ``soapservice serve`` or ``soapservice worker``
on a store URL, the receiver, the load generators and the bare baselines, each in its
own process (the clock that times them is the receiver's, one place for all).

``Serve`` starts ``soapservice serve`` through the tests' own helper
(``tests.support.server.Server``: a free port, the "listening on" line, ``/healthz``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench password"
TOKEN = "bench-ingest-token"
EVENT = "optin_finalized"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn_with_port(*args) -> tuple[subprocess.Popen, int]:
    """Start ``python -m args`` that prints its port on the first line."""
    proc = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"{args} did not print a port: {line!r}")
    return proc, int(line)


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_json(args: list[str], job: dict | None = None, timeout: float = 600) -> dict:
    """Run ``python -m args`` with ``job`` as JSON on stdin; its last line of stdout."""
    out = subprocess.run([sys.executable, "-m", *args], input=json.dumps(job or {}),
                         capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(f"{args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class Background:
    """``python -m args`` fed ``job`` on stdin, running while the caller measures;
    :meth:`result` waits for its JSON answer."""

    def __init__(self, args: list[str], job: dict):
        with tempfile.TemporaryFile("w+") as stdin:
            stdin.write(json.dumps(job))
            stdin.seek(0)
            self.proc = subprocess.Popen([sys.executable, "-m", *args], stdin=stdin,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True, cwd=ROOT)

    def result(self, timeout: float = 600) -> dict:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        if self.proc.returncode:
            raise RuntimeError(f"load failed:\n{err[-3000:]}")
        return json.loads(out.strip().splitlines()[-1])


class Receiver:
    """Client of ``bench.receiver`` (started here, in its own process)."""

    def __init__(self):
        self.proc, self.port = spawn_with_port("bench.receiver")
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def reset(self):
        requests.post(self.url + "/reset", timeout=10)

    def hold(self):
        """Webhook requests wait unanswered until :meth:`release`."""
        requests.post(self.url + "/hold", timeout=10)

    def release(self):
        requests.post(self.url + "/release", timeout=10)

    def stats(self) -> dict:
        return requests.get(self.url + "/stats", timeout=10).json()

    def arrivals(self) -> list:
        """[(time, path, k)] of every request answered 2xx since the last reset."""
        return requests.get(self.url + "/arrivals", timeout=60).json()

    def wait_count(self, count: int, timeout: float, *, strict: bool = True) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["count"] >= count:
                return stats
            if time.monotonic() > deadline:
                if not strict:
                    return stats
                raise RuntimeError(f"receiver got {stats['count']} of {count} deliveries "
                                   f"within {timeout:.0f} s")
            time.sleep(0.05)

    def drain_rate(self, count: int, timeout: float) -> float:
        stats = self.wait_count(count, timeout)
        return (stats["count"] - 1) / max(stats["last"] - stats["first"], 1e-6)

    def close(self):
        stop(self.proc)


def service_env(url: str, **extra) -> dict:
    env = dict(os.environ, SOAPSERVICE_DATABASE_URL=url, SOAPSERVICE_PORT="0",
               SOAPSERVICE_HOST="127.0.0.1", SOAPSERVICE_ALLOW_PRIVATE_TARGETS="1",
               SOAPSERVICE_INGEST_TOKEN=TOKEN,
               PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Serve:
    """``soapservice serve`` on a store (a SQLite path or a URL) on a free port of
    127.0.0.1: the tests' server helper (``tests.support.server.Server``) with the
    benchmark's environment."""

    def __init__(self, db: Path | str, delivery: bool = True, env: dict | None = None,
                 log_path: Path | None = None, timeout: float = 120):
        from tests.support.server import Server
        url = db if isinstance(db, str) else f"sqlite:///{db}"
        self.db_path = None if isinstance(db, str) else Path(db)
        workdir = self.db_path.parent if self.db_path else Path(tempfile.gettempdir())
        extra = service_env(url, **(env or {}))
        del extra["SOAPSERVICE_PORT"]  # the helper picks a free port
        if not delivery:
            extra["SOAPSERVICE_DELIVERY"] = "0"
        self.server = Server(workdir, extra_env=extra)
        self.server.db_path = self.db_path
        self.log_path = self.server.log_path = log_path or (
            self.db_path.with_suffix(".log") if self.db_path else workdir / "serve.log")
        self.log_path.unlink(missing_ok=True)  # fresh: what it says is this run's
        self.server.start(timeout=timeout)
        self.proc, self.port, self.url = self.server.proc, self.server.port, self.server.url
        self.env = self.server.env

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def hwm_mb(self) -> float:
        """Peak resident set size so far (VmHWM), in MB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024

    def soap(self, operation: str, **params) -> str:
        inner = "".join(f"<w:{k}>{v}</w:{k}>" for k, v in params.items())
        answer = requests.post(self.url + "/soap", data=soap_envelope(operation, inner).encode(),
                               headers={"content-type": "text/xml"}, timeout=120)
        answer.raise_for_status()
        return answer.text

    def stop(self, grace: float = 10.0):
        stop(self.proc, grace)
        self.server.stop()


class Worker:
    """``soapservice worker`` on a store URL, with its own metrics port (its count of
    successful attempts is its share of the work)."""

    def __init__(self, url: str, env: dict | None = None):
        self.metrics_port = free_port()
        self.env = service_env(url, SOAPSERVICE_METRICS_PORT=self.metrics_port,
                               **(env or {}))
        self.proc = subprocess.Popen([sys.executable, "-m", "soapservice", "worker"],
                                     env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=ROOT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def delivered(self) -> float | None:
        """This process's successful attempts (``/metrics``), None if unreachable."""
        try:
            text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                timeout=5).text
        except requests.RequestException:
            return None
        found = re.search(r'^soapservice_delivery_attempts(?:_total)?\{outcome="success"\} '
                          r'([0-9.e+]+)$', text, re.M)
        return float(found.group(1)) if found else None

    def stop(self, grace: float = 5.0):
        stop(self.proc, grace)


def soap_envelope(operation: str, inner: str) -> str:
    return ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:w="urn:soapservice:webhooks:1"><soap:Body><w:{operation}>'
            f'<w:username>alice</w:username><w:password>{PASSWORD}</w:password>{inner}'
            f'</w:{operation}></soap:Body></soap:Envelope>')


def events_headers() -> dict:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
