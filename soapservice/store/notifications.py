"""Notifications of deactivations and the state of their mail (blocking; call from a
pool thread). A notification is created inside the outcome transaction
(``notify.store_notification`` calls :func:`create`); its mail is due while
``mail_next_at`` is set."""

from __future__ import annotations

from soapservice.models import Account, Notification, Webhook


def create(*, account_id: int, webhook_id: int, reason: str, last_error: str | None,
           failure_count: int, buffered: int, held: int, link: str, at: float,
           mail: bool, portal_link: str | None = None) -> int:
    """Store one notification and return its id; ``mail``: its mail is due now."""
    return Notification.create(
        account=account_id, webhook_id=webhook_id, reason=reason, last_error=last_error,
        failure_count=failure_count, buffered_events=buffered, held_events=held,
        link=link, portal_link=portal_link, created_at=at,
        mail_next_at=at if mail else None).id


def listing(account_name: str | None = None) -> list[Notification]:
    """Every notification (of one account), newest first, with its account."""
    query = Notification.select(Notification, Account).join(Account)
    if account_name is not None:
        query = query.where(Account.username == account_name)
    return list(query.order_by(Notification.created_at.desc(), Notification.id.desc()))


def latest_reason(webhook_id: int) -> str | None:
    """The reason of the webhook's newest notification (None: it has none)."""
    note = (Notification.select(Notification.reason)
            .where(Notification.webhook_id == webhook_id)
            .order_by(Notification.created_at.desc(), Notification.id.desc()).first())
    return None if note is None else note.reason


def for_mail(notification_id: int) -> tuple[Notification, Webhook | None] | None:
    """The notification with its account, and its webhook if it still exists."""
    note = (Notification.select(Notification, Account).join(Account)
            .where(Notification.id == notification_id).first())
    if note is None:
        return None
    return note, Webhook.get_or_none(Webhook.id == note.webhook_id)


def mail_pending() -> list[tuple[int, float]]:
    """(notification id, when its next mail attempt is due) of every mail not yet sent
    nor given up, oldest first: what a restarted mailer resumes."""
    rows = (Notification.select(Notification.id, Notification.mail_next_at)
            .where(Notification.mail_next_at.is_null(False) & Notification.mailed_at.is_null())
            .order_by(Notification.mail_next_at, Notification.id).tuples())
    return [(note_id, next_at) for note_id, next_at in rows]


def take_mail(notification_id: int, expected_next_at: float | None, until: float) -> bool:
    """Take the next mail attempt (compare and set): True when this process may send,
    and its attempt is then due again at ``until`` should the process die meanwhile;
    False when another process (or an earlier attempt) already moved it on."""
    due = (Notification.mail_next_at.is_null() if expected_next_at is None
           else Notification.mail_next_at == expected_next_at)
    return Notification.update(mail_next_at=until).where(
        (Notification.id == notification_id) & due
        & Notification.mailed_at.is_null()).execute() == 1


def record_mail_attempt(notification_id: int, attempts: int, next_at: float | None) -> None:
    """A failed attempt: how many were made, and when the next is due (None: give up)."""
    Notification.update(mail_attempts=attempts, mail_next_at=next_at).where(
        Notification.id == notification_id).execute()


def mark_mailed(notification_id: int, at: float) -> None:
    Notification.update(mailed_at=at, mail_next_at=None).where(
        Notification.id == notification_id).execute()
