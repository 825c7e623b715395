"""The deactivation notification by e-mail: to a local SMTP server (aiosmtpd) started by
the test, end to end through ``soapservice serve``; retries on a ``task.Clock``; and a
mail server that is down never holds delivery up."""

from __future__ import annotations

import email
import email.policy
import re
import sqlite3
import threading
import time
from dataclasses import replace

import pytest
import requests
from twisted.internet import defer, task

from soapservice import auth, notify, portal_links, store
from soapservice.config import ConfigError, Settings, load_settings
from soapservice.mail import Mailer, SmtpServer
from soapservice.models import Notification
from soapservice.store import accounts, webhooks
from soapservice.store.outbox import Deactivation
from tests.browser import wait_for
from tests.conftest import PASSWORD, free_port
from tests.support.receiver import Receiver
from tests.test_reactivate import SUBSCRIBE, UNSUBSCRIBE, Scene


class Inbox:
    """An SMTP server on 127.0.0.1 that keeps every message it accepts."""

    def __init__(self, port=None):
        from aiosmtpd.controller import Controller
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        inbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                message = email.message_from_bytes(envelope.original_content or
                                                   envelope.content,
                                                   policy=email.policy.default)
                with inbox.lock:
                    inbox.messages.append(message)
                    inbox.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                return "250 OK"

        self.port = port or free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()


def mailed_at(server) -> dict[int, float | None]:
    with sqlite3.connect(server.db_path) as db:
        return dict(db.execute("SELECT webhook_id, mailed_at FROM notification"))


def with_email(make_server, env, address="alice@example.test"):
    """Like make_server, with alice's e-mail address set (bob has none)."""
    srv = make_server(env, accounts=(), start=False)
    srv.add_account("alice", PASSWORD, email=address)
    srv.add_account("bob", PASSWORD)
    return srv.start()


def deactivate_with_queue(scene, event, n):
    """Deactivate the webhook of ``event`` with ``n`` events undelivered at that moment,
    and return its link. The notification counts what is undelivered when the schedule
    runs out; with the receiver down from the start, the first event's three attempts
    (0.1 s apart) could all fail before the next POST /events was committed on a loaded
    machine, and the mail then rightly said "1 buffered event" (the later event went to
    the buffer after the deactivation). So the receiver is up and holds every request
    until all ``n`` events are accepted, then goes down: no attempt can fail before
    (the delivery timeout is longer than the POSTs may take), so all ``n`` are queued
    when the third attempt fails."""
    gate = threading.Event()

    def hold_then_hang_up(request):
        gate.wait(120)
        return None  # the receiver drops the connection

    scene.receiver.answer = hold_then_hang_up
    scene.receiver.start()  # the same port
    try:
        scene.emit(event, n)
    finally:
        scene.receiver.stop()  # held requests fail; from now on: connection refused
        gate.set()
    webhook_id = scene.hooks[event]
    wait_for(lambda: not scene.hook(webhook_id).active, timeout=60,
             message=f"webhook {webhook_id} to be deactivated")
    assert scene.hook(webhook_id).bufferedEvents == n
    return scene.link(webhook_id)


def test_one_mail_per_deactivation_with_its_link(make_server):
    inbox = Inbox().start()
    try:
        env = {"SOAPSERVICE_SMTP_URL": f"smtp://127.0.0.1:{inbox.port}",
               "SOAPSERVICE_MAIL_FROM": "hooks@shop.example",
               "SOAPSERVICE_DELIVERY_TIMEOUT": "60"}  # > the POSTs' 10 s (see above)
        scene = Scene(lambda extra: with_email(make_server, extra | env),
                      events=(SUBSCRIBE, UNSUBSCRIBE))
        try:
            links = {event: deactivate_with_queue(scene, event, 2)
                     for event in (SUBSCRIBE, UNSUBSCRIBE)}
            wait_for(lambda: len(inbox.messages) >= 2, timeout=60, message="two mails")
            wait_for(lambda: all(mailed_at(scene.server).values()), timeout=60,
                     message="mailed_at to be recorded")
            assert len(inbox.messages) == 2
            by_hook, portal_tokens = {}, []
            for message in inbox.messages:
                assert message["From"] == "hooks@shop.example"
                assert message["To"] == "alice@example.test", message.as_string()
                by_hook[message["Subject"]] = message.get_content()
            for event, link in links.items():
                webhook_id = scene.hooks[event]
                subject = (f"soapservice: webhook {webhook_id} (shop, {event}) was "
                           "deactivated; 2 buffered events")
                assert subject in by_hook, list(by_hook)
                text = by_hook[subject]
                assert link in text.split()
                # ... and the portal link, opening the portal on this webhook
                portal = [w for w in text.split() if "/portal/link/" in w]
                assert len(portal) == 1 and portal[0].startswith(scene.server.url), text
                portal_tokens.append((webhook_id, portal_links.token_of(portal[0])))
                assert f"Webhook {webhook_id} (shop, {event}," in text
                # both events' deliveries were attempted (different subscribers; no
                # probing before a run of failures): 3 to 6 consecutive failures
                assert re.search(r"\b[3-6] consecutive failed attempts", text), text
                assert "Buffered events:  2" in text
                assert "connection refused" in text
                assert requests.get(link).status_code == 200  # the mailed link works
            assert {e[0] for e in inbox.envelopes} == {"hooks@shop.example"}
            for link in links.values():  # the token is not in the log
                assert link.rsplit("/", 1)[1] not in scene.server.log()
            with sqlite3.connect(scene.server.db_path) as db:
                key = bytes.fromhex(db.execute("SELECT value FROM setting WHERE key = ?",
                                               (notify.KEY_NAME,)).fetchone()[0])
            for webhook_id, token in portal_tokens:
                assert portal_links.verify(key, token, time.time()).webhook_id == webhook_id
                assert token not in scene.server.log()
        finally:
            scene.close()
    finally:
        inbox.stop()


def test_mail_server_down_never_holds_delivery_up(make_server):
    dead_smtp = free_port()
    env = {"SOAPSERVICE_SMTP_URL": f"smtp://127.0.0.1:{dead_smtp}"}
    healthy = Receiver().start()
    scene = Scene(lambda extra: with_email(make_server, extra | env))
    try:
        answer = scene.client.service.CreateWebHook("alice", PASSWORD, "shop", UNSUBSCRIBE,
                                                    healthy.url + "/ok")
        assert answer.error == 0
        scene.deactivate(SUBSCRIBE, n=2, then=1)
        wait_for(lambda: "mail: sending notification" in scene.server.log(),
                 message="the failed mail attempt in the log")
        assert "retrying in 10 s" in scene.server.log()
        # Delivery goes on, to the healthy webhook and into the buffer of the dead one.
        for i in range(3):
            scene.emit(UNSUBSCRIBE, 1, start=i)
        healthy.wait_for(lambda: len(healthy.delivered("/ok")) == 3, what="3 deliveries")
        scene.emit(SUBSCRIBE, 1, start=20)
        wait_for(lambda: scene.hook(scene.hooks[SUBSCRIBE]).bufferedEvents == 4,
                 message="the buffered event")
        assert mailed_at(scene.server) == {scene.hooks[SUBSCRIBE]: None}
        assert requests.get(scene.server.url + "/healthz").status_code == 200
    finally:
        scene.close()
        healthy.stop()


def test_smtp_url_is_checked_at_start():
    assert load_settings({"SOAPSERVICE_SMTP_URL": "smtp://mail:2525"}).smtp_url == \
        "smtp://mail:2525"
    for bad in ("mail:25", "http://mail", "smtp://", "smtp://mail:x", "smtp://mail/path"):
        with pytest.raises(ConfigError, match="SOAPSERVICE_SMTP_URL"):
            load_settings({"SOAPSERVICE_SMTP_URL": bad})
    server = SmtpServer.from_url("smtp://user%40x:p%3Ass@mail.example:587")
    assert server == SmtpServer("mail.example", 587, "user@x", "p:ss")
    assert SmtpServer.from_url("smtp://127.0.0.1").port == 25


# ---- retries, on a task.Clock ---------------------------------------------------------------

@pytest.fixture
def deactivate(store_url):
    """Stores the notification of a deactivated webhook of an account with an e-mail,
    its mail due (as the outcome transaction does), and returns the deactivation."""
    store.open_store(store_url)
    account = accounts.add("alice", auth.hash_password("pw", n=2**4), "alice@example.test")
    hook = webhooks.create(account.id, "crm", SUBSCRIBE, "http://r/x", "whsec_" + "A" * 32,
                           10)

    def deactivate(at=1000.0):
        event = Deactivation(hook.id, account.id, 1, 3, "connection refused", 2, at)
        note_id = notify.store_notification(event, base_url="http://srv", ttl_sec=86400,
                                            mail=True)
        return replace(event, notification_id=note_id)
    return deactivate


def make_mailer(clock, outcomes):
    """A mailer whose sends fail or succeed as ``outcomes`` says (True: sent)."""
    sent = []

    def send(to, message):
        ok = outcomes.pop(0)
        sent.append((to, message))
        return defer.succeed(None) if ok else defer.fail(ConnectionRefusedError("down"))

    mailer = Mailer(Settings(smtp_url="smtp://127.0.0.1:1"), clock,
                    lambda fn, *a: defer.maybeDeferred(fn, *a), send=send,
                    delays=(10.0, 60.0, 300.0))
    mailer.startService()
    return mailer, sent


def test_retries_with_backoff_then_records_mailed_at(deactivate):
    clock = task.Clock()
    clock.advance(5000)
    mailer, sent = make_mailer(clock, [False, False, True])
    mailer.after_deactivate(deactivate(clock.seconds()))
    assert len(sent) == 1
    clock.advance(9.9)
    assert len(sent) == 1
    clock.advance(0.1)
    assert len(sent) == 2
    clock.advance(59.9)
    assert len(sent) == 2
    clock.advance(0.1)
    assert len(sent) == 3
    assert Notification.get().mailed_at == 5070.0
    to, message = sent[0]
    assert to == "alice@example.test" and sent[2][1] == message
    text = email.message_from_bytes(message, policy=email.policy.default).get_content()
    reactivate, portal = (next(w for w in text.split() if w.startswith(f"http://srv/{p}/"))
                          for p in ("reactivate", "portal/link"))
    assert "open the customer portal on this webhook" in text
    named = portal_links.verify(store.server_secret(notify.KEY_NAME),
                                portal_links.token_of(portal), 5000.0)
    note = Notification.get()
    assert (named.account_id, named.webhook_id) == (note.account_id, note.webhook_id)
    assert (note.link, note.portal_link) == (reactivate, portal)


def test_gives_up_after_the_last_retry_and_stops_cleanly(deactivate, caplog):
    clock = task.Clock()
    mailer, sent = make_mailer(clock, [False] * 10)
    deactivation = deactivate(clock.seconds())
    mailer.after_deactivate(deactivation)
    for delay in (10.0, 60.0, 300.0, 10_000.0):
        clock.advance(delay)
    assert len(sent) == 4
    assert "giving up on notification" in caplog.text
    assert Notification.get().mailed_at is None
    assert Notification.get().mail_next_at is None  # given up: a restart sends nothing
    # A retry pending at shutdown is cancelled.
    mailer2, sent2 = make_mailer(clock, [False] * 10)
    mailer2.after_deactivate(deactivation)
    mailer2.stopService()
    assert not clock.getDelayedCalls()


def test_no_mail_without_an_address(store_url):
    store.open_store(store_url)
    account = accounts.add("bob", auth.hash_password("pw", n=2**4))
    hook = webhooks.create(account.id, "crm", SUBSCRIBE, "http://r/x", "whsec_" + "A" * 32,
                           10)
    mailer, sent = make_mailer(task.Clock(), [True])
    event = Deactivation(hook.id, account.id, 1, 3, "timeout", 0, 1000.0)
    note_id = notify.store_notification(event, base_url="http://srv", ttl_sec=86400,
                                        mail=True)
    mailer.after_deactivate(replace(event, notification_id=note_id))
    assert sent == [] and Notification.get().mailed_at is None
    assert Notification.get().mail_next_at is None  # nothing left pending


def test_a_restart_resumes_a_retry_at_its_time(deactivate):
    clock = task.Clock()
    clock.advance(5000)
    mailer, sent = make_mailer(clock, [False])
    mailer.after_deactivate(deactivate(clock.seconds()))
    assert len(sent) == 1
    note = Notification.get()
    assert (note.mail_attempts, note.mail_next_at) == (1, 5010.0)
    mailer.stopService()  # the process stops; the retry timer is gone with it
    clock.advance(4)
    restarted, sent_after = make_mailer(clock, [True])  # starts: resumes what is pending
    clock.advance(5.9)
    assert sent_after == []
    clock.advance(0.1)
    assert len(sent_after) == 1 and b"http://srv/reactivate/" in sent_after[0][1]
    note = Notification.get()
    assert (note.mailed_at, note.mail_next_at) == (5010.0, None)
    restarted.stopService()
    clock.advance(10_000)
    assert len(sent_after) == 1  # mailed once


def test_a_mail_due_at_a_crash_is_sent_once_by_the_next_start(deactivate):
    clock = task.Clock()
    clock.advance(2000)
    deactivate(clock.seconds())
    # The deactivation was committed, then the process died before mailing: the new
    # process's mailer sends it at start, and a second mailer (another worker) does not.
    first, sent = make_mailer(clock, [True])
    second, sent2 = make_mailer(clock, [True])
    clock.advance(0)
    assert len(sent) + len(sent2) == 1
    assert Notification.get().mailed_at == 2000.0
    first.stopService()
    second.stopService()
