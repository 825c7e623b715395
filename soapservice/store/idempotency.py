"""Idempotent ingest: an event stored once per (account, Idempotency-Key) within a day.

The unique index on (account, key) decides between racing processes: the loser's
transaction (its event included) rolls back and it answers the winner's event."""

from __future__ import annotations

import hashlib

from peewee import IntegrityError

from soapservice.models import IdempotencyKey
from soapservice.store import write_transaction
from soapservice.store.accounts import find as find_account
from soapservice.store.events import UnknownAccount, store_event

KEEP_SEC = 24 * 3600


class Conflict(Exception):
    """The key was used for another event or other data within the day."""


def fingerprint(event: str, body: str) -> str:
    return hashlib.sha256(f"{event}\n{body}".encode()).hexdigest()


def store_event_once(account_name: str, event: str, body: str, subscriber: str | None,
                     key: str, now: float, window_sec: float) -> tuple[int, int, bool]:
    """(event id, webhooks queued, duplicate): a new event, or the one stored earlier
    under ``key`` (duplicate True); :class:`Conflict` when ``key`` carried other data."""
    account = find_account(account_name)
    if account is None:
        raise UnknownAccount(account_name)
    digest = fingerprint(event, body)
    for _ in range(3):
        earlier = _earlier(account.id, key, now)
        if earlier is not None:
            if earlier.fingerprint != digest:
                raise Conflict(key)
            return earlier.event_id, earlier.queued, True
        try:
            with write_transaction():
                purge(now)  # keys older than a day, this one's included (the index serves)
                event_id, queued = store_event(account_name, event, body, subscriber, now,
                                               window_sec)
                IdempotencyKey.insert(account=account.id, key=key, fingerprint=digest,
                                      event_id=event_id, queued=queued,
                                      created_at=now).execute()
                return event_id, queued, False
        except IntegrityError:
            continue  # another process stored it first: answer its event
    raise RuntimeError(f"idempotency key {key!r} neither stored nor found")


def _earlier(account_id: int, key: str, now: float) -> IdempotencyKey | None:
    return (IdempotencyKey.select()
            .where((IdempotencyKey.account == account_id) & (IdempotencyKey.key == key)
                   & (IdempotencyKey.created_at >= now - KEEP_SEC)).first())


def purge(now: float) -> int:
    """Forget keys older than a day."""
    return IdempotencyKey.delete().where(IdempotencyKey.created_at < now - KEEP_SEC).execute()
