"""workers: 1, 2 and 3 uncapped ``soapservice worker`` processes on one PostgreSQL
store (on 2 cores the CPUs, not the design, are the limit: see ``scale``), and beside
them, in the same round, one worker draining the same deliveries from a SQLite store:
the CPU per delivery of both stores side by side (issue #19: PostgreSQL's at most 1.3x
SQLite's), with PostgreSQL's transactions per delivery (``pg_stat_database``)."""

from __future__ import annotations

import time

from bench import postgres
from bench.cpu import CpuMeter
from bench.processes import Worker, log
from bench.stores import Store, median, remove, sqlite_url

TARGETS = {"workers_pg_sqlite_cpu_ratio": ("<=", 1.3)}
FIGURES = {"workers_1_per_s": "deliveries/s, 1 worker, PostgreSQL (uncapped)",
           "workers_2_ratio": "2 workers vs 1, PostgreSQL (uncapped, 2 cores)",
           "workers_3_ratio": "3 workers vs 1, PostgreSQL (uncapped, 2 cores)",
           "workers_1_cpu_per_1000": "CPU s per 1,000 deliveries: worker + PostgreSQL "
                                     "backends + receiver",
           "workers_sqlite_per_s": "deliveries/s, 1 worker, SQLite (same round)",
           "workers_sqlite_cpu_per_1000": "CPU s per 1,000 deliveries: worker on SQLite "
                                          "+ receiver",
           "workers_pg_sqlite_cpu_ratio": "CPU per delivery, PostgreSQL (1 worker) vs "
                                          "SQLite, same round",
           "workers_pg_worker_cpu_per_1000": "CPU s per 1,000 deliveries: the PostgreSQL "
                                             "worker alone",
           "workers_pg_backends_cpu_per_1000": "CPU s per 1,000 deliveries: PostgreSQL's "
                                               "backends alone",
           "workers_pg_xacts_per_1000": "PostgreSQL transactions per 1,000 deliveries, "
                                        "1 worker"}


def run(bench):
    why = postgres.available()
    if why:
        log(f"workers: skipped, {why}")
        bench.skip(why)
        return
    s = bench.sizes
    events = max(1, s.worker_deliveries // s.webhooks)
    total = events * s.webhooks
    template = postgres.create("workers_template")
    sqlite_template = bench.path("workers-sqlite-template")
    remove(sqlite_template)
    try:
        for url in (template, sqlite_url(sqlite_template)):
            with Store(url) as store:
                store.webhooks("alice", bench.hook_urls(s.webhooks, "w"))
                store.emit_events("alice", events)
        _rounds(bench, template, sqlite_template, events, total)
    finally:
        postgres.drop(template)


def _xacts(url: str) -> int:
    """Transactions committed and rolled back in ``url``'s database so far."""
    with postgres._admin() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                    "WHERE datname = %s", (url.rsplit("/", 1)[1],))
        return cur.fetchone()[0]


def _drain(bench, urls: list[str], total: int, timeout: float, pg: str | None) -> dict:
    """Workers on ``urls`` (one each) drain ``total`` deliveries: rate, CPU per 1,000
    (all, the workers', the backends'), transactions per 1,000 (``pg``: its database;
    counted from the workers' start to their backends' exit, so start-up included)."""
    receiver = bench.receiver
    receiver.reset()
    xacts = _xacts(pg) if pg else 0
    procs = [Worker(url) for url in urls]
    try:
        # CPU from the first deliveries on (not the processes' start-up).
        already = receiver.wait_count(min(100, total // 10), timeout)["count"]
        meter = CpuMeter(lambda: [receiver.pid, *(p.pid for p in procs),
                                  *(postgres.backend_pids(pg) if pg else ())])
        rate = receiver.drain_rate(total, timeout)
        meter.stop()
    finally:
        for proc in procs:
            proc.stop()
        time.sleep(0.2)
    done = total - already
    workers = sum(meter.per_pid.get(p.pid, 0.0) for p in procs)
    backends = meter.seconds - workers - meter.per_pid.get(receiver.pid, 0.0)
    per_1000 = (lambda seconds: seconds / done * 1000) if done else (
        lambda seconds: float("nan"))
    result = {"rate": rate, "cpu": meter.per_1000(done), "worker_cpu": per_1000(workers),
              "backend_cpu": per_1000(backends), "busy": meter.machine_cores,
              "xacts": float("nan")}
    if pg:  # a backend's counts reach pg_stat_database by its exit at the latest
        deadline = time.monotonic() + 10
        while postgres.backend_pids(pg) and time.monotonic() < deadline:
            time.sleep(0.1)
        result["xacts"] = (_xacts(pg) - xacts) / total * 1000
    return result


def _rounds(bench, template, sqlite_template, events, total):
    s = bench.sizes
    timeout = max(120.0, total / 20)
    rates: dict[int, list[float]] = {1: [], 2: [], 3: []}
    cpu: dict[int, list[float]] = {1: [], 2: [], 3: []}
    lite_rates, lite_cpu, ratios, pg_worker, pg_backends, xacts = [], [], [], [], [], []
    for n in range(s.rounds):
        path = bench.path("workers-sqlite")
        remove(path)
        path.write_bytes(sqlite_template.read_bytes())
        lite = _drain(bench, [sqlite_url(path)], total, timeout, None)
        remove(path)
        lite_rates.append(lite["rate"])
        lite_cpu.append(lite["cpu"])
        for count in rates:
            url = postgres.create("workers", template)  # every delivery due, no lease
            try:
                got = _drain(bench, [url] * count, total, timeout, url)
            finally:
                postgres.drop(url)
            rates[count].append(got["rate"])
            cpu[count].append(got["cpu"])
            if count == 1:
                ratios.append(got["cpu"] / lite["cpu"])
                pg_worker.append(got["worker_cpu"])
                pg_backends.append(got["backend_cpu"])
                xacts.append(got["xacts"])
                log(f"workers round {n + 1}: CPU per 1,000 PostgreSQL {got['cpu']:.2f} s "
                    f"(worker {got['worker_cpu']:.2f}, backends {got['backend_cpu']:.2f}; "
                    f"{got['xacts']:.0f} transactions) vs SQLite {lite['cpu']:.2f} s "
                    f"(worker {lite['worker_cpu']:.2f}): {ratios[-1]:.2f}x; machine "
                    f"{got['busy']:.2f} / {lite['busy']:.2f} busy cores")
        log(f"workers round {n + 1}: SQLite {lite_rates[-1]:.0f}/s, PostgreSQL " + ", ".join(
            f"{c}: {r[-1]:.0f}/s" for c, r in rates.items()))
    results = {"workers_sqlite_per_s": median(lite_rates),
               "workers_sqlite_cpu_per_1000": median(lite_cpu),
               "workers_pg_sqlite_cpu_ratio": median(ratios),
               "workers_pg_worker_cpu_per_1000": median(pg_worker),
               "workers_pg_backends_cpu_per_1000": median(pg_backends),
               "workers_pg_xacts_per_1000": median(xacts)}
    for count, values in rates.items():
        results[f"workers_{count}_per_s"] = median(values)
        results[f"workers_{count}_cpu_per_1000"] = median(cpu[count])
        if count > 1:
            results[f"workers_{count}_ratio"] = median(
                [a / b for a, b in zip(values, rates[1], strict=True)])
    bench.record(results, rounds={**{f"workers_{c}_per_s": r for c, r in rates.items()},
                                  "workers_sqlite_per_s": lite_rates,
                                  "workers_sqlite_cpu_per_1000": lite_cpu,
                                  "workers_1_cpu_per_1000": cpu[1],
                                  "workers_pg_sqlite_cpu_ratio": ratios},
                 baseline=(
        f"{events} events x {s.webhooks} webhooks = {total} deliveries in a fresh "
        "PostgreSQL database (a copy of one seeded template per drain), drained by 1, 2 "
        "and 3 `soapservice worker` processes; ratio = rate with N workers / rate with "
        "1, same round. On a 2-core machine the workers share the CPUs with PostgreSQL "
        "and the receiver, so more workers cannot add throughput there. SQLite: the same "
        "deliveries (a copy of a SQLite store seeded the same way) drained by one "
        "`soapservice worker` first in each round; CPU = utime + stime from /proc of the "
        "worker, the receiver and (PostgreSQL) the database's backends, from the 100th "
        "delivery to the last; the CPU ratio is PostgreSQL's / SQLite's, same round."))
