"""Account rows: the credentials behind every SOAP call."""

from __future__ import annotations

import time

from soapservice.models import Account
from soapservice.store.prepared import Prepared

_BY_NAME = Prepared(Account, lambda username: Account.select().where(
    Account.username == username))


def find(username: str) -> Account | None:
    """The account named ``username`` (read on every API call: prepared SQL)."""
    found = _BY_NAME.rows(username)
    return found[0] if found else None


def get(account_id: int) -> Account | None:
    return Account.get_or_none(Account.id == account_id)


def add(username: str, password_hash: str, email: str | None = None) -> Account:
    return Account.create(username=username, password_hash=password_hash, email=email,
                          created_at=time.time())


def set_password(username: str, password_hash: str) -> bool:
    return Account.update(password_hash=password_hash).where(
        Account.username == username).execute() > 0


def remove(username: str) -> bool:
    account = find(username)
    if account is None:
        return False
    account.delete_instance(recursive=True)
    return True


# The hidden account of the operator's webhook (store/operator_events.py), and the
# prefix no customer account may have.
SYSTEM_PREFIX = "~"


def all_accounts() -> list[Account]:
    """Customer accounts (not the system account of operator events)."""
    return list(Account.select().where(~Account.username.startswith(SYSTEM_PREFIX))
                .order_by(Account.username))
