"""purge: 500,000 expired delivered events in the store when ``serve`` starts (with the
retention at 7 days and ``SOAPSERVICE_PURGE_INTERVAL_SEC`` short, so the purge runs
during the scenario), under a steady ingest and delivery load: the largest ingest or
delivery gap while it runs, how long it took, and the file size before and after; vs
the same load on a store without expired rows."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.context import all_latencies, paced_events
from bench.processes import log
from bench.stores import Store, copy, file_mb, ratio, remove, sqlite_url

TARGETS = {"purge_gap_ms": ("<=", 200.0), "purge_file_ratio": ("<", 1.0)}
FIGURES = {
    "purge_gap_ms": "largest POST /events wait or 202 -> receiver time while "
                    "500,000 expired rows are purged (ms)",
    "purge_run_gap_ms": "the same over the whole run, start-up included (ms)",
    "purge_baseline_gap_ms": "the whole-run figure with no expired rows (ms)",
    "purge_gap_ratio": "purge gap vs that baseline",
    "purge_seconds": "serve start -> every expired row gone (s; n/a: not within the wait)",
    "purge_file_before_mb": "store file + WAL before (MB)",
    "purge_file_after_mb": "store file + WAL after the purge (MB)",
    "purge_file_ratio": "file after / before",
    "purge_cpu_per_1000": "CPU s per 1,000 deliveries during the purge (serve + receiver)",
}
RETENTION_DAYS = 7
PURGE_INTERVAL_SEC = 60
FIRST_PURGE_SEC = 30.0  # soapservice.delivery: the first purge, after start


def run(bench):
    s = bench.sizes
    base_db, full_db = bench.path("purge-empty"), bench.path("purge-full")
    remove(base_db)
    with Store(sqlite_url(base_db)) as store:
        store.webhooks("alice", bench.hook_urls(1, "p"))
    copy(base_db, full_db)
    started = time.monotonic()
    last_old = _seed_expired(full_db, s.purge_rows)
    log(f"purge: seeded {s.purge_rows} expired rows in {time.monotonic() - started:.0f} s")
    baseline = _measure(bench, copy(base_db, bench.path("purge")), None,
                        min(20.0, s.purge_wait_sec))
    loaded = _measure(bench, copy(full_db, bench.path("purge")), last_old, s.purge_wait_sec)
    log(f"purge: gap {loaded['window_gap']:.0f} ms while purging, {loaded['gap']:.0f} ms "
        f"in the whole run (baseline {baseline['gap']:.0f} ms); purge "
        f"{loaded['purge_seconds']:.1f} s; file {loaded['before']:.0f} -> "
        f"{loaded['after']:.0f} MB")
    bench.record(
        {"purge_gap_ms": loaded["window_gap"], "purge_baseline_gap_ms": baseline["gap"],
         "purge_gap_ratio": ratio(loaded["window_gap"], baseline["gap"]),
         "purge_run_gap_ms": loaded["gap"],
         "purge_ingest_max_ms": loaded["ingest_max"],
         "purge_delivery_max_ms": loaded["delivery_max"],
         "purge_seconds": loaded["purge_seconds"],
         "purge_file_before_mb": loaded["before"], "purge_file_after_mb": loaded["after"],
         "purge_file_ratio": ratio(loaded["after"], loaded["before"]),
         "purge_missing": loaded["missing"],
         "purge_cpu_per_1000": loaded["cpu_per_1000"]},
        baseline=(
            f"{s.purge_rows} events with a delivered delivery each, {RETENTION_DAYS + 1} days "
            "old (seeded through the store's ingest, then marked delivered), in the store "
            f"when serve starts with SOAPSERVICE_RETENTION_DAYS={RETENTION_DAYS} and "
            f"SOAPSERVICE_PURGE_INTERVAL_SEC={PURGE_INTERVAL_SEC}; events at "
            f"{s.purge_rate:g}/s to one healthy webhook from the start until 5 s after "
            f"the purge finished (at most {s.purge_wait_sec:g} s). Gap = the largest POST "
            "/events time (from when it was due) or 202 -> receiver time of the events "
            f"answered while the purge ran ({FIRST_PURGE_SEC:g} s after start until the "
            "expired rows were gone; purge_run_gap_ms: the whole run, start-up included). "
            "File = the "
            "SQLite file + WAL on disk, before start and after the purge. Baseline: the "
            "same load on the store without the expired rows, same run."))


def _seed_expired(path: Path, rows: int) -> int:
    """Expired delivered events; returns the last one's id."""
    from soapservice.models import DELIVERED, Delivery, Event, db
    old = time.time() - (RETENTION_DAYS + 1) * 86400
    with Store(sqlite_url(path)) as store:
        store.emit_events("alice", rows, at=old, first_k=10**8)
        with db.atomic():
            Delivery.update(state=DELIVERED, attempts=1, delivered_at=old).execute()
        last = Event.select(Event.id).order_by(Event.id.desc()).limit(1).scalar()
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return last


def _purged(path: Path, last_old: int) -> bool:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT 1 FROM event WHERE id <= ? LIMIT 1",
                           (last_old,)).fetchone() is None
    except sqlite3.OperationalError:
        return False
    finally:
        con.close()


def _measure(bench, db: Path, last_old: int | None, wait: float) -> dict:
    s = bench.sizes
    receiver = bench.receiver
    purging = last_old is not None
    before = file_mb(db)
    receiver.reset()
    stop_file = Path(tempfile.mkdtemp()) / "stop"
    purge_seconds = float("nan")
    env = {"SOAPSERVICE_RETENTION_DAYS": RETENTION_DAYS,
           "SOAPSERVICE_PURGE_INTERVAL_SEC": PURGE_INTERVAL_SEC}
    try:
        with bench.serving(db, env=env) as server:
            started = time.monotonic()
            meter = bench.meter(server)
            load = paced_events(server, rate=s.purge_rate, count=int(s.purge_rate * wait) + 1,
                                connections=8, stop_file=str(stop_file))
            deadline = started + wait
            while time.monotonic() < deadline:
                time.sleep(1.0)
                if last_old is None:
                    continue
                if _purged(db, last_old):
                    purge_seconds = time.monotonic() - started
                    deadline = min(deadline, time.monotonic() + 5.0)
                    last_old = None
            stop_file.touch()
            result = load.result(timeout=120)
            receiver.wait_count(result["statuses"].get("202", 0), 30, strict=False)
            meter.stop()
            arrivals = receiver.arrivals()
            final = time.time()
            time.sleep(2.0)  # a checkpoint or vacuum step after the last chunk
            after = file_mb(db)
    finally:
        stop_file.unlink(missing_ok=True)
        os.rmdir(stop_file.parent)
    returned = result["returned"]
    latencies, missing = all_latencies(arrivals, returned,
                                       bench.hook_paths(bench.hook_urls(1, "p")), final)
    # Each event's gap (the POST's wait or its 202 -> receiver time) with when it was
    # answered (s after serve started): the purge window is FIRST_PURGE_SEC -> purged.
    wall0 = time.time() - (time.monotonic() - started)
    sent = [k for k in range(len(returned)) if returned[k]]
    gaps = [(max(result["waits"][k] * 1000, latency), returned[k] - wall0)
            for k, latency in zip(sent, latencies, strict=True)]
    if purging:  # the purge's window (to the end of the run if it did not finish)
        end = purge_seconds if purge_seconds == purge_seconds else float("inf")
        window = [g for g, at in gaps if FIRST_PURGE_SEC - 1 <= at <= end + 1]
    else:  # the baseline: its whole run
        window = [g for g, _at in gaps]
    log("purge: worst gaps (ms @ s after start): " + ", ".join(
        f"{g:.0f}@{at:.1f}" for g, at in sorted(gaps, reverse=True)[:5]))
    ingest_max = max(result["waits"], default=0.0) * 1000
    delivery_max = max(latencies, default=0.0)
    return {"gap": max(ingest_max, delivery_max), "window_gap": max(window, default=0.0),
            "ingest_max": ingest_max, "delivery_max": delivery_max,
            "purge_seconds": purge_seconds, "before": before, "after": after,
            "missing": missing, "cpu_per_1000": meter.per_1000(len(latencies) - missing)}
