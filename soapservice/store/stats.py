"""Counts for operators (the gauges of ``/metrics``): a few indexed COUNT queries, run
when the metrics are scraped, never on the delivery path."""

from __future__ import annotations

from soapservice.models import BUFFERED, PENDING, Delivery, Webhook
from soapservice.store import operator, operator_events


def snapshot(now: float) -> dict[str, int]:
    """Deliveries due now (not leased), in flight (under an unexpired lease, in any
    process), buffered, held (behind an earlier event of their subscriber); webhooks
    inactive; operator events not yet delivered."""
    # (a claim leaves next_at where it was: a row is in flight while its lease runs)
    due = Delivery.select().where((Delivery.state == PENDING) & (Delivery.next_at <= now)
                                  & (Delivery.lease_until.is_null()
                                     | (Delivery.lease_until <= now))).count()
    in_flight = Delivery.select().where((Delivery.state == PENDING)
                                        & (Delivery.lease_until > now)).count()
    buffered = Delivery.select().where(Delivery.state == BUFFERED).count()
    inactive = Webhook.select().where(Webhook.active == False).count()  # noqa: E712
    held = Delivery.select().where(operator.held_condition()).count()
    return {"due": due, "in_flight": in_flight, "buffered": buffered,
            "inactive_webhooks": inactive, "held": held,
            "operator_backlog": operator_events.backlog()}
