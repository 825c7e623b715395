"""isolation: p99 to healthy webhooks while half the webhooks hang, vs all healthy."""

from __future__ import annotations

from bench.context import posted_latencies
from bench.cpu import CpuMeter
from bench.processes import Serve, log
from bench.scenarios.latency import sequence
from bench.stores import median, new_store, percentile

TARGETS = {"isolation_ratio": ("<=", 1.5)}
FIGURES = {"isolation_ratio": "p99 to healthy hooks, half hanging vs none",
           "isolation_cpu_per_1000": "CPU s per 1,000 deliveries, all healthy "
                                     "(serve + receiver)"}


def run(bench):
    s = bench.sizes
    half = s.webhooks // 2
    healthy = bench.hook_urls(half)
    healthy_paths = bench.hook_paths(healthy)
    mixed_rates, mixed_p99, healthy_p99, cpu = [], [], [], []
    for n in range(s.rounds):
        p99s = {}
        for kind, others in (("healthy", bench.hook_urls(s.webhooks - half, "g")),
                             ("mixed", bench.hook_urls(s.webhooks - half, "hang"))):
            db = bench.path(f"isolation-{kind}")
            new_store(db, healthy + others)
            server = Serve(db)
            try:
                bench.receiver.reset()
                meter = CpuMeter([server.pid, bench.receiver.pid])
                # Warm-up events first: connections opened, and the hanging webhooks
                # already holding their slots (the steady state).
                warm = max(1, s.isolation_events // 6)
                returned = sequence(bench, server, warm + s.isolation_events,
                                    interval=s.isolation_interval)
                expected = (warm + s.isolation_events) * (half if kind == "mixed"
                                                          else s.webhooks)
                bench.receiver.wait_count(expected, 120)
                meter.stop()
                if kind == "healthy":
                    cpu.append(meter.per_1000(expected))
                latencies = posted_latencies(bench.receiver.arrivals(), returned,
                                             healthy_paths, skip=warm)
                p99s[kind] = percentile(latencies, 99)
            finally:
                server.stop(grace=2.0)  # attempts to /hang/ would hold it 10 s
        healthy_p99.append(p99s["healthy"])
        mixed_p99.append(p99s["mixed"])
        mixed_rates.append(p99s["mixed"] / max(p99s["healthy"], 1e-3))
        log(f"isolation round {n + 1}: p99 healthy-only {p99s['healthy']:.1f} ms, "
            f"with half hanging {p99s['mixed']:.1f} ms")
    bench.record(
        {"isolation_ratio": median(mixed_rates),
         "isolation_p99_all_healthy_ms": median(healthy_p99),
         "isolation_p99_half_hanging_ms": median(mixed_p99),
         "isolation_cpu_per_1000": median(cpu)},
        rounds={"isolation_p99_all_healthy_ms": healthy_p99,
                "isolation_p99_half_hanging_ms": mixed_p99},
        baseline=(
            f"{s.webhooks} webhooks on one event; {s.isolation_events} events (after "
            f"{max(1, s.isolation_events // 6)} warm-up events) posted one "
            f"every {s.isolation_interval * 1000:.0f} ms; p99 over the deliveries to the "
            f"{half} healthy webhooks (POST returned -> receiver), with the other {half} "
            "pointing at a receiver path that accepts and never answers, vs all healthy."))
