"""backlog: 1,000,000 due deliveries behind 10 webhooks whose receiver answers 500;
another account's fresh events (202 -> receiver, and POST /events itself) vs the same
server and load on the store without those rows (issue: claims, ingest and outcomes
must not wait behind the backlog)."""

from __future__ import annotations

import time

from bench.context import all_latencies, paced_events
from bench.processes import log
from bench.stores import Store, copy, percentile, ratio, remove, sqlite_url

TARGETS = {"backlog_p99_ratio": ("<=", 1.5), "backlog_ingest_p99_ratio": ("<=", 1.5)}
FIGURES = {
    "backlog_p99_ratio": "202 -> receiver p99, 1 M due rows behind 10 failing hooks "
                         "vs empty store",
    "backlog_ingest_p99_ratio": "POST /events p99, the same two stores",
    "backlog_p99_ms": "202 -> receiver p99 with the backlog (ms)",
    "backlog_empty_p99_ms": "202 -> receiver p99 on the empty store (ms)",
    "backlog_ingest_p99_ms": "POST /events p99 with the backlog (ms)",
    "backlog_cpu_per_1000": "CPU s per 1,000 fresh deliveries with the backlog "
                            "(serve + receiver; failing attempts included)",
}


MAX_LOAD_SEC = 60.0  # requests not started by then are not sent (backlog_posted says)


def templates(bench) -> tuple:
    """(empty, full) SQLite stores: alice with one healthy webhook, account bulk with
    the failing webhooks; full also holds the due rows (seeded through the store's
    ingest, events over subscribers). Built once, reused by claim_cost."""
    s = bench.sizes
    empty, full = bench.path("backlog-empty"), bench.path("backlog-full")
    if full.exists():
        return empty, full
    remove(empty)
    with Store(sqlite_url(empty)) as store:
        store.webhooks("alice", bench.hook_urls(1))
        store.webhooks("bulk", bench.hook_urls(s.backlog_webhooks, "fail"))
    copy(empty, full)
    started = time.monotonic()
    with Store(sqlite_url(full)) as store:
        store.emit_events("bulk", s.backlog_rows // s.backlog_webhooks,
                          subscribers=s.backlog_subscribers, at=time.time() - 60)
    log(f"backlog: seeded {s.backlog_rows} due rows in {time.monotonic() - started:.0f} s")
    return empty, full


def run(bench):
    s = bench.sizes
    empty, full = templates(bench)
    figures = {}
    for kind, template in (("empty", empty), ("full", full)):
        figures[kind] = _measure(bench, copy(template, bench.path("backlog")))
        log(f"backlog {kind}: 202->receiver p50 {figures[kind]['p50']:.1f} ms, p99 "
            f"{figures[kind]['p99']:.1f} ms; POST /events p99 "
            f"{figures[kind]['ingest_p99']:.1f} ms; {figures[kind]['failed_per_s']:.0f} "
            "failing attempts/s")
    loaded, base = figures["full"], figures["empty"]
    bench.record(
        {"backlog_p99_ratio": ratio(loaded["p99"], base["p99"]),
         "backlog_ingest_p99_ratio": ratio(loaded["ingest_p99"], base["ingest_p99"]),
         "backlog_p50_ms": loaded["p50"], "backlog_p99_ms": loaded["p99"],
         "backlog_empty_p50_ms": base["p50"], "backlog_empty_p99_ms": base["p99"],
         "backlog_ingest_p99_ms": loaded["ingest_p99"],
         "backlog_empty_ingest_p99_ms": base["ingest_p99"],
         "backlog_ingest_wait_p99_ms": loaded["ingest_wait_p99"],
         "backlog_delivered": loaded["delivered"], "backlog_posted": loaded["posted"],
         "backlog_failing_attempts_per_s": loaded["failed_per_s"],
         "backlog_cpu_per_1000": loaded["cpu_per_1000"],
         "backlog_empty_cpu_per_1000": base["cpu_per_1000"]},
        baseline=(
            f"{s.backlog_rows} due deliveries ({s.backlog_rows // s.backlog_webhooks} "
            f"events over {s.backlog_subscribers} subscribers x {s.backlog_webhooks} "
            "webhooks of account bulk, whose receiver path answers 500), seeded through "
            "the store's ingest before serve starts; account alice's one healthy webhook "
            f"then gets {s.backlog_events} events at {s.backlog_rate:g}/s (POST /events, 4 "
            f"connections, open loop, none started after {MAX_LOAD_SEC:g} s) from 2 s "
            "after start. Figures: 202 -> receiver "
            "and POST /events (request sent -> answer; ingest_wait: from when it was due, "
            "queueing behind slow answers included) percentiles, vs the "
            "same store, server and load without the due rows, same run."))


def _measure(bench, db) -> dict:
    s = bench.sizes
    receiver = bench.receiver
    with bench.serving(db, grace=5.0) as server:
        time.sleep(2.0)  # the loop has started on the backlog
        receiver.reset()
        meter = bench.meter(server)
        load = paced_events(server, rate=s.backlog_rate, count=s.backlog_events,
                            connections=4, max_seconds=MAX_LOAD_SEC)
        result = load.result(timeout=s.backlog_events / s.backlog_rate + 300)
        stats = receiver.wait_count(result["statuses"].get("202", 0), 60, strict=False)
        meter.stop()
        elapsed = time.monotonic() - meter.started
        arrivals = receiver.arrivals()
        final = time.time()
    latencies, missing = all_latencies(arrivals, result["returned"],
                                       bench.hook_paths(bench.hook_urls(1)), final)
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "ingest_p99": percentile(result["durations"], 99) * 1000,
            "ingest_wait_p99": percentile(result["waits"], 99) * 1000,
            "delivered": len(latencies) - missing, "posted": result["statuses"].get("202", 0),
            "failed_per_s": stats["failed"] / elapsed,
            "cpu_per_1000": meter.per_1000(len(latencies) - missing)}
