"""hanging: 50 webhooks whose URL accepts and never answers beside 10 healthy ones,
events posted from the server's first second, vs 60 healthy webhooks: the healthy
ones' p99 and throughput."""

from __future__ import annotations

import time

from bench.context import all_latencies, paced_events
from bench.processes import log
from bench.stores import new_store, percentile, ratio

EARLY_SEC = 5.0
TARGETS = {"hanging_p99_ratio": ("<=", 1.5), "hanging_throughput_ratio": (">=", 0.9)}
FIGURES = {
    "hanging_p99_ratio": "healthy hooks' p99, 50 hanging + 10 healthy vs all healthy",
    "hanging_throughput_ratio": "healthy deliveries/s in the first 5 s, same pair",
    "hanging_throughput_whole_ratio": "healthy deliveries/s over the whole load, same pair",
    "hanging_p99_ms": "healthy p99 beside 50 hanging webhooks (ms)",
    "hanging_all_healthy_p99_ms": "p99 with all 60 healthy (ms)",
    "hanging_first_delivery_s": "first healthy delivery after the first 202 (s)",
    "hanging_cpu_per_1000": "CPU s per 1,000 healthy deliveries (serve + receiver)",
}


def run(bench):
    s = bench.sizes
    healthy = bench.hook_urls(s.hanging_healthy)
    paths = bench.hook_paths(healthy)
    figures = {}
    for kind, others in (("healthy", bench.hook_urls(s.hanging_webhooks, "g")),
                         ("hanging", bench.hook_urls(s.hanging_webhooks, "hang"))):
        figures[kind] = _measure(bench, healthy + others, paths, kind)
        f = figures[kind]
        log(f"hanging {kind}: healthy p99 {f['p99']:.1f} ms, {f['rate']:.0f} healthy "
            f"deliveries/s, first after {f['first']:.2f} s")
    loaded, base = figures["hanging"], figures["healthy"]
    bench.record(
        {"hanging_p99_ratio": ratio(loaded["p99"], base["p99"]),
         "hanging_throughput_ratio": ratio(loaded["early_rate"], base["early_rate"]),
         "hanging_throughput_whole_ratio": ratio(loaded["rate"], base["rate"]),
         "hanging_p50_ms": loaded["p50"], "hanging_p99_ms": loaded["p99"],
         "hanging_all_healthy_p99_ms": base["p99"],
         "hanging_per_s": loaded["rate"], "hanging_all_healthy_per_s": base["rate"],
         "hanging_first_delivery_s": loaded["first"], "hanging_missing": loaded["missing"],
         "hanging_all_healthy_first_delivery_s": base["first"],
         "hanging_cpu_per_1000": loaded["cpu_per_1000"],
         "hanging_all_healthy_cpu_per_1000": base["cpu_per_1000"]},
        baseline=(
            f"{s.hanging_healthy} healthy webhooks + {s.hanging_webhooks} whose receiver "
            "path accepts and never answers, all on one event; a fresh server gets "
            f"{s.hanging_events} events at {s.hanging_rate:g}/s from the moment it listens "
            "(no warm-up). p99 over every delivery to the healthy webhooks (202 -> "
            "receiver; one that never arrived counts as the time waited); throughput = "
            f"healthy deliveries per second that arrived in the first {EARLY_SEC:g} s "
            "after the first 202 (whole: until 1 s after the last 202). Baseline: the "
            "same with all "
            f"{s.hanging_healthy + s.hanging_webhooks} healthy, same run."))


def _measure(bench, urls, paths, kind) -> dict:
    s = bench.sizes
    receiver = bench.receiver
    db = bench.path(f"hanging-{kind}")
    new_store(db, urls)
    receiver.reset()
    with bench.serving(db, grace=2.0) as server:  # attempts to /hang/ would hold it 10 s
        meter = bench.meter(server)
        result = paced_events(server, rate=s.hanging_rate, count=s.hanging_events,
                              connections=4).result(
            timeout=s.hanging_events / s.hanging_rate + 120)
        time.sleep(1.0)
        arrivals = receiver.arrivals()
        meter.stop()
        expected = s.hanging_events * sum(1 for url in urls if "/hang/" not in url)
        if len(arrivals) < expected:
            receiver.wait_count(expected, 30, strict=False)
            arrivals = receiver.arrivals()
        final = time.time()
    returned = result["returned"]
    latencies, missing = all_latencies(arrivals, returned, paths, final)
    start, end = min(returned), max(returned) + 1.0
    healthy = [at for at, path, _ in arrivals if path in paths]
    in_window = sum(1 for at in healthy if start <= at <= end)
    early = sum(1 for at in healthy if start <= at <= start + EARLY_SEC)
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "rate": in_window / (end - start), "early_rate": early / EARLY_SEC,
            "first": (min(healthy) - start) if healthy else float("nan"), "missing": missing,
            "cpu_per_1000": meter.per_1000(in_window)}
