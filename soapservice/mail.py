"""The deactivation notification by e-mail, sent with Twisted's own SMTP client.

Off the hot path: the delivery loop calls :meth:`Mailer.after_deactivate` on the reactor
once the deactivation is committed; the notification is loaded in a pool thread, sent
through ``SOAPSERVICE_SMTP_URL`` (``smtp://[user:password@]host[:port]``) and its
``mailed_at`` recorded. A mail server that is down is retried a few times with backoff
and logged; nothing here can block or break delivery (every failure ends in the log).
A notification whose account has no e-mail address is only stored.
"""

from __future__ import annotations

import io
import logging
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as DEFAULT_POLICY
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

from twisted.application import service
from twisted.internet import defer
from twisted.mail import smtp

from soapservice.models import Account, Notification, Webhook

log = logging.getLogger(__name__)

# Waits before the 2nd, 3rd, ... attempt: about 40 minutes in all, then give up.
RETRY_DELAYS_SEC = (10.0, 60.0, 300.0, 1800.0)
TIMEOUT_SEC = 30.0


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """``smtp://[user:password@]host[:port]`` (port 25 by default); else ValueError."""
        parts = urlsplit(url.strip())
        if parts.scheme != "smtp" or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError("expected smtp://host:port")
        port = parts.port or 25  # raises ValueError for a bad port
        return cls(parts.hostname, port, unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)


@dataclass(frozen=True)
class Mail:
    notification_id: int
    to: str
    subject: str
    text: str


def _when(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def load_mail(webhook_id: int, at: float) -> Mail | None:
    """The mail of the notification stored for this deactivation (blocking), or None
    when the account has no e-mail address (or the notification is gone)."""
    note = (Notification.select(Notification, Account).join(Account)
            .where((Notification.webhook_id == webhook_id) & (Notification.created_at == at))
            .order_by(Notification.id.desc()).first())
    if note is None or not (note.account.email or "").strip():
        return None
    hook = Webhook.get_or_none(Webhook.id == webhook_id)
    name = f"webhook {webhook_id}" + (f" ({hook.app}, {hook.event})" if hook else "")
    events = f"{note.buffered_events} buffered event" + ("" if note.buffered_events == 1
                                                          else "s")
    subject = f"soapservice: {name} was deactivated; {events}"
    text = "\n".join([
        f"Hello {note.account.username},",
        "",
        note.reason,
        "",
        f"Deactivated:      {_when(note.created_at)}",
        f"Failed attempts:  {note.failure_count}",
        f"Last error:       {note.last_error or 'none recorded'}",
        f"Buffered events:  {note.buffered_events} (kept until you reactivate or delete it)",
        "",
        "To reactivate it, open this link and choose whether to send the buffered "
        "events or not (opening it changes nothing by itself):",
        "",
        f"    {note.link}",
        "",
        "Or call ActivateWebHook through the API.",
        "",
        "-- ",
        "soapservice",
        "",
    ])
    return Mail(note.id, note.account.email.strip(), subject, text)


def build_message(mail: Mail, mail_from: str, now: float) -> bytes:
    # Plain LF line ends: Twisted's SMTP client turns each LF into CRLF on the wire.
    message = EmailMessage(policy=DEFAULT_POLICY)
    message["From"] = mail_from
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(now, usegmt=True)
    message["Message-ID"] = make_msgid("soapservice", domain=mail_from.rpartition("@")[2]
                                       or socket.getfqdn())
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text)
    return message.as_bytes()


def mark_mailed(notification_id: int, at: float) -> None:
    Notification.update(mailed_at=at).where(Notification.id == notification_id).execute()


def smtp_send(reactor, server: SmtpServer, mail_from: str, to: str, message: bytes,
              timeout: float = TIMEOUT_SEC) -> defer.Deferred:
    """One SMTP transaction with ``twisted.mail.smtp`` (no retries here: the caller
    retries with backoff). STARTTLS is used when the server offers it."""
    done = defer.Deferred()
    factory = smtp.ESMTPSenderFactory(
        server.username, server.password, mail_from, [to], io.BytesIO(message), done,
        retries=0, timeout=timeout, heloFallback=True,
        requireAuthentication=server.username is not None, requireTransportSecurity=False)
    factory.noisy = False
    reactor.connectTCP(server.host, server.port, factory, timeout=timeout)
    return done


class Mailer(service.Service):
    """Mails notifications; ``run_in_pool(fn, *args)`` runs store work off the reactor."""

    name = "mailer"

    def __init__(self, settings, reactor, run_in_pool, send=None,
                 delays=RETRY_DELAYS_SEC):
        self.server = SmtpServer.from_url(settings.smtp_url)
        self.mail_from = settings.mail_from
        self.reactor = reactor
        self._run = run_in_pool
        self._send = send or (lambda to, message: smtp_send(
            reactor, self.server, self.mail_from, to, message))
        self.delays = tuple(delays)
        self._pending: set = set()  # retry timers, cancelled at stop

    def stopService(self):
        super().stopService()
        for call in list(self._pending):
            if call.active():
                call.cancel()
        self._pending.clear()

    def after_deactivate(self, event) -> defer.Deferred:
        """The delivery loop's hook (on the reactor, after the commit). Never raises."""
        try:
            d = self._run(load_mail, event.webhook_id, event.at)
        except Exception:
            log.exception("mail: could not start loading the notification")
            return defer.succeed(None)
        d.addCallback(self._first_attempt)
        d.addErrback(lambda f: log.error("mail: notification of webhook %d not mailed: %s",
                                         event.webhook_id, f.getTraceback()))
        return d

    def _first_attempt(self, mail: Mail | None):
        if mail is None:
            return None
        message = build_message(mail, self.mail_from, self.reactor.seconds())
        return self._attempt(mail, message, 1)

    def _attempt(self, mail: Mail, message: bytes, number: int) -> defer.Deferred:
        if not self.running:
            log.warning("mail: stopping; notification %d not mailed", mail.notification_id)
            return defer.succeed(None)
        d = defer.maybeDeferred(self._send, mail.to, message)

        def sent(_):
            log.info("mail: notification %d sent to %s", mail.notification_id, mail.to)
            return self._run(mark_mailed, mail.notification_id, self.reactor.seconds())

        def failed(failure):
            reason = failure.getErrorMessage()
            if number > len(self.delays):
                log.error("mail: giving up on notification %d to %s after %d attempts: %s",
                          mail.notification_id, mail.to, number, reason)
                return None
            delay = self.delays[number - 1]
            log.warning("mail: sending notification %d to %s failed (attempt %d: %s); "
                        "retrying in %g s", mail.notification_id, mail.to, number, reason,
                        delay)
            retried = defer.Deferred()

            def again():
                self._pending.discard(call)
                self._attempt(mail, message, number + 1).chainDeferred(retried)

            call = self.reactor.callLater(delay, again)
            self._pending.add(call)
            return retried

        return d.addCallbacks(sent, failed)
