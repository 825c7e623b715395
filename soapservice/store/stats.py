"""Counts for operators (the gauges of ``/metrics``): a few indexed COUNT queries, run
when the metrics are scraped, never on the delivery path."""

from __future__ import annotations

from soapservice.models import BUFFERED, PENDING, Delivery, Webhook


def snapshot(now: float) -> dict[str, int]:
    """Deliveries due now (not leased), in flight (under an unexpired lease, in any
    process), buffered; webhooks inactive."""
    due = Delivery.select().where((Delivery.state == PENDING)
                                  & (Delivery.next_at <= now)).count()
    in_flight = Delivery.select().where((Delivery.state == PENDING) & (Delivery.next_at > now)
                                        & Delivery.lease_token.is_null(False)).count()
    buffered = Delivery.select().where(Delivery.state == BUFFERED).count()
    inactive = Webhook.select().where(Webhook.active == False).count()  # noqa: E712
    return {"due": due, "in_flight": in_flight, "buffered": buffered,
            "inactive_webhooks": inactive}
