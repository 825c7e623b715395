"""Account rows: the credentials behind every SOAP call."""

from __future__ import annotations

import time

from soapservice.models import Account


def find(username: str) -> Account | None:
    return Account.get_or_none(Account.username == username)


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


def all_accounts() -> list[Account]:
    return list(Account.select().order_by(Account.username))
