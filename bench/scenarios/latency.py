"""latency: one event at a time, from the 202 reaching the client to the receiver
holding the delivery; on SQLite (``serve`` delivers itself) and on PostgreSQL with the
delivery in one ``soapservice worker`` beside a ``serve`` that only takes events (the
worker learns of each event through LISTEN/NOTIFY)."""

from __future__ import annotations

from bench import postgres
from bench.context import events_job, posted_latencies
from bench.cpu import CpuMeter
from bench.processes import Serve, Worker, log, run_json
from bench.stores import Store, new_store, percentile

TARGETS = {"latency_p50_ms": ("<=", 15.0), "latency_p99_ms": ("<=", 50.0),
           "latency_pg_p50_ms": ("<=", 2.0), "latency_pg_p99_ms": ("<=", 10.0)}
FIGURES = {"latency_p50_ms": "POST returned -> receiver, one event at a time (ms)",
           "latency_p99_ms": "the same, p99 (ms)",
           "latency_cpu_per_1000": "CPU s per 1,000 deliveries: serve + receiver",
           "latency_pg_p50_ms": "the same on PostgreSQL, delivered by one worker (ms)",
           "latency_pg_p99_ms": "the same, p99 (ms)",
           "latency_pg_cpu_per_1000": "CPU s per 1,000 deliveries on PostgreSQL: serve + "
                                      "worker + PostgreSQL backends + receiver"}


def sequence(bench, server: Serve, count: int, interval: float = 0.0,
             wait: bool = False) -> list[float]:
    """POST ``count`` events one at a time; when each 202 returned."""
    job = events_job(server.port, mode="sequence", count=count, interval=interval,
                     wait_receiver=bench.receiver.port if wait else None)
    result = run_json(["bench.loadgen"], job)
    if set(result["statuses"]) != {"202"}:
        raise RuntimeError(f"POST /events answered {result['statuses']}")
    return result["returned"]


def _measure(bench, server: Serve, pids) -> tuple[list[float], CpuMeter]:
    bench.receiver.reset()
    sequence(bench, server, 5, wait=True)  # warm: connection pool, caches
    bench.receiver.reset()
    meter = CpuMeter(pids)
    returned = sequence(bench, server, bench.sizes.latency_events, wait=True)
    meter.stop()
    return posted_latencies(bench.receiver.arrivals(), returned), meter


def _postgres(bench) -> dict:
    """The PostgreSQL figures: serve takes the events, one worker delivers."""
    why = postgres.available()
    if why:
        log(f"latency: PostgreSQL skipped, {why}")
        return {}
    url = postgres.create("latency")
    try:
        with Store(url) as store:
            store.webhooks("alice", bench.hook_urls(1))
        server = Serve(url, delivery=False)
        worker = Worker(url)
        try:
            latencies, meter = _measure(bench, server, lambda: [
                server.pid, worker.pid, bench.receiver.pid, *postgres.backend_pids(url)])
        finally:
            worker.stop()
            server.stop()
    finally:
        postgres.drop(url)
    log(f"latency PostgreSQL (1 worker): p50 {percentile(latencies, 50):.1f} ms, "
        f"p99 {percentile(latencies, 99):.1f} ms")
    return {"latency_pg_p50_ms": percentile(latencies, 50),
            "latency_pg_p99_ms": percentile(latencies, 99),
            "latency_pg_samples": len(latencies),
            "latency_pg_cpu_per_1000": meter.per_1000(len(latencies))}


def run(bench):
    s = bench.sizes
    db = bench.path("latency")
    new_store(db, bench.hook_urls(1))
    server = Serve(db)
    try:
        latencies, meter = _measure(bench, server, [server.pid, bench.receiver.pid])
    finally:
        server.stop()
    figures = _postgres(bench)
    bench.record(
        {"latency_p50_ms": percentile(latencies, 50),
         "latency_p99_ms": percentile(latencies, 99), "latency_samples": len(latencies),
         "latency_cpu_per_1000": meter.per_1000(len(latencies)), **figures},
        baseline=(
            f"{s.latency_events} events posted one at a time (the next after the receiver "
            "held the previous one), one active webhook; latency = receiver's arrival time "
            "- the time the 202 reached the client (0 if the delivery came first). CPU "
            "includes ingest. latency_pg: the same with the store on PostgreSQL, serve "
            "with SOAPSERVICE_DELIVERY=0 and one `soapservice worker` delivering"
            + ("" if figures else " (skipped: no PostgreSQL)") + "."))
    log(f"latency: p50 {percentile(latencies, 50):.1f} ms, "
        f"p99 {percentile(latencies, 99):.1f} ms")
