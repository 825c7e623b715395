"""docs/grafana-dashboard.json is built from the metrics the service exposes: every
series a panel queries is one that ``/metrics`` serves, with the labels it has."""

from __future__ import annotations

import json
import re

from prometheus_client.parser import text_string_to_metric_families

from soapservice import metrics
from tests.conftest import ROOT

DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"


def served_samples() -> dict[str, set[str]]:
    text, _ = metrics.render()
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def test_every_panel_queries_served_metrics(alice):
    dashboard = json.loads(DASHBOARD.read_text())
    metrics.observe_attempt(None, 5.0, "timeout")  # labelled counters appear once used
    served = served_samples()
    assert "soapservice_deliveries_held" in served
    assert "soapservice_operator_events_backlog" in served
    queried = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name, labels in re.findall(r"(soapservice_[a-z_]+)(\{[^}]*\})?", target["expr"]):
                assert name in served, (panel["title"], name)
                for label in re.findall(r"([a-z_]+)\s*!?=", labels):
                    assert label in served[name], (panel["title"], name, label)
                queried.add(name)
            for label in re.findall(r"by \(([a-z_, ]+)\)", target["expr"]):
                for name in re.findall(r"(soapservice_[a-z_]+)", target["expr"]):
                    for one in label.split(","):
                        assert one.strip() == "le" or one.strip() in served[name], (
                            panel["title"], name, one)
    # Every store gauge and process counter has a panel.
    for name in ("soapservice_delivery_attempts_total", "soapservice_deliveries_due",
                 "soapservice_deliveries_in_flight", "soapservice_deliveries_held",
                 "soapservice_deliveries_buffered", "soapservice_webhooks_inactive",
                 "soapservice_operator_events_backlog", "soapservice_store_up",
                 "soapservice_lease_takeovers_total", "soapservice_events_ingested_total",
                 "soapservice_delivery_attempt_seconds_bucket",
                 "soapservice_delivery_failures_total"):
        assert name in queried, name


def test_panels_do_not_overlap():
    cells = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        pos = panel["gridPos"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & mine, panel["title"]
        cells |= mine
