"""delivery: soapservice draining due rows vs the bare Twisted Agent loop, and the same
drain with an old-rows backlog (1 M delivered, 100 k buffered) vs the empty store."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bench.cpu import CpuMeter
from bench.processes import EVENT, Serve, log, run_json
from bench.stores import BODY, copy, median, new_store, seed_deliveries

TARGETS = {"delivery_ratio": (">=", 0.8), "backlog_ratio": (">=", 0.8)}
FIGURES = {
    "delivery_ratio": "deliveries/s drained vs the bare Agent loop, 20 webhooks",
    "delivery_per_s": "soapservice's drain rate (SQLite)",
    "delivery_bare_per_s": "the bare Agent loop's rate",
    "delivery_cpu_per_1000": "CPU s per 1,000 deliveries: serve + receiver",
    "delivery_bare_cpu_per_1000": "CPU s per 1,000 deliveries: bare loop + receiver",
    "delivery_serve_cpu_per_1000": "CPU s per 1,000 deliveries: serve alone",
    "delivery_bare_loop_cpu_per_1000": "CPU s per 1,000 deliveries: the bare loop alone",
    "backlog_ratio": "drain rate with 1.1 M old rows vs the empty store",
}


def run(bench):
    s = bench.sizes
    events = s.deliveries // s.webhooks
    total = events * s.webhooks
    concurrency = min(256, s.webhooks * 8)  # soapservice's defaults: 256 and 8 each
    empty = bench.path("delivery-template")
    ids = new_store(empty, bench.hook_urls(s.webhooks))
    seed_deliveries(empty, ids, events, state=0)
    log(f"delivery: seeding the backlog store ({s.old_delivered} delivered, "
        f"{s.old_buffered} buffered rows)")
    backlog = copy(empty, bench.path("backlog-template"))
    _seed_old_rows(bench, backlog, ids)
    timeout = max(120.0, total / 50)
    receiver = bench.receiver
    bare_rates, empty_rates, backlog_rates, cpu, bare_cpu = [], [], [], [], []
    serve_cpu, loop_cpu = [], []  # the client side alone (the receiver's is the same)
    for n in range(s.rounds):
        receiver.reset()
        meter = CpuMeter([receiver.pid])
        out = run_json(["bench.bare", "agent", str(receiver.port), str(total),
                        str(concurrency), BODY], timeout=timeout)
        meter.stop()
        loop_cpu.append(out.get("cpu_seconds", float("nan")) / total * 1000)
        bare_cpu.append(meter.per_1000(total) + loop_cpu[-1])
        bare_rates.append(receiver.drain_rate(total, timeout))
        for template, rates in ((empty, empty_rates), (backlog, backlog_rates)):
            receiver.reset()
            receiver.hold()  # nothing is answered before the meter starts
            server = Serve(copy(template, bench.path("delivery")))
            try:
                meter = CpuMeter([server.pid, receiver.pid])
                receiver.release()
                already = receiver.stats()["count"]
                rates.append(receiver.drain_rate(total, timeout))
                meter.stop()
                if rates is empty_rates:
                    cpu.append(meter.per_1000(total - already))
                    delivered = total - already
                    serve_cpu.append(meter.per_pid.get(server.pid, float("nan"))
                                     / delivered * 1000 if delivered else float("nan"))
            finally:
                server.stop()
        log(f"delivery round {n + 1}: bare {bare_rates[-1]:.0f}/s, soapservice "
            f"{empty_rates[-1]:.0f}/s, with backlog {backlog_rates[-1]:.0f}/s; CPU per "
            f"1,000: {cpu[-1]:.2f} s vs bare {bare_cpu[-1]:.2f} s (serve alone "
            f"{serve_cpu[-1]:.2f} s, bare loop alone {loop_cpu[-1]:.2f} s); machine "
            f"{meter.machine_cores:.2f} busy cores")
    bench.record(
        {"delivery_ratio": median([a / b for a, b in zip(empty_rates, bare_rates,
                                                         strict=True)]),
         "backlog_ratio": median([a / b for a, b in zip(backlog_rates, empty_rates,
                                                        strict=True)]),
         "delivery_per_s": median(empty_rates), "delivery_bare_per_s": median(bare_rates),
         "delivery_backlog_per_s": median(backlog_rates),
         "delivery_cpu_per_1000": median(cpu), "delivery_bare_cpu_per_1000": median(bare_cpu),
         "delivery_serve_cpu_per_1000": median(serve_cpu),
         "delivery_bare_loop_cpu_per_1000": median(loop_cpu)},
        rounds={"delivery_bare_per_s": bare_rates, "delivery_per_s": empty_rates,
                "delivery_backlog_per_s": backlog_rates, "delivery_cpu_per_1000": cpu,
                "delivery_bare_cpu_per_1000": bare_cpu, "delivery_serve_cpu_per_1000": serve_cpu,
                "delivery_bare_loop_cpu_per_1000": loop_cpu},
        baseline=(
            f"python -m bench.bare agent: one Twisted Agent with a persistent "
            f"HTTPConnectionPool (maxPersistentPerHost={concurrency}), {concurrency} "
            f"requests in flight, POSTing {total} bodies of the same JSON with the same "
            f"header names to the same receiver; soapservice drains {events} events x "
            f"{s.webhooks} webhooks seeded as due rows before it starts (its concurrency: "
            f"{s.webhooks} webhooks x 8 = {concurrency}). Rate = receiver's count / "
            "(last arrival - first arrival). Backlog: the same drain with "
            f"{s.old_delivered} delivered rows (a day old) and {s.old_buffered} buffered "
            "rows (5 inactive webhooks) already in the store, vs the empty store, same "
            "round. CPU: utime + stime from /proc of the server (or the bare loop) and "
            "the receiver over the drain; 'alone': the server's or the bare loop's own "
            "(the receiver's share is the same work in both)."))


def _seed_old_rows(bench, path: Path, hook_ids: list[int]):
    s = bench.sizes
    seed_deliveries(path, hook_ids, max(1, s.old_delivered // len(hook_ids)), state=2,
                    age_sec=86400, first_k=10**8)
    con = sqlite3.connect(path)
    try:
        account_id = con.execute("SELECT id FROM account").fetchone()[0]
        inactive = []
        for i in range(5):
            cur = con.execute(
                "INSERT INTO webhook (account_id, app, event, url, secret, active, "
                "created_at, deactivated_at, deactivations, failure_count, "
                "dropped_events) VALUES (?, 'bench', ?, ?, 'whsec_x', 0, ?, ?, 1, 8, 0)",
                (account_id, EVENT, f"{bench.receiver.url}/off/{i}", time.time(),
                 time.time() - 3600))
            inactive.append(cur.lastrowid)
        con.commit()
    finally:
        con.close()
    seed_deliveries(path, inactive, max(1, s.old_buffered // 5), state=1,
                    age_sec=1800, first_k=2 * 10**8)
