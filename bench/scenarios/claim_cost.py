"""claim_cost: one claim, timed through the store API (``outbox.claim_due``, as the
delivery loop calls it, on this process's thread), at 1,000,000 pending rows in each
shape of the isolation issue, on SQLite and on PostgreSQL:

- ``healthy``: 1 M due rows (100,000 events over 10,000 subscribers × 10 webhooks);
  the claim hands out its full capacity.
- ``failing``: the same rows after the 10 webhooks' claims failed (HTTP 500 outcomes
  recorded through the store, several rounds): in probing nothing new may go, so a
  good claim finds that out without reading the queue.
- ``blocked``: 8 of the 10 webhooks at their per-webhook limit (in flight); the claim
  must still find the other two's rows.
- ``wide``: 10,000 webhooks (1,000 accounts × 10), nothing due (SQLite only, the
  webhooks10k store when that scenario ran first).

After each claim its leases are given back (``outbox.release``). Figures: the median
and the largest of ``claim_repeats`` claims, in ms.

Where the scheduler's own store-level measurement is there (``bench/claim_cost.py``:
its shapes ``failing``, ``hanging``, ``restarted``, ``webhooks``, each filled in SQL),
this scenario runs that instead, on SQLite and PostgreSQL, and records its figures
under the same names.
"""

from __future__ import annotations

import statistics
import time

from bench import postgres
from bench.processes import log
from bench.scenarios.backlog import templates
from bench.stores import Store, copy, sqlite_url, store_api

SHAPES = ("healthy", "failing", "blocked", "wide", "hanging", "restarted", "webhooks")
TARGETS = {f"claim_{db}_{shape}_ms": ("<=", 5.0) for db in ("sqlite", "pg")
           for shape in SHAPES}
FIGURES = {key: f"median claim at 1 M pending, {key.split('_')[2]} "
                f"({'SQLite' if '_sqlite_' in key else 'PostgreSQL'}, ms)"
           for key in TARGETS}
FIGURES["claim_sqlite_wide_ms"] = "median claim, 10,000 idle webhooks (SQLite, ms)"
CAPACITY, PER_WEBHOOK, LEASE_SEC = 256, 8, 60.0


def run(bench):
    """Per store kind: the scheduler's measurement where it is there and works, else
    this module's own; the baseline says which measured what."""
    import importlib.util
    results, rounds, said = {}, {}, []
    theirs = importlib.util.find_spec("bench.claim_cost") is not None
    why = postgres.available()
    for kind in ("sqlite", "pg"):
        if kind == "pg" and why:
            log(f"claim_cost: PostgreSQL part skipped, {why}")
            said.append(f"PostgreSQL: {why}")
            continue
        if theirs:
            try:
                said.append(_scheduler_measure(bench, kind, results))
                continue
            except Exception as exc:  # noqa: BLE001 (then measured here, and said so)
                log(f"claim_cost: bench/claim_cost.py failed on {kind} ({exc!r}); "
                    "measuring here")
                said.append(f"bench/claim_cost.py failed on {kind} ({exc!r})")
        said.append(_own(bench, kind, results, rounds))
    bench.record(results, rounds=rounds, baseline=" ".join(said))


def _own(bench, kind: str, results: dict, rounds: dict) -> str:
    s = bench.sizes
    _, full = templates(bench)
    if kind == "sqlite":
        with Store(sqlite_url(copy(full, bench.path("claim")))):
            _shapes("sqlite", s.claim_repeats, results, rounds)
        wide = bench.path("webhooks10k-wide")
        if wide.exists():
            with Store(sqlite_url(copy(wide, bench.path("claim-wide")))):
                _time("sqlite", "wide", s.claim_repeats, {}, results, rounds)
    else:
        url = postgres.create("claim")
        try:
            started = time.monotonic()
            with Store(url):  # the schema
                pass
            postgres.copy_from_sqlite(full, url)
            log(f"claim_cost: copied the {s.claim_rows} rows to PostgreSQL in "
                f"{time.monotonic() - started:.0f} s")
            with Store(url):
                _shapes("pg", s.claim_repeats, results, rounds)
        finally:
            postgres.drop(url)
    return (
        f"{kind}: {s.claim_rows} due rows ({s.claim_rows // s.backlog_webhooks} events over "
        f"{s.backlog_subscribers} subscribers x {s.backlog_webhooks} webhooks) seeded "
        "through the store's ingest (on SQLite; the same rows COPYed to PostgreSQL); "
        "outbox.claim_due(capacity=256, per_webhook=8) "
        f"called {s.claim_repeats} times per shape from this process, leases released "
        "after each; median and largest in ms. Shapes: healthy (hands out what the limits "
        "allow), failing (after claims of the 10 webhooks failed with HTTP 500), blocked "
        "(8 of 10 webhooks at their limit), wide (10,000 idle webhooks).")


def _shapes(kind: str, repeats: int, results: dict, rounds: dict) -> None:
    from soapservice.models import Account, Webhook
    bulk = [h.id for h in Webhook.select(Webhook.id).join(Account).where(
        Account.username == "bulk").order_by(Webhook.id)]
    _time(kind, "healthy", repeats, {}, results, rounds)
    _time(kind, "blocked", repeats, {hook: PER_WEBHOOK for hook in bulk[:8]}, results,
          rounds)
    _fail_them(kind)
    _time(kind, "failing", repeats, {}, results, rounds)


def _fail_them(kind: str, rounds: int = 6) -> None:
    """Make the webhooks failing the way a receiver does: claims whose every outcome
    is an HTTP 500, recorded through the store (whatever rule then puts a webhook into
    probing applies)."""
    claim_due, record_outcomes = store_api("claim_due"), store_api("record_outcomes")
    outcome = store_api("Outcome")
    from soapservice.config import DEFAULT_RETRY_SCHEDULE_SEC
    for _ in range(rounds):
        now = time.time()
        claims = claim_due(f"bench-fail-{kind}", now, LEASE_SEC, CAPACITY, {}, PER_WEBHOOK)
        if not claims:
            break
        record_outcomes([outcome(c.delivery_id, c.token, c.webhook_id, 500, None, 1.0)
                         for c in claims], time.time(), DEFAULT_RETRY_SCHEDULE_SEC,
                        lambda: 0.5)


def _time(kind: str, shape: str, repeats: int, in_flight: dict, results: dict,
          rounds: dict) -> None:
    claim_due, release = store_api("claim_due"), store_api("release")
    times, claimed = [], []
    owner = f"bench-claim-{kind}"
    for _ in range(repeats):
        now = time.time()
        started = time.perf_counter()
        claims = claim_due(owner, now, LEASE_SEC, CAPACITY, in_flight, PER_WEBHOOK)
        times.append((time.perf_counter() - started) * 1000)
        claimed.append(len(claims))
        release(owner, time.time())
    key = f"claim_{kind}_{shape}"
    results[f"{key}_ms"] = statistics.median(times)
    results[f"{key}_max_ms"] = max(times)
    results[f"{key}_claimed"] = statistics.median(claimed)
    rounds[f"{key}_ms"] = times
    log(f"claim {kind} {shape}: median {statistics.median(times):.2f} ms, max "
        f"{max(times):.2f} ms, {statistics.median(claimed):.0f} claimed")


def _scheduler_measure(bench, kind: str, results: dict) -> str:
    """The scheduler's bench/claim_cost.py, every shape, on one store kind."""
    from bench import claim_cost
    s = bench.sizes
    url = None if kind == "sqlite" else postgres.server_url()
    found = {}
    for shape in ("failing", "hanging", "restarted", "webhooks"):
        figure = claim_cost.measure(s.claim_rows, shape, url, claims=s.claim_repeats)
        key = f"claim_{kind}_{shape}"
        found[f"{key}_ms"] = figure["median_ms"]
        found[f"{key}_max_ms"] = figure["max_ms"]
        found[f"{key}_claimed"] = figure["claimed"]
        log(f"claim {kind} {shape}: median {figure['median_ms']} ms, max "
            f"{figure['max_ms']} ms, {figure['claimed']} claimed")
    results.update(found)
    return (f"{kind}: bench/claim_cost.py (the scheduler's store-level measurement) at "
            f"{s.claim_rows} rows per shape, {s.claim_repeats} claims each: "
            + (claim_cost.__doc__ or "").split("\n\n", 2)[1].replace("\n", " "))
