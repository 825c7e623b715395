"""``/metrics`` as Prometheus scrapes it: counters of this process, gauges of the store."""

from __future__ import annotations

import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PASSWORD
from tests.support.receiver import Receiver


def scrape(url) -> dict:
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[sample.name + (f"{{{label}}}" if label else "")] = sample.value
    return values


def test_serve_counts_events_attempts_and_reads_the_store(make_server):
    with Receiver(lambda req: 200 if b'"n":1' in req["body"] else 500) as receiver:
        srv = make_server({"SOAPSERVICE_RETRY_SCHEDULE": "60"})
        for path in ("/ok", "/failing"):
            answer = requests.post(f"{srv.url}/json/CreateWebHook", timeout=30, data={
                "username": "alice", "password": PASSWORD, "app": "crm",
                "event": "optin_finalized", "url": receiver.url + path}).json()
            assert answer["error"] == 0, answer
        for n in (1, 2):
            answer = requests.post(f"{srv.url}/events", timeout=30, headers={
                "Authorization": "Bearer test-ingest-token"}, json={
                "account": "alice", "event": "optin_finalized", "data": {"n": n}})
            assert answer.status_code == 202
        receiver.wait_for(lambda: len(receiver.requests) == 4, what="4 attempts")
        # Outcomes are recorded just after the answers: wait until no lease is held.
        deadline = time.monotonic() + 30
        while (before := scrape(srv.url + "/metrics"))[
                "soapservice_deliveries_in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert before["soapservice_events_ingested_total"] == 2
        assert before['soapservice_delivery_attempts_total{outcome=success}'] == 2
        assert before['soapservice_delivery_attempts_total{outcome=http_error}'] == 2
        assert before["soapservice_delivery_attempt_seconds_count"] == 4
        # The two failed ones wait 60 s for their retry: pending, neither due nor leased.
        assert before["soapservice_deliveries_due"] == 0
        assert before["soapservice_deliveries_in_flight"] == 0
        assert before["soapservice_deliveries_buffered"] == 0
        assert before["soapservice_webhooks_inactive"] == 0
        assert before["soapservice_store_up"] == 1
        assert before["soapservice_lease_takeovers_total"] == 0
