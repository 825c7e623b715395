"""replay: memory growth while ActivateWebHook(replayEvents=1) replays a big buffer."""

from __future__ import annotations

import time

from bench.cpu import CpuMeter
from bench.processes import Serve, log
from bench.stores import new_store, seed_deliveries

TARGETS = {"replay_rss_mb": ("<=", 100.0)}
FIGURES = {"replay_rss_mb": "peak RSS growth while 100,000 buffered events replay (MB)",
           "replay_per_s": "replayed deliveries/s",
           "replay_cpu_per_1000": "CPU s per 1,000 deliveries: serve + receiver"}


def run(bench):
    s = bench.sizes
    db = bench.path("replay")
    urls = bench.hook_urls(s.replay_webhooks, "r")
    ids = new_store(db, urls, inactive=urls)
    seed_deliveries(db, ids, s.replay_events // s.replay_webhooks, state=1, age_sec=600)
    total = (s.replay_events // s.replay_webhooks) * s.replay_webhooks
    server = Serve(db)
    try:
        server.soap("GetWebHooks")
        time.sleep(0.5)  # settle: the figure is growth over the idle server
        before = server.hwm_mb()
        bench.receiver.reset()
        meter = CpuMeter([server.pid, bench.receiver.pid])
        started = time.monotonic()
        for hook_id in ids:
            answer = server.soap("ActivateWebHook", webhookId=hook_id, replayEvents=1)
            if "replayedEvents" not in answer:
                raise RuntimeError(f"ActivateWebHook answered {answer[:500]}")
        rate = bench.receiver.drain_rate(total, max(300.0, total / 20))
        meter.stop()
        elapsed = time.monotonic() - started
        after = server.hwm_mb()
    finally:
        server.stop()
    bench.record(
        {"replay_rss_mb": after - before, "replay_rss_before_mb": before,
         "replay_per_s": rate, "replay_seconds": elapsed,
         "replay_cpu_per_1000": meter.per_1000(total)},
        baseline=(
            f"{total} buffered events over {s.replay_webhooks} inactive webhooks, seeded "
            "in SQL; ActivateWebHook(replayEvents=1) on each; growth of the server's VmHWM "
            "(/proc/PID/status) from idle until the receiver held every replayed event."))
    log(f"replay: {total} events in {elapsed:.1f} s, VmHWM {before:.0f} -> {after:.0f} MB")
