"""flaky: one webhook failing at random (10 %, and the 30 % figure) among five, 100
events/s over 200 subscribers: does it keep up (pending bounded), and is everything
delivered within 60 s after the load stops? (The issue measured 10 minutes; this runs
``flaky_seconds``, 60 s by default.)"""

from __future__ import annotations

import time

from bench.context import paced_events, posted_latencies
from bench.processes import log
from bench.stores import SUBSCRIBER_BODY, new_store, percentile

TARGETS = {"flaky_10_undelivered_after_60s": ("<=", 0)}
FIGURES = {
    "flaky_10_undelivered_after_60s": "flaky hook (10 % failing): events not delivered "
                                      "60 s after the load stopped",
    "flaky_10_pending_max": "its most pending events during the load",
    "flaky_10_pending_growth_per_s": "its pending growth over the load's second half (/s)",
    "flaky_10_drain_s": "load stop -> its last event delivered (s)",
    "flaky_10_per_s": "its deliveries/s during the load (offered: 100/s)",
    "flaky_10_healthy_p50_ms": "the 4 healthy hooks' 202 -> receiver p50 (ms)",
    "flaky_10_ingest_p50_ms": "POST /events p50 (ms)",
    "flaky_10_cpu_per_1000": "CPU s per 1,000 deliveries (serve + receiver)",
    "flaky_30_undelivered_after_60s": "the same at 30 % failing, 30 s of load and 30 s "
                                      "after (reported, no target)",
    "flaky_30_pending_max": "its most pending events during the load, 30 %",
    "flaky_30_per_s": "its deliveries/s during the load, 30 %",
}


def run(bench):
    s = bench.sizes
    summary = []
    for n, percent in enumerate(s.flaky_percents):
        seconds = s.flaky_seconds if n == 0 else s.flaky_report_sec
        drain = s.flaky_drain_sec if n == 0 else s.flaky_report_sec
        figures = _measure(bench, percent, seconds, drain)
        bench.record({f"flaky_{percent}_{k}": v for k, v in figures.items()})
        summary.append(f"{percent} %: {seconds:g} s of load, "
                       f"{figures['undelivered_after_60s']} undelivered after {drain:g} s")
        log(f"flaky {percent} %: pending max {figures['pending_max']}, at stop "
            f"{figures['pending_at_stop']}, growth {figures['pending_growth_per_s']:.1f}/s; "
            f"{figures['per_s']:.1f} deliveries/s to it; undelivered after "
            f"{drain:g} s: {figures['undelivered_after_60s']}")
    bench.record(baseline=(
        f"{s.flaky_webhooks} webhooks on one event, one of them at a receiver path that "
        "answers 500 at random with the given probability; events posted at "
        f"{s.flaky_rate:g}/s (open loop, 8 connections) over "
        f"{s.flaky_subscribers} subscribers (subscriber_id: ordered per subscriber); "
        "pending = events accepted (202) and not yet delivered to the flaky webhook, "
        "from the 202 times and the receiver's arrivals; then a wait for the rest "
        "(see below). Default retry schedule (10 s, 60 s, 5 min, ...) with the quick "
        "retries of an isolated failure (1, 2, 5, 10, 20 s while the receiver does not "
        "look down, below 10 consecutive failures). "
        + "; ".join(summary)))


def _measure(bench, percent: int, seconds: float, drain: float) -> dict:
    s = bench.sizes
    receiver = bench.receiver
    flaky_url = f"{receiver.url}/flaky/{percent}/0"
    healthy = bench.hook_urls(s.flaky_webhooks - 1)
    db = bench.path(f"flaky-{percent}")
    new_store(db, [flaky_url, *healthy])
    flaky_path = flaky_url.split(str(receiver.port), 1)[1]
    with bench.serving(db, grace=5.0) as server:
        receiver.reset()
        meter = bench.meter(server)
        result = paced_events(
            server, body=SUBSCRIBER_BODY, rate=s.flaky_rate, seconds=seconds, connections=8,
            choices={"{s}": [f"s{i}" for i in range(s.flaky_subscribers)]}
        ).result(timeout=seconds * 3 + 120)
        stopped = time.time()
        accepted = result["statuses"].get("202", 0)
        receiver.wait_count(accepted * s.flaky_webhooks, drain, strict=False)
        meter.stop()
        arrivals = receiver.arrivals()
    returned = result["returned"]
    first_ok: dict[int, float] = {}
    for at, path, k in arrivals:
        if path == flaky_path and k is not None:
            first_ok.setdefault(k, at)
    start = min(t for t in returned if t)
    posted_times = sorted(t for t in returned if t)
    done_times = sorted(first_ok.values())

    def pending(at: float) -> int:
        import bisect
        return bisect.bisect_right(posted_times, at) - bisect.bisect_right(done_times, at)

    steps = [start + i * 0.5 for i in range(int((stopped - start) / 0.5) + 1)]
    series = [pending(t) for t in steps]
    half = start + (stopped - start) / 2
    healthy_paths = bench.hook_paths(healthy)
    in_load = [at for at in done_times if at <= stopped]
    undelivered = sum(1 for k, t in enumerate(returned) if t and k not in first_ok)
    return {
        "undelivered_after_60s": undelivered,
        "pending_max": max(series) if series else 0,
        "pending_at_stop": pending(stopped),
        "pending_growth_per_s": (pending(stopped) - pending(half)) / max(stopped - half, 1e-9),
        "drain_s": (max(done_times) - stopped) if not undelivered and done_times
        else float("nan"),
        "per_s": len(in_load) / max(stopped - start, 1e-9),
        "healthy_p50_ms": percentile(posted_latencies(arrivals, returned, healthy_paths), 50),
        "ingest_p50_ms": percentile(result["waits"], 50) * 1000,
        "accepted": accepted,
        "cpu_per_1000": meter.per_1000(len(arrivals)),
    }
