"""webhooks10k: 1,000 accounts × 10 webhooks under a sustained 500 deliveries/s (50
events/s, each to one account's 10 webhooks), vs the same load on 2 accounts × 10
webhooks: the p99 from 202 to the receiver (a claim must not cost more because many
webhooks exist)."""

from __future__ import annotations

import time

from bench.context import paced_events
from bench.processes import log
from bench.stores import Store, percentile, ratio, remove, sqlite_url

TARGETS = {"webhooks10k_p99_ratio": ("<=", 2.0)}
FIGURES = {
    "webhooks10k_p99_ratio": "202 -> receiver p99 at 500 deliveries/s, 10,000 webhooks "
                             "vs 20",
    "webhooks10k_p99_ms": "p99 with 10,000 webhooks (ms)",
    "webhooks10k_narrow_p99_ms": "p99 with 20 webhooks (ms)",
    "webhooks10k_per_s": "deliveries/s achieved with 10,000 webhooks",
    "webhooks10k_cpu_per_1000": "CPU s per 1,000 deliveries, 10,000 webhooks "
                                "(serve + receiver)",
    "webhooks10k_narrow_cpu_per_1000": "the same with 20 webhooks",
}
WARMUP_SEC = 2.0


def run(bench):
    s = bench.sizes
    figures = {}
    for kind, accounts in (("narrow", 2), ("wide", s.wide_accounts)):
        figures[kind] = _measure(bench, kind, accounts)
        f = figures[kind]
        log(f"webhooks10k {kind} ({accounts * s.wide_per_account} webhooks): p50 "
            f"{f['p50']:.1f} ms, p99 {f['p99']:.1f} ms, {f['rate']:.0f} deliveries/s, "
            f"{f['missing']} missing")
    wide, narrow = figures["wide"], figures["narrow"]
    events_per_s = s.wide_deliveries_per_s / s.wide_per_account
    bench.record(
        {"webhooks10k_p99_ratio": ratio(wide["p99"], narrow["p99"]),
         "webhooks10k_p50_ms": wide["p50"], "webhooks10k_p99_ms": wide["p99"],
         "webhooks10k_narrow_p50_ms": narrow["p50"], "webhooks10k_narrow_p99_ms": narrow["p99"],
         "webhooks10k_per_s": wide["rate"], "webhooks10k_narrow_per_s": narrow["rate"],
         "webhooks10k_missing": wide["missing"],
         "webhooks10k_cpu_per_1000": wide["cpu_per_1000"],
         "webhooks10k_narrow_cpu_per_1000": narrow["cpu_per_1000"]},
        baseline=(
            f"{s.wide_accounts} accounts x {s.wide_per_account} webhooks (all on one "
            f"event) vs 2 accounts x {s.wide_per_account}; {events_per_s:g} events/s "
            f"for {s.wide_seconds:g} s (paced, 8 connections), each for the next account "
            f"in turn, so {s.wide_deliveries_per_s:g} deliveries/s; p99 of 202 -> "
            f"receiver over the deliveries after the first {WARMUP_SEC:g} s (one that "
            "never arrived counts as the time waited), same run."))


def _measure(bench, kind: str, accounts: int) -> dict:
    s = bench.sizes
    receiver = bench.receiver
    db = bench.path(f"webhooks10k-{kind}")
    remove(db)
    names = [f"acct{a}" for a in range(accounts)]
    with Store(sqlite_url(db)) as store:
        for name in names:
            urls = bench.hook_urls(s.wide_per_account, f"w/{name}")
            store.webhooks(name, urls)
    receiver.reset()
    rate = s.wide_deliveries_per_s / s.wide_per_account
    count = int(rate * s.wide_seconds)
    with bench.serving(db) as server:
        meter = bench.meter(server)
        result = paced_events(server, account="{a}", rate=rate, count=count, connections=8,
                              choices={"{a}": names}).result(timeout=s.wide_seconds * 3 + 120)
        receiver.wait_count(count * s.wide_per_account, 30, strict=False)
        meter.stop()
        arrivals = receiver.arrivals()
        final = time.time()
    returned = result["returned"]
    skip = int(rate * WARMUP_SEC) if count > 2 * rate * WARMUP_SEC else 0
    # Each event goes to its own account's 10 webhooks only.
    first: dict[tuple[int, str], float] = {}
    for at, path, k in arrivals:
        first.setdefault((k, path), at)
    latencies, missing = [], 0
    for k in range(skip, len(returned)):
        if not returned[k]:
            continue
        name = names[k % len(names)]
        for path in bench.hook_paths(bench.hook_urls(s.wide_per_account, f"w/{name}")):
            at = first.get((k, path))
            if at is None:
                missing += 1
                at = final
            latencies.append(max(0.0, (at - returned[k]) * 1000))
    window = max(arrivals[-1][0] - min(t for t in returned if t), 1e-9) if arrivals else 1.0
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "missing": missing, "rate": len(arrivals) / window,
            "cpu_per_1000": meter.per_1000(len(arrivals))}
