"""``python -m bench``: soapservice against the bare parts of its stack, side by side.

Every scenario runs a real ``soapservice serve`` (a subprocess, temp SQLite file), the
webhook receiver (``bench.receiver``) and the load (``bench.loadgen`` or
``bench.bare agent``) in their own processes. Each ratio is soapservice ÷ bare (or
loaded ÷ unloaded), both measured in the same round; the figure kept is the median of
the rounds. Writes ``bench/results.json`` and prints a table.

    python -m bench                 # the full run (make bench)
    python -m bench --quick         # smoke run with tiny sizes
    python -m bench --only soap,ingest --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
PASSWORD = "bench password"
TOKEN = "bench-ingest-token"
EVENT = "optin_finalized"
BODY = '{"k":{k},"email":"someone@example.com","list":"newsletter","opt":"in"}'
SCENARIOS = ("delivery", "soap", "ingest", "latency", "isolation", "replay", "workers")
TARGETS = {
    "delivery_ratio": (">=", 0.5), "soap_ratio": (">=", 0.6), "ingest_ratio": (">=", 0.5),
    "latency_p50_ms": ("<=", 15.0), "latency_p99_ms": ("<=", 50.0),
    "isolation_ratio": ("<=", 1.5), "backlog_ratio": (">=", 0.8),
    "replay_rss_mb": ("<=", 100.0),
}


@dataclass(frozen=True)
class Sizes:
    rounds: int = 3
    deliveries: int = 20_000  # delivered per drain: events x webhooks
    webhooks: int = 20
    old_delivered: int = 1_000_000  # backlog: delivered rows kept for the retention
    old_buffered: int = 100_000  # backlog: rows buffered for inactive webhooks
    soap_clients: int = 16
    ingest_clients: int = 16
    load_seconds: float = 2.0
    load_rounds: int = 5  # soap and ingest: short rounds, alternating who goes first
    latency_events: int = 200
    isolation_events: int = 60
    isolation_interval: float = 0.1  # 10 events/s x 20 webhooks: well within capacity
    replay_events: int = 100_000
    replay_webhooks: int = 20
    worker_deliveries: int = 5_000  # per drain, PostgreSQL, 1, 2 and 3 workers


QUICK = Sizes(rounds=1, deliveries=200, webhooks=4, old_delivered=2000, old_buffered=200,
              soap_clients=4, ingest_clients=4, load_seconds=0.5, load_rounds=1, latency_events=10,
              isolation_events=10, isolation_interval=0.01, replay_events=200,
              replay_webhooks=2, worker_deliveries=200)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- processes --------------------------------------------------------------------------
def spawn_with_port(*args) -> tuple[subprocess.Popen, int]:
    """Start ``python -m args`` that prints its port on the first line."""
    proc = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE,
                            text=True, cwd=HERE.parent)
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
    out = subprocess.run([sys.executable, "-m", *args], input=json.dumps(job or {}),
                         capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
    if out.returncode:
        raise RuntimeError(f"{args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class Receiver:
    def __init__(self):
        self.proc, self.port = spawn_with_port("bench.receiver")
        self.url = f"http://127.0.0.1:{self.port}"

    def reset(self):
        requests.post(self.url + "/reset", timeout=10)

    def stats(self) -> dict:
        return requests.get(self.url + "/stats", timeout=10).json()

    def arrivals(self) -> list:
        return requests.get(self.url + "/arrivals", timeout=60).json()

    def wait_count(self, count: int, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["count"] >= count:
                return stats
            if time.monotonic() > deadline:
                raise RuntimeError(f"receiver got {stats['count']} of {count} deliveries "
                                   f"within {timeout:.0f} s")
            time.sleep(0.05)

    def drain_rate(self, count: int, timeout: float) -> float:
        stats = self.wait_count(count, timeout)
        return (stats["count"] - 1) / max(stats["last"] - stats["first"], 1e-6)

    def close(self):
        stop(self.proc)


class Serve:
    """``soapservice serve`` on a SQLite file, on a free port."""

    def __init__(self, db_path: Path, delivery: bool = True, env: dict | None = None):
        self.db_path = db_path
        self.log_path = db_path.with_suffix(".log")
        self.env = dict(os.environ, SOAPSERVICE_DATABASE_URL=f"sqlite:///{db_path}",
                        SOAPSERVICE_PORT="0", SOAPSERVICE_HOST="127.0.0.1",
                        SOAPSERVICE_ALLOW_PRIVATE_TARGETS="1",
                        SOAPSERVICE_INGEST_TOKEN=TOKEN, PYTHONUNBUFFERED="1",
                        **(env or {}))
        args = [sys.executable, "-m", "soapservice", "serve"]
        if not delivery:
            args.append("--no-delivery")
        with open(self.log_path, "wb") as out:  # fresh: the port is read from it
            self.proc = subprocess.Popen(args, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=HERE.parent)
        deadline = time.monotonic() + 60
        while True:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)/",
                              self.log_path.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
                self.url = f"http://127.0.0.1:{self.port}"
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                stop(self.proc)
                raise RuntimeError("soapservice serve did not start:\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def hwm_mb(self) -> float:
        """Peak resident set size so far (VmHWM), in MB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024

    def soap(self, operation: str, **params) -> str:
        inner = "".join(f"<w:{k}>{v}</w:{k}>" for k, v in params.items())
        envelope = soap_envelope(operation, inner)
        answer = requests.post(self.url + "/soap", data=envelope.encode(),
                               headers={"content-type": "text/xml"}, timeout=120)
        answer.raise_for_status()
        return answer.text

    def stop(self, grace: float = 10.0):
        stop(self.proc, grace)


def soap_envelope(operation: str, inner: str) -> str:
    return ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:w="urn:soapservice:webhooks:1"><soap:Body><w:{operation}>'
            f'<w:username>alice</w:username><w:password>{PASSWORD}</w:password>{inner}'
            f'</w:{operation}></soap:Body></soap:Envelope>')


# -- stores -----------------------------------------------------------------------------
def new_store(path: Path, urls: list[str], inactive: list[str] = ()) -> list[int]:
    """An account alice with a webhook per URL (``inactive`` ones deactivated an hour
    ago); returns the webhook ids in order."""
    from soapservice import auth, store
    from soapservice.api import new_secret
    from soapservice.models import db
    from soapservice.store import accounts, webhooks

    store.open_store(f"sqlite:///{path}")
    try:
        account = accounts.add("alice", auth.hash_password(PASSWORD))
        ids = [webhooks.create(account.id, "bench", EVENT, url, new_secret(), 1000).id
               for url in urls]
        if inactive:
            from soapservice.models import Webhook
            Webhook.update(active=False, deactivated_at=time.time() - 3600, deactivations=1,
                           failure_count=8).where(Webhook.url.in_(list(inactive))).execute()
    finally:
        db.close()
    return ids


def seed_deliveries(path: Path, webhook_ids: list[int], events: int, *, state: int,
                    age_sec: float = 0.0, first_k: int = 0) -> None:
    """``events`` events, each with a delivery per webhook, straight in SQL (fast)."""
    now = time.time()
    created = now - age_sec
    delivered_at = created if state == 2 else None
    con = sqlite3.connect(path)
    # Big seeds insert without the delivery indexes and build them afterwards (sorted
    # once: several times faster than keeping five indexes up to date row by row).
    indexes = con.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND "
                          "tbl_name = 'delivery' AND sql IS NOT NULL").fetchall()
    rebuild = events * len(webhook_ids) > 50_000
    try:
        con.execute("PRAGMA synchronous=OFF")
        if rebuild:
            for (sql,) in indexes:
                con.execute("DROP INDEX " + sql.split(" ON ")[0].split()[-1])
        account_id = con.execute("SELECT id FROM account WHERE username='alice'").fetchone()[0]
        start = (con.execute("SELECT COALESCE(MAX(id), 0) FROM event").fetchone()[0]) + 1
        # Generated inside SQLite (a recursive CTE): no Python loop per row.
        head, tail = BODY.split("{k}")
        con.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO event (id, account_id, name, body, subscriber, created_at) "
            "SELECT ? + i, ?, ?, ? || (? + i) || ?, NULL, ? FROM n",
            (events - 1, start, account_id, EVENT, head, first_k, tail, created))
        con.execute("CREATE TEMP TABLE hooks (id INTEGER)")
        con.executemany("INSERT INTO hooks VALUES (?)", [(w,) for w in webhook_ids])
        con.execute(
            "INSERT INTO delivery (event_id, webhook_id, order_key, seq, state, attempts, "
            "next_at, created_at, delivered_at) "
            "SELECT e.id, h.id, NULL, e.id, ?, ?, ?, ?, ? FROM event AS e, hooks AS h "
            "WHERE e.id >= ? ORDER BY e.id, h.id",
            (state, 1 if state == 2 else 0, created, created, delivered_at, start))
        con.execute("DROP TABLE hooks")
        con.commit()
        if rebuild:
            for (sql,) in indexes:
                con.execute(sql)
            con.commit()
    finally:
        con.close()


def alternate(n: int, ours_job: dict, bare_job: dict) -> tuple[dict, dict]:
    """Run both loads one after the other, soapservice first in even rounds and the
    bare baseline first in odd ones (load from the neighbours drifts)."""
    if n % 2:
        base = run_json(["bench.loadgen"], bare_job)
        return run_json(["bench.loadgen"], ours_job), base
    ours = run_json(["bench.loadgen"], ours_job)
    return ours, run_json(["bench.loadgen"], bare_job)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values):
    return statistics.median(values) if values else float("nan")


# -- scenarios --------------------------------------------------------------------------
class Bench:
    def __init__(self, sizes: Sizes, workdir: Path):
        self.sizes, self.work = sizes, workdir
        self.receiver = Receiver()
        self.results: dict = {}
        self.rounds: dict = {}
        self.baselines: dict = {}

    def close(self):
        self.receiver.close()

    def path(self, name: str) -> Path:
        return self.work / f"{name}.db"

    def copy(self, template: Path, name: str) -> Path:
        target = self.path(name)
        for suffix in ("", "-wal", "-shm"):
            Path(str(target) + suffix).unlink(missing_ok=True)
        shutil.copyfile(template, target)
        return target

    def hook_urls(self, count: int, prefix: str = "h") -> list[str]:
        return [f"{self.receiver.url}/{prefix}/{i}" for i in range(count)]

    # delivery + backlog ------------------------------------------------------------
    def delivery(self):
        s = self.sizes
        events = s.deliveries // s.webhooks
        total = events * s.webhooks
        concurrency = min(256, s.webhooks * 8)  # soapservice's defaults: 256 and 8 each
        empty = self.path("delivery-template")
        ids = new_store(empty, self.hook_urls(s.webhooks))
        seed_deliveries(empty, ids, events, state=0)
        log(f"delivery: seeding the backlog store ({s.old_delivered} delivered, "
            f"{s.old_buffered} buffered rows)")
        backlog = self.copy(empty, "backlog-template")
        self._seed_backlog(backlog, ids)
        timeout = max(120.0, total / 50)
        bare_rates, empty_rates, backlog_rates = [], [], []
        for n in range(s.rounds):
            self.receiver.reset()
            run_json(["bench.bare", "agent", str(self.receiver.port), str(total),
                      str(concurrency), BODY], timeout=timeout)
            bare_rates.append(self.receiver.drain_rate(total, timeout))
            for template, rates in ((empty, empty_rates), (backlog, backlog_rates)):
                self.receiver.reset()
                server = Serve(self.copy(template, "delivery"))
                try:
                    rates.append(self.receiver.drain_rate(total, timeout))
                finally:
                    server.stop()
            log(f"delivery round {n + 1}: bare {bare_rates[-1]:.0f}/s, soapservice "
                f"{empty_rates[-1]:.0f}/s, with backlog {backlog_rates[-1]:.0f}/s")
        self.rounds.update(delivery_bare_per_s=bare_rates, delivery_per_s=empty_rates,
                           delivery_backlog_per_s=backlog_rates)
        self.results.update(
            delivery_ratio=median([a / b for a, b in zip(empty_rates, bare_rates, strict=True)]),
            backlog_ratio=median([a / b for a, b in zip(backlog_rates, empty_rates, strict=True)]),
            delivery_per_s=median(empty_rates), delivery_bare_per_s=median(bare_rates),
            delivery_backlog_per_s=median(backlog_rates))
        self.baselines["delivery"] = (
            f"python -m bench.bare agent: one Twisted Agent with a persistent "
            f"HTTPConnectionPool (maxPersistentPerHost={concurrency}), {concurrency} "
            f"requests in flight, POSTing {total} bodies of the same JSON with the same "
            f"header names to the same receiver; soapservice drains {events} events x "
            f"{s.webhooks} webhooks seeded as due rows before it starts (its concurrency: "
            f"{s.webhooks} webhooks x 8 = {concurrency}). Rate = receiver's count / "
            "(last arrival - first arrival).")
        self.baselines["backlog"] = (
            f"the same drain with {s.old_delivered} delivered rows (a day old) and "
            f"{s.old_buffered} buffered rows (5 inactive webhooks) already in the store, "
            "vs the empty store, same round.")

    def _seed_backlog(self, path: Path, hook_ids: list[int]):
        s = self.sizes
        seed_deliveries(path, hook_ids, max(1, s.old_delivered // len(hook_ids)), state=2,
                        age_sec=86400, first_k=10**8)
        con = sqlite3.connect(path)
        try:
            account_id = con.execute("SELECT id FROM account").fetchone()[0]
            inactive = []
            for i in range(5):
                cur = con.execute(
                    "INSERT INTO webhook (account_id, app, event, url, secret, active, "
                    "created_at, deactivated_at, deactivations, failure_count, "
                    "dropped_events) VALUES (?, 'bench', ?, ?, 'whsec_x', 0, ?, ?, 1, 8, 0)",
                    (account_id, EVENT, f"{self.receiver.url}/off/{i}", time.time(),
                     time.time() - 3600))
                inactive.append(cur.lastrowid)
            con.commit()
        finally:
            con.close()
        seed_deliveries(path, inactive, max(1, s.old_buffered // 5), state=1,
                        age_sec=1800, first_k=2 * 10**8)

    # soap --------------------------------------------------------------------------
    def soap(self):
        s = self.sizes
        db = self.path("soap")
        new_store(db, self.hook_urls(5))
        server = Serve(db, delivery=False)
        bare, bare_port = spawn_with_port("bench.bare", "soap")
        ours_rates, bare_rates = [], []
        try:
            server.soap("GetWebHooks")  # fills the credential cache, as any client would
            job = {"mode": "closed", "path": "/soap", "concurrency": s.soap_clients,
                   "seconds": s.load_seconds, "warmup": 0.5,
                   "headers": {"Content-Type": "text/xml; charset=utf-8",
                               "SOAPAction": '""'}}
            ours_job = dict(job, port=server.port, body=soap_envelope("GetWebHooks", ""))
            from bench.bare import SOAP_NOOP
            bare_job = dict(job, port=bare_port, body=SOAP_NOOP.format(password=PASSWORD))
            for n in range(s.load_rounds):
                ours, base = alternate(n, ours_job, bare_job)
                ours_rates.append(ours["rate"])
                bare_rates.append(base["rate"])
                log(f"soap round {n + 1}: soapservice {ours['rate']:.0f}/s "
                    f"{ours['statuses']}, bare {base['rate']:.0f}/s {base['statuses']}")
        finally:
            server.stop()
            stop(bare)
        self.rounds.update(soap_per_s=ours_rates, soap_bare_per_s=bare_rates)
        self.results.update(
            soap_ratio=median([a / b for a, b in zip(ours_rates, bare_rates, strict=True)]),
            soap_per_s=median(ours_rates), soap_bare_per_s=median(bare_rates))
        self.baselines["soap"] = (
            "python -m bench.bare soap: a Spyne Application (Soap11, validator=None) with "
            "one no-op operation Noop(username, password) -> 'OK', in a WsgiApplication "
            "behind twisted.web's WSGIResource with a 2..16 thread pool (as soapservice "
            f"serves /soap). Both driven by bench.loadgen: {s.soap_clients} keep-alive "
            f"clients posting a ready-made envelope for {s.load_seconds} s per round, "
            f"{s.load_rounds} rounds, alternating which goes first; "
            "soapservice answers GetWebHooks for an account with 5 webhooks (credential "
            "cache warm).")

    # ingest ------------------------------------------------------------------------
    def ingest(self):
        s = self.sizes
        db = self.path("ingest")
        new_store(db, self.hook_urls(1))
        server = Serve(db, delivery=False)
        bare, bare_port = spawn_with_port("bench.bare", "ingest")
        ours_rates, bare_rates = [], []
        try:
            job = {"mode": "closed", "path": "/events", "concurrency": s.ingest_clients,
                   "seconds": s.load_seconds, "warmup": 0.5,
                   "headers": {"Content-Type": "application/json",
                               "Authorization": f"Bearer {TOKEN}"},
                   "body": json.dumps({"account": "alice", "event": EVENT,
                                       "data": json.loads(BODY.replace("{k}", "0"))}
                                      ).replace('"k": 0', '"k": {k}')}
            for n in range(s.load_rounds):
                ours, base = alternate(n, dict(job, port=server.port),
                                       dict(job, port=bare_port))
                ours_rates.append(ours["rate"])
                bare_rates.append(base["rate"])
                log(f"ingest round {n + 1}: soapservice {ours['rate']:.0f}/s "
                    f"{ours['statuses']}, bare {base['rate']:.0f}/s {base['statuses']}")
        finally:
            server.stop()
            stop(bare)
        self.rounds.update(ingest_per_s=ours_rates, ingest_bare_per_s=bare_rates)
        self.results.update(
            ingest_ratio=median([a / b for a, b in zip(ours_rates, bare_rates, strict=True)]),
            ingest_per_s=median(ours_rates), ingest_bare_per_s=median(bare_rates))
        self.baselines["ingest"] = (
            "python -m bench.bare ingest: a twisted.web resource that reads and parses the "
            "JSON body and answers 202, storing nothing. Both driven by bench.loadgen: "
            f"{s.ingest_clients} keep-alive clients for {s.load_seconds} s per round, "
            f"{s.load_rounds} rounds, alternating which goes first; "
            "soapservice (--no-delivery) commits each event and its one delivery row "
            "before answering 202.")

    # latency -----------------------------------------------------------------------
    def _posted_latencies(self, returned: list[float], paths: set[str] | None = None,
                          skip: int = 0) -> list[float]:
        """ms from each POST /events returning to the receiver holding the delivery
        (0 when it arrived before the answer did); the first ``skip`` events warm up."""
        latencies = []
        for at, path, k in self.receiver.arrivals():
            if (k is not None and skip <= k < len(returned)
                    and (paths is None or path in paths)):
                latencies.append(max(0.0, (at - returned[k]) * 1000))
        return latencies

    def _sequence(self, server: Serve, count: int, interval: float = 0.0,
                  wait: bool = False) -> list[float]:
        job = {"mode": "sequence", "port": server.port, "path": "/events",
               "count": count, "interval": interval,
               "wait_receiver": self.receiver.port if wait else None,
               "headers": {"Content-Type": "application/json",
                           "Authorization": f"Bearer {TOKEN}"},
               "body": f'{{"account":"alice","event":"{EVENT}","data":{BODY}}}'}
        result = run_json(["bench.loadgen"], job)
        if set(result["statuses"]) != {"202"}:
            raise RuntimeError(f"POST /events answered {result['statuses']}")
        return result["returned"]

    def latency(self):
        s = self.sizes
        db = self.path("latency")
        new_store(db, self.hook_urls(1))
        server = Serve(db)
        try:
            self.receiver.reset()
            self._sequence(server, 5, wait=True)  # warm: connection pool, caches
            self.receiver.reset()
            returned = self._sequence(server, s.latency_events, wait=True)
            latencies = self._posted_latencies(returned)
        finally:
            server.stop()
        self.results.update(latency_p50_ms=percentile(latencies, 50),
                            latency_p99_ms=percentile(latencies, 99),
                            latency_samples=len(latencies))
        self.baselines["latency"] = (
            f"{s.latency_events} events posted one at a time (the next after the receiver "
            "held the previous one), one active webhook; latency = receiver's arrival time "
            "- the time the 202 reached the client (0 if the delivery came first).")
        log(f"latency: p50 {self.results['latency_p50_ms']:.1f} ms, "
            f"p99 {self.results['latency_p99_ms']:.1f} ms")

    # isolation ---------------------------------------------------------------------
    def isolation(self):
        s = self.sizes
        half = s.webhooks // 2
        healthy = self.hook_urls(half)
        healthy_paths = {u.split(str(self.receiver.port), 1)[1] for u in healthy}
        mixed_rates, mixed_p99, healthy_p99 = [], [], []
        for n in range(s.rounds):
            p99s = {}
            for kind, others in (("healthy", self.hook_urls(s.webhooks - half, "g")),
                                 ("mixed", self.hook_urls(s.webhooks - half, "hang"))):
                db = self.path(f"isolation-{kind}")
                for suffix in ("", "-wal", "-shm"):
                    Path(str(db) + suffix).unlink(missing_ok=True)
                new_store(db, healthy + others)
                server = Serve(db)
                try:
                    self.receiver.reset()
                    # Warm-up events first: connections opened, and the hanging
                    # webhooks already holding their slots (the steady state).
                    warm = max(1, s.isolation_events // 6)
                    returned = self._sequence(server, warm + s.isolation_events,
                                              interval=s.isolation_interval)
                    expected = (warm + s.isolation_events) * (half if kind == "mixed"
                                                              else s.webhooks)
                    self.receiver.wait_count(expected, 120)
                    latencies = self._posted_latencies(returned, healthy_paths, skip=warm)
                    p99s[kind] = percentile(latencies, 99)
                finally:
                    server.stop(grace=2.0)  # attempts to /hang/ would hold it 10 s
            healthy_p99.append(p99s["healthy"])
            mixed_p99.append(p99s["mixed"])
            mixed_rates.append(p99s["mixed"] / max(p99s["healthy"], 1e-3))
            log(f"isolation round {n + 1}: p99 healthy-only {p99s['healthy']:.1f} ms, "
                f"with half hanging {p99s['mixed']:.1f} ms")
        self.rounds.update(isolation_p99_all_healthy_ms=healthy_p99,
                           isolation_p99_half_hanging_ms=mixed_p99)
        self.results.update(isolation_ratio=median(mixed_rates),
                            isolation_p99_all_healthy_ms=median(healthy_p99),
                            isolation_p99_half_hanging_ms=median(mixed_p99))
        self.baselines["isolation"] = (
            f"{s.webhooks} webhooks on one event; {s.isolation_events} events (after "
            f"{max(1, s.isolation_events // 6)} warm-up events) posted one "
            f"every {s.isolation_interval * 1000:.0f} ms; p99 over the deliveries to the "
            f"{half} healthy webhooks (POST returned -> receiver), with the other {half} "
            "pointing at a receiver path that accepts and never answers, vs all healthy.")

    # replay ------------------------------------------------------------------------
    def replay(self):
        s = self.sizes
        db = self.path("replay")
        urls = self.hook_urls(s.replay_webhooks, "r")
        ids = new_store(db, urls, inactive=urls)
        seed_deliveries(db, ids, s.replay_events // s.replay_webhooks, state=1,
                        age_sec=600)
        total = (s.replay_events // s.replay_webhooks) * s.replay_webhooks
        server = Serve(db)
        try:
            server.soap("GetWebHooks")
            time.sleep(0.5)  # settle: the figure is growth over the idle server
            before = server.hwm_mb()
            self.receiver.reset()
            started = time.monotonic()
            for hook_id in ids:
                answer = server.soap("ActivateWebHook", webhookId=hook_id, replayEvents=1)
                if "<replayedEvents>" not in answer and "replayedEvents" not in answer:
                    raise RuntimeError(f"ActivateWebHook answered {answer[:500]}")
            rate = self.receiver.drain_rate(total, max(300.0, total / 20))
            elapsed = time.monotonic() - started
            after = server.hwm_mb()
        finally:
            server.stop()
        self.results.update(replay_rss_mb=after - before, replay_rss_before_mb=before,
                            replay_per_s=rate, replay_seconds=elapsed)
        self.baselines["replay"] = (
            f"{total} buffered events over {s.replay_webhooks} inactive webhooks, seeded "
            "in SQL; ActivateWebHook(replayEvents=1) on each; growth of the server's VmHWM "
            "(/proc/PID/status) from idle until the receiver held every replayed event.")
        log(f"replay: {total} events in {elapsed:.1f} s, VmHWM {before:.0f} -> "
            f"{after:.0f} MB")


# -- report -----------------------------------------------------------------------------
    # several workers on PostgreSQL -----------------------------------------------
    def workers(self):
        """Delivery throughput of 1, 2 and 3 ``soapservice worker`` processes sharing one
        PostgreSQL store (README: Running several processes). Skipped, and said so,
        when no PostgreSQL answers at SOAPSERVICE_BENCH_DATABASE_URL."""
        import psycopg2

        base = os.environ.get("SOAPSERVICE_BENCH_DATABASE_URL",
                              "postgresql://postgres@127.0.0.1:5432/postgres")
        try:
            admin = psycopg2.connect(base, connect_timeout=5)
        except psycopg2.Error as exc:
            log(f"workers: skipped, no PostgreSQL at {base} ({exc})")
            self.baselines["workers"] = f"skipped: no PostgreSQL at {base}"
            return
        admin.autocommit = True
        name = f"soapservice_bench_{os.getpid()}"
        url = base.rsplit("/", 1)[0] + "/" + name
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        try:
            self._workers_on(url)
        finally:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()

    def _workers_on(self, url: str):
        import psycopg2

        from soapservice import auth, store
        from soapservice.api import new_secret
        from soapservice.ingest import emit
        from soapservice.store import accounts, webhooks

        s = self.sizes
        events = max(1, s.worker_deliveries // s.webhooks)
        total = events * s.webhooks
        store.open_store(url)
        try:
            account = accounts.add("alice", auth.hash_password(PASSWORD))
            for hook_url in self.hook_urls(s.webhooks, "w"):
                webhooks.create(account.id, "bench", EVENT, hook_url, new_secret(), 1000)
            for k in range(events):
                emit("alice", EVENT, json.loads(BODY.replace("{k}", str(k))),
                     window_sec=86400)
        finally:
            store.close_store()
        env = dict(os.environ, SOAPSERVICE_DATABASE_URL=url,
                   SOAPSERVICE_ALLOW_PRIVATE_TARGETS="1", PYTHONUNBUFFERED="1")
        timeout = max(120.0, total / 20)
        rates: dict[int, list[float]] = {1: [], 2: [], 3: []}
        for n in range(s.rounds):
            for count in rates:
                con = psycopg2.connect(url)
                with con, con.cursor() as cur:  # every delivery due again, no lease
                    cur.execute("UPDATE delivery SET state = 0, attempts = 0, next_at = %s, "
                                "lease_owner = NULL, lease_token = NULL, lease_until = NULL, "
                                "delivered_at = NULL", (time.time(),))
                con.close()
                self.receiver.reset()
                procs = [subprocess.Popen([sys.executable, "-m", "soapservice", "worker"],
                                          env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, cwd=HERE.parent)
                         for _ in range(count)]
                try:
                    rates[count].append(self.receiver.drain_rate(total, timeout))
                finally:
                    for proc in procs:
                        stop(proc)
            log(f"workers round {n + 1}: " + ", ".join(
                f"{c}: {r[-1]:.0f}/s" for c, r in rates.items()))
        self.rounds.update({f"workers_{c}_per_s": r for c, r in rates.items()})
        for count, values in rates.items():
            self.results[f"workers_{count}_per_s"] = median(values)
            if count > 1:
                self.results[f"workers_{count}_ratio"] = median(
                    [a / b for a, b in zip(values, rates[1], strict=True)])
        self.baselines["workers"] = (
            f"{events} events x {s.webhooks} webhooks = {total} deliveries in a fresh "
            "PostgreSQL database, drained by 1, 2 and 3 `soapservice worker` processes "
            "(each round resets every delivery to due); ratio = rate with N workers / rate "
            "with 1, same round. On a 2-core machine the workers share the CPUs with "
            "PostgreSQL and the receiver, so more workers cannot add throughput there.")


def verdict(key: str, value) -> str:
    if key not in TARGETS or not isinstance(value, int | float):
        return ""
    op, target = TARGETS[key]
    ok = value >= target if op == ">=" else value <= target
    return f"{op} {target:g}  {'ok' if ok else 'MISSED'}"


def table(results: dict) -> str:
    rows = [("key", "value", "target")]
    for key, value in results.items():
        if isinstance(value, int | float):
            rows.append((key, f"{value:.3f}" if isinstance(value, float) else str(value),
                         verdict(key, value)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--rounds", type=int, help="rounds per ratio (median kept)")
    parser.add_argument("--deliveries", type=int, help="deliveries per drain")
    parser.add_argument("--replay-events", type=int)
    parser.add_argument("--old-delivered", type=int)
    parser.add_argument("--output", default=str(HERE / "results.json"))
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    for name in ("rounds", "deliveries", "replay_events", "old_delivered"):
        if getattr(args, name) is not None:
            sizes = replace(sizes, **{name: getattr(args, name)})
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    started = time.monotonic()
    durations = {}
    with tempfile.TemporaryDirectory(prefix="soapservice-bench-") as tmp:
        bench = Bench(sizes, Path(tmp))
        try:
            for name in SCENARIOS:
                if name in chosen:
                    log(f"scenario {name}")
                    begun = time.monotonic()
                    getattr(bench, name)()
                    durations[name] = round(time.monotonic() - begun, 1)
        finally:
            bench.close()
    results = dict(bench.results)
    report = {
        "results": results,
        "targets": {k: f"{op} {v:g}" for k, (op, v) in TARGETS.items()},
        "rounds": bench.rounds,
        "baselines": bench.baselines,
        "sizes": asdict(sizes),
        "quick": args.quick,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "implementation": platform.python_implementation(),
                    "platform": platform.platform()},
        "seconds": round(time.monotonic() - started, 1),
        "scenario_seconds": durations,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    print(f"\n{os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{report['seconds']} s; written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
