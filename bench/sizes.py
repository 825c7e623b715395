"""How big each scenario runs: the full sizes of ``make bench`` and a tiny smoke set
(``--quick``, what the test runs). Full sizes keep ``make bench`` within ~25 minutes on
the 2-core machine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    rounds: int = 3
    # delivery: drained per round (events x webhooks), with an old-rows backlog
    deliveries: int = 20_000
    webhooks: int = 20
    old_delivered: int = 1_000_000
    old_buffered: int = 100_000
    # soap, ingest
    soap_clients: int = 16
    ingest_clients: int = 16
    load_seconds: float = 2.0
    load_rounds: int = 5
    # latency, isolation
    latency_events: int = 200
    isolation_events: int = 60
    isolation_interval: float = 0.1
    # replay
    replay_events: int = 100_000
    replay_webhooks: int = 20
    # workers (PostgreSQL, 1-3 uncapped workers)
    worker_deliveries: int = 5_000
    # backlog: due rows behind failing webhooks, another account's fresh events
    backlog_rows: int = 1_000_000
    backlog_webhooks: int = 10
    backlog_subscribers: int = 10_000
    backlog_events: int = 300
    backlog_rate: float = 20.0
    # hanging: hanging + healthy webhooks on one event, posted from the first second
    hanging_webhooks: int = 50
    hanging_healthy: int = 10
    hanging_events: int = 100
    hanging_rate: float = 5.0
    # flaky: one of five webhooks failing at random, events over subscribers
    flaky_seconds: float = 60.0
    flaky_rate: float = 100.0
    flaky_subscribers: int = 200
    flaky_webhooks: int = 5
    flaky_drain_sec: float = 60.0
    flaky_percents: tuple[int, ...] = (10, 30)
    flaky_report_sec: float = 30.0  # load and drain of the reported-only 30 % run
    # purge: expired delivered events in the store when serve starts
    purge_rows: int = 500_000
    purge_rate: float = 50.0
    purge_wait_sec: float = 120.0
    # claim cost: claims through the store API at this many pending rows
    claim_rows: int = 1_000_000
    claim_repeats: int = 20
    # webhooks10k: accounts x webhooks each, sustained deliveries/s
    wide_accounts: int = 1000
    wide_per_account: int = 10
    wide_deliveries_per_s: float = 500.0
    wide_seconds: float = 20.0
    # scale: capped workers on PostgreSQL
    scale_workers: tuple[int, ...] = (1, 2, 4, 8)
    scale_cpu: float = 0.2
    scale_shapes: tuple[int, ...] = (20, 200)
    scale_deliveries: int = 40_000
    scale_seconds: float = 10.0
    # portal: one account's webhooks, the first with this many deliveries over 7 days
    portal_webhooks: int = 100
    portal_deliveries: int = 100_000
    portal_other_deliveries: int = 1_000
    portal_repeats: int = 20


QUICK = Sizes(
    rounds=1, deliveries=200, webhooks=4, old_delivered=2000, old_buffered=200,
    soap_clients=4, ingest_clients=4, load_seconds=0.5, load_rounds=1, latency_events=10,
    isolation_events=10, isolation_interval=0.01, replay_events=200, replay_webhooks=2,
    worker_deliveries=200,
    backlog_rows=2000, backlog_webhooks=2, backlog_subscribers=50, backlog_events=10,
    hanging_webhooks=3, hanging_healthy=2, hanging_events=10, hanging_rate=20.0,
    flaky_seconds=2.0, flaky_rate=20.0, flaky_subscribers=10, flaky_drain_sec=3.0,
    flaky_report_sec=2.0,
    purge_rows=2000, purge_rate=20.0, purge_wait_sec=8.0,
    claim_rows=2000, claim_repeats=3,
    wide_accounts=20, wide_per_account=2, wide_deliveries_per_s=40.0, wide_seconds=2.0,
    scale_workers=(1, 2), scale_shapes=(4,), scale_deliveries=400, scale_seconds=1.0,
    portal_webhooks=5, portal_deliveries=2000, portal_other_deliveries=50, portal_repeats=3,
)
