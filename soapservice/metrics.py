"""Prometheus metrics of one process (``/metrics``): counters bumped on the hot path
(cheap), gauges about the shared store computed only when scraped, in a thread.

Counters are per process (sum them over processes in Prometheus); the store gauges are
the same from every process, since they count the shared outbox.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from soapservice import policy

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()

EVENTS = Counter("soapservice_events_ingested", "Events stored by this process "
                 "(POST /events and the Python function through the server).",
                 registry=REGISTRY)
ATTEMPTS = Counter("soapservice_delivery_attempts", "Delivery attempts made by this "
                   "process, by outcome (success: 2xx; http_error: another status; "
                   "network_error: no answer).", ["outcome"], registry=REGISTRY)
FAILURES = Counter("soapservice_delivery_failures", "Failed delivery attempts made by "
                   "this process, by kind (timeout, tls, refused, dns, target: refused "
                   "address, url: cannot be sent, closed: no or unfinished answer, "
                   "too_large: answer headers over the cap, connect: another connection "
                   "error; 1xx/3xx/4xx/5xx: the answer's status class).", ["kind"],
                   registry=REGISTRY)
LATENCY = Histogram("soapservice_delivery_attempt_seconds", "Duration of delivery "
                    "attempts.", registry=REGISTRY,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
TAKEOVERS = Counter("soapservice_lease_takeovers", "Deliveries this process claimed "
                    "whose previous lease had expired (its worker stalled or died).",
                    registry=REGISTRY)
# Label children looked up once (``labels()`` takes a lock and a dict walk per call).
_OUTCOMES = {o: ATTEMPTS.labels(o) for o in ("success", "http_error", "network_error")}
_FAILED: dict[str, Counter] = {}


def _failed(kind: str):
    child = _FAILED.get(kind)
    if child is None:
        child = _FAILED[kind] = FAILURES.labels(kind)
    return child


def observe_attempt(status: int | None, duration_ms: float, kind: str | None = None
                    ) -> None:
    if status is None:
        outcome = "network_error"
        _failed(kind or "connect").inc()
    elif policy.is_success(status):
        outcome = "success"
    else:
        outcome = "http_error"
        _failed(f"{status // 100}xx").inc()
    _OUTCOMES[outcome].inc()
    LATENCY.observe(duration_ms / 1000.0)


class StoreGauges:
    """Reads the outbox's counts at scrape time (``soapservice.store.stats``)."""

    def collect(self):
        from soapservice.store import stats
        try:
            counts = stats.snapshot(time.time())
        except Exception as exc:  # noqa: BLE001 (a scrape must not fail on the store)
            log.warning("metrics: store unreachable: %s", exc)
            up = GaugeMetricFamily("soapservice_store_up", "1 when the store answered.")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("soapservice_store_up", "1 when the store answered.")
        up.add_metric([], 1)
        yield up
        for key, text in (("due", "Deliveries due and not yet claimed."),
                          ("in_flight", "Deliveries under a lease (being attempted) in "
                                        "any process."),
                          ("buffered", "Deliveries held for inactive webhooks."),
                          ("held", "Deliveries waiting behind an earlier event of the "
                                   "same subscriber to the same URL (due, retried or "
                                   "buffered).")):
            gauge = GaugeMetricFamily(f"soapservice_deliveries_{key}", text)
            gauge.add_metric([], counts[key])
            yield gauge
        gauge = GaugeMetricFamily("soapservice_webhooks_inactive", "Inactive webhooks.")
        gauge.add_metric([], counts["inactive_webhooks"])
        yield gauge
        gauge = GaugeMetricFamily("soapservice_operator_events_backlog", "Operator events "
                                  "not yet delivered to SOAPSERVICE_OPERATOR_WEBHOOK_URL.")
        gauge.add_metric([], counts["operator_backlog"])
        yield gauge


REGISTRY.register(StoreGauges())


def render() -> tuple[bytes, str]:
    """The exposition text and its content type (blocks on the store: use a thread)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def count_takeovers(count: int) -> None:
    TAKEOVERS.inc(count)


class MeteredSender:
    """Wraps the delivery sender: counts each attempt's outcome and duration."""

    def __init__(self, sender):
        self._sender = sender

    def send(self, url, headers, body, **kwargs):
        d = self._sender.send(url, headers, body, **kwargs)

        def observe(result):
            try:
                observe_attempt(result.status, result.duration_ms,
                                getattr(result, "kind", None))
            except Exception:  # noqa: BLE001 (metrics never break a delivery)
                log.exception("metrics: observing an attempt failed")
            return result

        return d.addCallback(observe)

    def __getattr__(self, name):
        return getattr(self._sender, name)
