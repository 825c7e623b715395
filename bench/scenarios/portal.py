"""portal: the customer portal's reads at 100 webhooks and 100,000 deliveries of one
webhook, through the store functions the pages call, on SQLite and PostgreSQL.

The account has ``portal_webhooks`` webhooks; the first holds ``portal_deliveries``
deliveries spread over the last 7 days (most delivered at the first attempt, every
tenth after a failed one, every fiftieth still failing after 3 attempts), the others
``portal_other_deliveries`` each. The attempt log holds every attempt; the hourly
rollup is filled from it by the schema step's own backfill (what the outcome batch
would have added up). Figures (medians of ``portal_repeats`` calls, ms):

- ``overview``: store.portal.overview (the overview page: 100 webhooks, health, counts,
  24 hourly buckets each);
- ``chart``: store.portal.chart of the big webhook (24 h and 7 days, p50/p95);
- ``chart_raw``: the same hourly counts straight from the attempt log (GROUP BY hour
  over the week): what a chart would cost without the rollup, for comparison;
- ``log``, ``log_failed``, ``log_held``, ``log_deep``: store.deliveries.for_webhook
  (GetWebHookDeliveries): the newest 50, the newest 50 failed, the held ones (none: the
  filter finds nothing, the worst case of a scan), and 50 delivered ones half-way down
  (beforeId);
- ``rollup_batch``: store.portal.count_attempts for a batch of 256 attempts over 16
  webhooks, in its own transaction (the cost the outcome batch pays for the charts);
- ``..._cpu_ms`` (SQLite: overview, chart, log): this process's CPU per call, which a
  busy machine inflates less than the elapsed time.
"""

from __future__ import annotations

import sqlite3
import statistics
import time

from bench import postgres
from bench.processes import log
from bench.stores import Store, remove, sqlite_url

QUERIES = ("overview", "chart", "chart_raw", "log", "log_failed", "log_held", "log_deep",
           "rollup_batch")
_WHAT = {
    "overview": "portal overview, 100 webhooks",
    "chart": "one webhook's chart (24 h + 7 days), 100,000 deliveries",
    "chart_raw": "the same counts from the attempt log (no rollup)",
    "log": "delivery log page, newest 50",
    "log_failed": "delivery log page, state=failed",
    "log_held": "delivery log page, state=held (none there)",
    "log_deep": "delivery log page, delivered, half-way down",
    "rollup_batch": "rollup update per outcome batch of 256",
}
TARGETS = {f"portal_{db}_{q}_ms": ("<=", 50.0) for db in ("sqlite", "pg")
           for q in QUERIES if q != "chart_raw"}
FIGURES = {f"portal_{db}_{q}_ms": f"{_WHAT[q]} ({'SQLite' if db == 'sqlite' else 'PostgreSQL'}, "
                                  "median ms)"
           for db in ("sqlite", "pg") for q in QUERIES}
FIGURES.update({f"portal_sqlite_{q}_cpu_ms": f"{_WHAT[q]} (SQLite, CPU ms per call)"
                for q in ("overview", "chart", "log")})
WEEK = 7 * 86400.0


def run(bench):
    s = bench.sizes
    path = bench.path("portal")
    started = time.monotonic()
    account_id, big, middle = _seed(path, s.portal_webhooks, s.portal_deliveries,
                                    s.portal_other_deliveries)
    log(f"portal: seeded {s.portal_webhooks} webhooks, {s.portal_deliveries} + "
        f"{(s.portal_webhooks - 1) * s.portal_other_deliveries} deliveries in "
        f"{time.monotonic() - started:.0f} s")
    results, rounds, said = {}, {}, []
    with Store(sqlite_url(path)):
        _backfill()
        _measure("sqlite", account_id, big, middle, s.portal_repeats, results, rounds)
    why = postgres.available()
    if why:
        log(f"portal: PostgreSQL part skipped, {why}")
        said.append(f"PostgreSQL skipped: {why}.")
    else:
        url = postgres.create("portal")
        try:
            with Store(url):
                pass
            postgres.copy_from_sqlite(path, url)
            with Store(url):
                from soapservice.models import db
                db.execute_sql("ANALYZE")
                _measure("pg", account_id, big, middle, s.portal_repeats, results, rounds)
        finally:
            postgres.drop(url)
    for key, value in sorted(results.items()):
        log(f"portal: {key} = {value:.2f}")
    bench.record(results, rounds=rounds, baseline=(
        f"{s.portal_webhooks} webhooks of one account; the first with "
        f"{s.portal_deliveries} deliveries over 7 days (90 % delivered at once, 8 % after "
        f"a failed attempt, 2 % failing after 3), the others {s.portal_other_deliveries} "
        "each; every attempt in the attempt log, the rollup filled from it; store "
        f"functions called {s.portal_repeats} times each from this process, median ms "
        "(SQLite file; the same rows COPYed to PostgreSQL, ANALYZEd). " + " ".join(said)))


def _seed(path, webhooks: int, big_count: int, other_count: int) -> tuple[int, int, int]:
    """The store, its rows written straight in SQL (fast); (account, big webhook, the
    id of a delivery half-way down the big webhook's log)."""
    remove(path)
    with Store(sqlite_url(path)) as store:
        ids = store.webhooks("alice", [f"http://127.0.0.1:9/h/{i}" for i in range(webhooks)])
        account_id = store.account("alice")
    now = time.time()
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA synchronous=OFF")
        events, deliveries, attempts = [], [], []
        next_id = 1
        for webhook_id in ids:
            count = big_count if webhook_id == ids[0] else other_count
            for i in range(count):
                created = now - WEEK + WEEK * (i + 0.5) / count
                failing, retried = i % 50 == 0, i % 10 == 1
                tries = 3 if failing else 2 if retried else 1
                duration = 5.0 + (i * 37) % 400
                events.append((next_id, account_id, "optin_finalized",
                               f'{{"k":{next_id}}}', None, created))
                deliveries.append((next_id, next_id, webhook_id, None, next_id,
                                   0 if failing else 2, tries, created + 3600 * failing,
                                   created, None if failing else created + 1))
                for t in range(tries):
                    ok = not failing and t == tries - 1
                    attempts.append((next_id, webhook_id, created + t * 0.5, 200 if ok else 500,
                                     None if ok else "HTTP 500", duration,
                                     "ok" if ok else "error"))
                next_id += 1
        con.executemany("INSERT INTO event (id, account_id, name, body, subscriber, "
                        "created_at) VALUES (?, ?, ?, ?, ?, ?)", events)
        con.executemany("INSERT INTO delivery (id, event_id, webhook_id, order_key, seq, "
                        "state, attempts, next_at, created_at, delivered_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", deliveries)
        con.executemany("INSERT INTO attempt (delivery_id, webhook_id, at, status, error, "
                        "duration_ms, response_snippet) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        attempts)
        con.commit()
        con.execute("ANALYZE")
        con.commit()
    finally:
        con.close()
    return account_id, ids[0], big_count // 2


def _backfill() -> None:
    from soapservice.models import db
    from soapservice.store import portal
    with db.atomic():
        portal.backfill(time.time() - portal.KEEP_HOURS * portal.HOUR)


def _raw_chart(webhook_id: int, now: float):
    """The hourly counts of a week straight from the attempt log (the comparison)."""
    from peewee import SQL, fn

    from soapservice.models import Attempt
    hour = fn.FLOOR(Attempt.at / 3600) if _pg() else SQL("CAST(at / 3600 AS INTEGER)")
    ok = (Attempt.status >= 200) & (Attempt.status < 300)
    return list(Attempt.select(hour, ok, fn.COUNT(Attempt.id))
                .where((Attempt.webhook_id == webhook_id) & (Attempt.at >= now - WEEK))
                .group_by(hour, ok).tuples())


def _pg() -> bool:
    from soapservice.store import is_postgres
    return is_postgres()


def _measure(kind: str, account_id: int, big: int, middle: int, repeats: int,
             results: dict, rounds: dict) -> None:
    from soapservice.models import Delivery, db
    from soapservice.store import deliveries, portal
    now = time.time()
    ids = sorted(d.id for d in Delivery.select(Delivery.id).where(Delivery.webhook == big))
    before = ids[middle] if ids else None
    others = [h.id for h in portal.overview(account_id, now)][:16]
    batch = [(0, others[i % len(others)], now, 200 if i % 7 else 500, None, 5.0 + i, None)
             for i in range(256)]

    def rollup():
        with db.atomic():
            portal.count_attempts(batch)

    calls = {
        "overview": lambda: portal.overview(account_id, now),
        "chart": lambda: portal.chart(account_id, big, now),
        "chart_raw": lambda: _raw_chart(big, now),
        "log": lambda: deliveries.for_webhook(big, None, 50, None),
        "log_failed": lambda: deliveries.for_webhook(big, "failed", 50, None),
        "log_held": lambda: deliveries.for_webhook(big, "held", 50, None),
        "log_deep": lambda: deliveries.for_webhook(big, "delivered", 50, before),
        "rollup_batch": rollup,
    }
    checks = {"overview": lambda r: len(r) >= 1, "chart": lambda r: r is not None,
              "log": lambda r: len(r) == min(50, len(ids)),
              "log_failed": lambda r: len(r) >= 1}
    for name, call in calls.items():
        call()  # warm
        times = []
        cpu = time.process_time()
        for _ in range(repeats):
            begun = time.perf_counter()
            answer = call()
            times.append((time.perf_counter() - begun) * 1000)
        cpu = (time.process_time() - cpu) / repeats * 1000
        if kind == "sqlite" and f"portal_sqlite_{name}_cpu_ms" in FIGURES:
            results[f"portal_sqlite_{name}_cpu_ms"] = round(cpu, 3)
        if name in checks and not checks[name](answer):
            raise AssertionError(f"portal: {name} answered {answer!r}")
        key = f"portal_{kind}_{name}_ms"
        results[key] = round(statistics.median(times), 3)
        rounds[key] = [round(t, 3) for t in times]
