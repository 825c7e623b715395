"""scale: 1, 2, 4 and 8 ``soapservice worker`` processes, each in its own CPU-capped
cgroup (0.2 CPU by default, ``--scale-cpu``), sharing one PostgreSQL store with due
deliveries pre-seeded over 20 webhooks and over 200: throughput per N, the efficiency
rate(N) / (N × rate(1)), each worker's share of the deliveries and of the CPU. Capped
workers show whether the design scales, not how many cores the machine has. Skipped,
and said so, where cgroups are not writable or PostgreSQL is absent; the groups are
removed afterwards.

The scenario also says whether the machine can show it at all: from the one-worker
run's CPU per 1,000 deliveries (worker + PostgreSQL backends + receiver, from /proc) it
computes the cores that N workers delivering N times as much would need; where that is
more than the machine's cores (less a tenth of headroom), N capped workers are bound by
the machine, not the design, and it says so, with the ``--scale-cpu`` at which the
largest N would fit. Each N's own CPU per 1,000 deliveries shows what the design adds
per delivery as N grows (the figure that survives a loaded machine), and the machine's
busy cores during each measurement what the other processes took."""

from __future__ import annotations

import math
import os
import time

from bench import cgroups, postgres
from bench.cpu import CpuMeter, process_seconds
from bench.processes import Worker, log
from bench.stores import Store, ratio

TARGETS = {}
FIGURES = {}
# What of the machine's cores the capped workers + PostgreSQL + receiver may need for
# N x rate(1) to be measurable: the rest is headroom (the reactor's bursts, the kernel,
# the bench's own polling).
FIT = 0.9
for _shape in (20, 200):
    TARGETS[f"scale_{_shape}_4_efficiency"] = (">=", 0.8)
    TARGETS[f"scale_{_shape}_8_efficiency"] = (">=", 0.7)
    FIGURES[f"scale_{_shape}_1_per_s"] = f"deliveries/s, 1 capped worker, {_shape} webhooks"
    for _n in (2, 4, 8):
        TARGETS[f"scale_{_shape}_{_n}_min_share"] = (">=", 0.5)
        FIGURES[f"scale_{_shape}_{_n}_per_s"] = f"deliveries/s, {_n} capped workers"
        FIGURES[f"scale_{_shape}_{_n}_efficiency"] = (f"rate({_n}) / ({_n} x rate(1)), "
                                                      f"{_shape} webhooks")
        FIGURES[f"scale_{_shape}_{_n}_min_share"] = ("smallest worker's share of the "
                                                     "deliveries / fair share")
        FIGURES[f"scale_{_shape}_{_n}_cores_needed"] = (
            f"cores {_n} x rate(1) needs (workers + PostgreSQL + receiver, from the "
            "1-worker CPU per 1,000)")
        FIGURES[f"scale_{_shape}_{_n}_cpu_per_1000"] = (
            f"CPU s per 1,000 deliveries, {_n} workers (all their processes)")
    FIGURES[f"scale_{_shape}_cpu_per_1000"] = ("CPU s per 1,000 deliveries, 1 worker "
                                               "(worker + PostgreSQL backends + receiver)")
    FIGURES[f"scale_{_shape}_fitting_cpu"] = (
        f"--scale-cpu at which {max((2, 4, 8))} x rate(1) fits the machine's cores")


def run(bench):
    kind, why = cgroups.available()
    reason = why if kind is None else postgres.available()
    if reason:
        log(f"scale: skipped, {reason}")
        bench.skip(reason)
        return
    s = bench.sizes
    try:  # writable is not always creatable (a container's read-only hierarchy)
        cgroups.CpuGroup(f"soapservice-bench-{os.getpid()}-probe", s.scale_cpu).remove()
    except OSError as exc:
        log(f"scale: skipped, cannot create a {kind} cgroup ({exc})")
        bench.skip(f"cannot create a {kind} cgroup ({exc})")
        return
    results, rounds = {}, {}
    for shape in s.scale_shapes:
        template = postgres.create(f"scale_{shape}_template")
        try:
            with Store(template) as store:
                store.webhooks("alice", bench.hook_urls(shape, f"s{shape}"))
                store.emit_events("alice", max(1, s.scale_deliveries // shape))
            # A store in service has statistics (autovacuum's analyze); a copy of a
            # database seeded a second ago has none, and the claim's planner then reads
            # each webhook's whole queue for its first due head (280 ms a claim at 20
            # webhooks x 2,000 rows, PostgreSQL busy with claims, not the workers).
            postgres.analyze(template)
            rates, per_1000 = {}, float("nan")
            for count in s.scale_workers:
                figures = _measure(bench, template, count, shape)
                rates[count] = figures["rate"]
                prefix = f"scale_{shape}_{count}"
                results[f"{prefix}_per_s"] = figures["rate"]
                if count == 1:
                    per_1000 = figures["cpu_per_1000"]
                    results[f"scale_{shape}_cpu_per_1000"] = per_1000
                    fitting = fitting_cpu(s.scale_cpu, rates[1], per_1000,
                                          max(s.scale_workers))
                    results[f"scale_{shape}_fitting_cpu"] = fitting
                else:
                    results[f"{prefix}_efficiency"] = ratio(figures["rate"],
                                                            count * rates[1])
                    results[f"{prefix}_min_share"] = min(figures["shares"]) * count
                    results[f"{prefix}_cpu_per_1000"] = figures["cpu_per_1000"]
                needed = cores_needed(count, rates[1], per_1000)
                results[f"{prefix}_cores_needed"] = needed
                results[f"{prefix}_cpu_used"] = figures["cpu_used"]
                results[f"{prefix}_machine_busy"] = figures["machine_busy"]
                rounds[f"{prefix}_delivery_shares"] = figures["shares"]
                rounds[f"{prefix}_cpu_shares"] = figures["cpu_shares"]
                log(f"scale {shape} webhooks, {count} workers: {figures['rate']:.0f}/s "
                    f"(efficiency {ratio(figures['rate'], count * rates[1]):.2f}); shares "
                    + " ".join(f"{x:.2f}" for x in figures["shares"]) + "; CPU shares "
                    + " ".join(f"{x:.2f}" for x in figures["cpu_shares"])
                    + f"; {figures['cpu_used']:.2f} of the cap used; "
                    f"{figures['cpu_per_1000']:.2f} CPU s per 1,000; machine "
                    f"{figures['machine_busy']:.2f} busy cores of {_cores()}")
                if count > 1 and not fits(needed):
                    log(f"scale {shape} webhooks, {count} workers: {count} x "
                        f"{rates[1]:.0f}/s at {per_1000:.2f} CPU s per 1,000 needs "
                        f"{needed:.2f} cores, more than {FIT:g} of this machine's "
                        f"{_cores()}: this efficiency measures the machine, not the "
                        f"design; --scale-cpu {fitting:g} would fit")
        finally:
            postgres.drop(template)
    bench.record(results, rounds=rounds, baseline=(
        f"{kind} groups ({why}), one per worker, each capped at {s.scale_cpu:g} CPU; "
        f"workers {', '.join(map(str, s.scale_workers))} on a fresh copy of a PostgreSQL "
        f"database seeded with {s.scale_deliveries} due deliveries over each of "
        f"{', '.join(map(str, s.scale_shapes))} webhooks; rate = receiver count over "
        f"{s.scale_seconds:g} s after the first deliveries; a worker's share of the "
        "deliveries from its /metrics (successful attempts), of the CPU from /proc; "
        "min_share = the smallest share x N (1 = fair); cpu_used = the workers' CPU / "
        "their caps; cores_needed = N x rate(1) x the 1-worker CPU per 1,000 (all its "
        f"processes), which must stay under {FIT:g} of the machine's {_cores()} cores for "
        "the efficiency to measure the design (fitting_cpu: the cap at which the largest "
        "N fits); machine_busy = the whole machine's busy cores meanwhile."))


def _cores() -> int:
    return os.cpu_count() or 1


def cores_needed(count: int, rate: float, per_1000: float) -> float:
    """Cores ``count`` workers delivering ``count`` x ``rate`` would need, at
    ``per_1000`` CPU seconds per 1,000 deliveries (all the processes involved)."""
    return count * rate * per_1000 / 1000.0


def fits(needed: float, cores: int | None = None) -> bool:
    return not math.isnan(needed) and needed <= FIT * (cores or _cores())


def fitting_cpu(cap: float, rate: float, per_1000: float, count: int,
                cores: int | None = None) -> float:
    """The cap per worker (two decimals, rounded down) at which ``count`` workers fit
    the machine, the rate of one taken as proportional to its cap; ``cap`` when they
    fit already."""
    needed = cores_needed(count, rate, per_1000)
    if math.isnan(needed) or needed <= 0 or fits(needed, cores):
        return cap
    return max(0.01, math.floor(cap * FIT * (cores or _cores()) / needed * 100) / 100)


def _measure(bench, template: str, count: int, shape: int) -> dict:
    s = bench.sizes
    receiver = bench.receiver
    url = postgres.create(f"scale_{shape}", template)
    receiver.reset()
    workers, groups = [], []
    try:
        for i in range(count):
            worker = Worker(url)
            workers.append(worker)
            group = cgroups.CpuGroup(f"soapservice-bench-{os.getpid()}-{i}", s.scale_cpu)
            groups.append(group)
            group.add(worker.pid)
        total = (s.scale_deliveries // shape) * shape
        receiver.wait_count(min(200, total // 20), 180)
        meter = CpuMeter(lambda: [receiver.pid, *(w.pid for w in workers),
                                  *postgres.backend_pids(url)])
        started = time.monotonic()
        first = receiver.stats()["count"]
        delivered = [w.delivered() or 0.0 for w in workers]
        cpu = [process_seconds(w.pid) or 0.0 for w in workers]
        while time.monotonic() < started + s.scale_seconds:
            time.sleep(0.25)
            if receiver.stats()["count"] >= total:
                break
        last = receiver.stats()["count"]
        elapsed = time.monotonic() - started
        delivered = [(w.delivered() or 0.0) - d for w, d in zip(workers, delivered,
                                                                strict=True)]
        cpu = [(process_seconds(w.pid) or 0.0) - c for w, c in zip(workers, cpu,
                                                                   strict=True)]
        meter.stop()
    finally:
        for worker in workers:
            worker.stop()
        for group in groups:
            group.remove()
        postgres.drop(url)
    done = sum(delivered) or 1.0
    spent = sum(cpu) or 1e-9
    if last >= total:
        log(f"scale: the store ran dry ({total} deliveries) before {s.scale_seconds:g} s: "
            "seed more (scale_deliveries)")
    return {"rate": (last - first) / elapsed, "shares": [d / done for d in delivered],
            "cpu_shares": [c / spent for c in cpu],
            "cpu_used": spent / (elapsed * count * s.scale_cpu),
            "cpu_per_1000": meter.per_1000(last - first),
            "machine_busy": meter.machine_cores}
