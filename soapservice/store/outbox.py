"""The outbox: events, their deliveries, claims under a lease, outcomes, the buffer.

Its rooms: ``store.events`` (ingest), ``store.heads`` (who may go next in each ordering
key), ``store.claims`` (due heads under a lease, shared fairly), ``store.outcomes``
(attempts, retries, deactivation), ``store.retention`` (the purge). This module keeps
the names the rest of the service calls, and the operators' attempt log.
"""

from __future__ import annotations

from soapservice.models import Account, Attempt, Webhook
from soapservice.store.claims import (  # noqa: F401 (the outbox's public names)
    Claim,
    claim_due,
    next_due_at,
    release,
    release_orphans,
)
from soapservice.store.events import UnknownAccount, store_event, store_events  # noqa: F401
from soapservice.store.outcomes import Deactivation, Outcome, record_outcomes  # noqa: F401
from soapservice.store.retention import purge  # noqa: F401


def recent_attempts(account_name: str, webhook_id: int | None = None, limit: int = 50):
    query = (Attempt.select(Attempt, Webhook.url)
             .join(Webhook, on=(Attempt.webhook_id == Webhook.id))
             .join(Account, on=(Webhook.account == Account.id))
             .where(Account.username == account_name))
    if webhook_id is not None:
        query = query.where(Attempt.webhook_id == webhook_id)
    return list(query.order_by(Attempt.at.desc(), Attempt.id.desc()).limit(limit))
