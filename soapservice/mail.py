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

from twisted.application import service
from twisted.internet import defer
from twisted.mail import smtp

from soapservice.config import SmtpServer
from soapservice.store import notifications

log = logging.getLogger(__name__)

# An attempt taken but never recorded (the process died sending) is due again after this.
TAKEN_SEC = 600.0

# Waits before the 2nd, 3rd, ... attempt: about 40 minutes in all, then give up.
RETRY_DELAYS_SEC = (10.0, 60.0, 300.0, 1800.0)
TIMEOUT_SEC = 30.0


@dataclass(frozen=True)
class Mail:
    notification_id: int
    to: str
    subject: str
    text: str
    attempts: int = 0  # failed attempts before this one (a restart resumes the count)
    next_at: float | None = None  # the stored due time of the next attempt


def _when(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def load_mail(notification_id: int) -> Mail | None:
    """The mail of a stored notification (blocking), or None when the account has no
    e-mail address (its mail is then no longer pending) or the notification is gone."""
    found = notifications.for_mail(notification_id)
    if found is None:
        return None
    note, hook = found
    if not (note.account.email or "").strip():
        notifications.record_mail_attempt(note.id, note.mail_attempts, None)
        return None
    webhook_id = note.webhook_id
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
        *([
            "To see what happened (each attempt, what the receiver answered, a chart of "
            "the last days), send a test and resend events, open the customer portal on "
            "this webhook:",
            "",
            f"    {note.portal_link}",
            "",
        ] if note.portal_link else []),
        "-- ",
        "soapservice",
        "",
    ])
    return Mail(note.id, note.account.email.strip(), subject, text, note.mail_attempts,
                note.mail_next_at)


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
        self._active: set[int] = set()  # notifications being mailed or waiting

    def startService(self):
        """Resume the mails a previous run left pending (first attempts not made yet,
        retries waiting), each at its due time."""
        super().startService()
        d = self._run(notifications.mail_pending)
        d.addCallback(self._resume)
        d.addErrback(lambda f: log.error("mail: could not resume pending mail: %s",
                                         f.getTraceback()))

    def _resume(self, pending):
        now = self.reactor.seconds()
        for note_id, next_at in pending:
            if note_id not in self._active:
                self._active.add(note_id)
                self._later(max(0.0, next_at - now), lambda n=note_id: self._mail(n))

    def _later(self, delay, fn):
        def run():
            self._pending.discard(call)
            fn()

        call = self.reactor.callLater(delay, run)
        self._pending.add(call)
        return call

    def stopService(self):
        super().stopService()
        for call in list(self._pending):
            if call.active():
                call.cancel()
        self._pending.clear()
        self._active.clear()

    def after_deactivate(self, event) -> defer.Deferred:
        """The delivery loop's hook (on the reactor, after the commit). Never raises."""
        note_id = getattr(event, "notification_id", None)
        if note_id is None or note_id in self._active:
            return defer.succeed(None)
        self._active.add(note_id)
        return self._mail(note_id)

    def _mail(self, note_id: int) -> defer.Deferred:
        try:
            d = self._run(load_mail, note_id)
        except Exception:
            log.exception("mail: could not start loading notification %d", note_id)
            self._active.discard(note_id)
            return defer.succeed(None)
        d.addCallback(self._first_attempt)
        d.addErrback(lambda f: log.error("mail: notification %d not mailed: %s",
                                         note_id, f.getTraceback()))
        d.addBoth(lambda _: self._active.discard(note_id))
        return d

    def _first_attempt(self, mail: Mail | None):
        if mail is None:
            return None
        message = build_message(mail, self.mail_from, self.reactor.seconds())
        return self._attempt(mail, message, mail.attempts + 1, mail.next_at)

    def _attempt(self, mail: Mail, message: bytes, number: int,
                 expected_next_at: float | None) -> defer.Deferred:
        if not self.running:
            log.warning("mail: stopping; notification %d not mailed", mail.notification_id)
            return defer.succeed(None)
        d = self._run(notifications.take_mail, mail.notification_id, expected_next_at,
                      self.reactor.seconds() + TAKEN_SEC)

        def send(taken):
            if not taken:
                log.info("mail: notification %d is being mailed elsewhere",
                         mail.notification_id)
                return defer.succeed(None)
            return defer.maybeDeferred(self._send, mail.to, message).addCallbacks(
                sent, failed)

        def sent(_):
            log.info("mail: notification %d sent to %s", mail.notification_id, mail.to)
            return self._run(notifications.mark_mailed, mail.notification_id,
                             self.reactor.seconds())

        def failed(failure):
            reason = failure.getErrorMessage()
            if number > len(self.delays):
                log.error("mail: giving up on notification %d to %s after %d attempts: %s",
                          mail.notification_id, mail.to, number, reason)
                return self._run(notifications.record_mail_attempt, mail.notification_id,
                                 number, None)
            delay = self.delays[number - 1]
            log.warning("mail: sending notification %d to %s failed (attempt %d: %s); "
                        "retrying in %g s", mail.notification_id, mail.to, number, reason,
                        delay)
            retried = defer.Deferred()

            next_at = self.reactor.seconds() + delay

            def again():
                self._attempt(mail, message, number + 1, next_at).chainDeferred(retried)

            def persisted(_):
                self._later(delay, again)
                return retried

            # Stored first: a restart before the retry resumes it at the same time.
            return self._run(notifications.record_mail_attempt, mail.notification_id,
                             number, next_at).addCallback(persisted)

        return d.addCallback(send)
