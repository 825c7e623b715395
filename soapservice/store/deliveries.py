"""The delivery log a customer reads (GetWebHookDeliveries): one webhook's deliveries,
newest first, each with its latest attempts."""

from __future__ import annotations

from dataclasses import dataclass

from soapservice.models import BUFFERED, DELIVERED, PENDING, READY, Attempt, Delivery, Event

ATTEMPTS_SHOWN = 10

# What a customer filters on. "failed": pending after at least one failed attempt;
# "held": pending behind an earlier undelivered event of the same subscriber and URL.
STATES = ("pending", "delivered", "failed", "buffered", "held")  # as operations.DELIVERY_STATES


@dataclass(frozen=True)
class DeliveryRow:
    delivery: Delivery
    event: Event
    state: str
    attempts: list[Attempt]


def _state_condition(state: str):
    if state == "delivered":
        return Delivery.state == DELIVERED
    if state == "buffered":
        return Delivery.state == BUFFERED
    if state == "failed":
        return (Delivery.state == PENDING) & (Delivery.attempts > 0)
    if state == "held":  # not the head of its ordering key (store.heads keeps it)
        return (Delivery.state == PENDING) & (Delivery.blocked != READY)
    return Delivery.state == PENDING


def _state_of(delivery: Delivery) -> str:
    if delivery.state == DELIVERED:
        return "delivered"
    if delivery.state == BUFFERED:
        return "buffered"
    if delivery.blocked != READY:
        return "held"
    return "failed" if delivery.attempts > 0 else "pending"


def page_query(webhook_id: int, state: str | None, limit: int, before_id: int | None):
    """The SELECT of one page of the log (its deliveries with their events)."""
    query = (Delivery.select(Delivery, Event)
             .join(Event, on=(Delivery.event == Event.id))
             .where(Delivery.webhook == webhook_id))
    if state is not None:
        query = query.where(_state_condition(state))
    if before_id is not None:
        query = query.where(Delivery.id < before_id)
    return query.order_by(Delivery.id.desc()).limit(limit)


def for_webhook(webhook_id: int, state: str | None, limit: int,
                before_id: int | None) -> list[DeliveryRow]:
    """Up to ``limit`` deliveries of the webhook, newest first (by id), older than
    ``before_id`` when given, with their latest :data:`ATTEMPTS_SHOWN` attempts. Read
    from the (webhook, id) or (webhook, state, id) index: a page costs about its rows
    however long the log (bench scenario ``portal``)."""
    rows = list(page_query(webhook_id, state, limit, before_id))
    attempts: dict[int, list[Attempt]] = {row.id: [] for row in rows}
    if rows:
        for attempt in (Attempt.select().where(Attempt.delivery_id.in_(list(attempts)))
                        .order_by(Attempt.at.desc(), Attempt.id.desc())):
            shown = attempts[attempt.delivery_id]
            if len(shown) < ATTEMPTS_SHOWN:
                shown.append(attempt)
    return [DeliveryRow(row, row.event, _state_of(row), attempts[row.id])
            for row in rows]
