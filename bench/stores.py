"""Stores for the scenarios, built before the server starts (fast, in this process).

Two ways to fill one: :func:`emit_events` goes through the store's own ingest
(``outbox.store_events``, the statement ``POST /events`` runs, in big group commits:
~1,000,000 deliveries in 20 s), so the rows are whatever the scheduler of the day
writes (heads, states) and survive a reshaped schema; :func:`seed_deliveries` writes
delivered or buffered rows straight in SQLite SQL for the old-rows backlogs of the
delivery and replay scenarios (rows no claim looks at).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from bench.processes import EVENT, PASSWORD

BODY = '{"k":{k},"email":"someone@example.com","list":"newsletter","opt":"in"}'
SUBSCRIBER_BODY = ('{"k":{k},"subscriber_id":"{s}","email":"someone@example.com",'
                   '"list":"newsletter","opt":"in"}')


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def copy(template: Path, target: Path) -> Path:
    """A fresh copy of a (closed) SQLite store, on disk before it is used: the copy's
    (and any seeding's) dirty pages are written back first, so that the kernel's
    write-back of a 160 MB file does not stall the measured run's commits (a probe:
    300 MB written beside a 50 events/s load held one POST /events 233 ms)."""
    remove(target)
    shutil.copyfile(template, target)
    os.sync()
    return target


def file_mb(path: Path) -> float:
    """The store's size on disk with its WAL, in MB."""
    total = 0
    for suffix in ("", "-wal"):
        part = Path(str(path) + suffix)
        if part.exists():
            total += part.stat().st_size
    return total / 1e6


def store_api(name: str):
    """A function (or class) of the store by name, wherever the store of the day keeps
    it (``store.events``, ``store.claims``, ``store.outcomes`` or the older
    ``store.outbox``): the benchmarks call what the service calls."""
    import importlib
    for room in ("events", "claims", "outcomes", "outbox"):
        try:
            module = importlib.import_module(f"soapservice.store.{room}")
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise LookupError(f"the store has no {name}")


_HASH: dict[str, str] = {}


def password_hash() -> str:
    """One slow hash of the bench password, reused for every account."""
    if "hash" not in _HASH:
        from soapservice import auth
        _HASH["hash"] = auth.hash_password(PASSWORD)
    return _HASH["hash"]


class Store:
    """The store at ``url`` opened in this process (with its schema) for seeding."""

    def __init__(self, url: str):
        from soapservice import store
        self.url = url
        store.open_store(url)

    def close(self) -> None:
        from soapservice import store
        from soapservice.models import db
        store.close_store()
        if db.obj is not None:
            db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def account(self, name: str) -> int:
        from soapservice.store import accounts
        found = accounts.find(name)
        return found.id if found else accounts.add(name, password_hash()).id

    def webhooks(self, account: str, urls: Sequence[str]) -> list[int]:
        """A webhook per URL (for the bench event) under ``account``; their ids."""
        from soapservice.api import new_secret
        from soapservice.models import db
        from soapservice.store import webhooks
        account_id = self.account(account)
        with db.atomic():
            return [webhooks.create(account_id, "bench", EVENT, url, new_secret(),
                                    100_000).id for url in urls]

    def deactivate(self, urls: Sequence[str], ago_sec: float = 3600) -> None:
        from soapservice.models import Webhook
        Webhook.update(active=False, deactivated_at=time.time() - ago_sec,
                       deactivations=1, failure_count=8).where(
            Webhook.url.in_(list(urls))).execute()

    def emit_events(self, account: str, count: int, *, subscribers: int = 0,
                    at: float | None = None, first_k: int = 0,
                    batch: int = 2000) -> None:
        """``count`` events through the store's ingest (a delivery per webhook of the
        account), created at ``at`` (default now); with ``subscribers``, event k is
        about subscriber ``s{k % subscribers}`` (ordered per subscriber and URL)."""
        store_events = store_api("store_events")
        now = time.time() if at is None else at
        for start in range(first_k, first_k + count, batch):
            events = []
            for k in range(start, min(first_k + count, start + batch)):
                if subscribers:
                    subscriber = f"s{k % subscribers}"
                    body = SUBSCRIBER_BODY.replace("{k}", str(k)).replace("{s}", subscriber)
                else:
                    subscriber, body = None, BODY.replace("{k}", str(k))
                events.append((account, EVENT, body, subscriber))
            store_events(events, now, 5 * 86400.0)


def new_store(path: Path, urls: list[str], inactive: Sequence[str] = ()) -> list[int]:
    """An account alice with a webhook per URL (``inactive`` ones deactivated an hour
    ago) in a fresh SQLite file; returns the webhook ids in order."""
    remove(path)
    with Store(sqlite_url(path)) as store:
        ids = store.webhooks("alice", urls)
        if inactive:
            store.deactivate(inactive)
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


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")
