"""The deactivation notification by e-mail: to a local SMTP server (aiosmtpd) started by
the test, end to end through ``soapservice serve``; retries on a ``task.Clock``; and a
mail server that is down never holds delivery up."""

from __future__ import annotations

import email
import email.policy
import sqlite3
import threading

import pytest
import requests
from twisted.internet import defer, task

from soapservice import auth, notify, store
from soapservice.config import ConfigError, Settings, load_settings
from soapservice.mail import Mailer, SmtpServer
from soapservice.models import Notification
from soapservice.store import accounts, webhooks
from soapservice.store.outbox import Deactivation
from tests.browser import wait_for
from tests.conftest import PASSWORD, free_port
from tests.receiver import Receiver
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


def test_one_mail_per_deactivation_with_its_link(make_server):
    inbox = Inbox().start()
    try:
        env = {"SOAPSERVICE_SMTP_URL": f"smtp://127.0.0.1:{inbox.port}",
               "SOAPSERVICE_MAIL_FROM": "hooks@shop.example"}
        scene = Scene(lambda extra: with_email(make_server, extra | env),
                      events=(SUBSCRIBE, UNSUBSCRIBE))
        try:
            links = {event: scene.deactivate(event, n=2, then=0)
                     for event in (SUBSCRIBE, UNSUBSCRIBE)}
            wait_for(lambda: len(inbox.messages) >= 2, timeout=30, message="two mails")
            wait_for(lambda: all(mailed_at(scene.server).values()),
                     message="mailed_at to be recorded")
            assert len(inbox.messages) == 2
            by_hook = {}
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
                assert f"Webhook {webhook_id} (shop, {event}," in text
                assert "3 consecutive failed attempts" in text
                assert "Buffered events:  2" in text
                assert "connection refused" in text
                assert requests.get(link).status_code == 200  # the mailed link works
            assert {e[0] for e in inbox.envelopes} == {"hooks@shop.example"}
            for link in links.values():  # the token is not in the log
                assert link.rsplit("/", 1)[1] not in scene.server.log()
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
def deactivation(store_url):
    """A stored notification of a deactivated webhook of an account with an e-mail."""
    store.open_store(store_url)
    account = accounts.add("alice", auth.hash_password("pw", n=2**4), "alice@example.test")
    hook = webhooks.create(account.id, "crm", SUBSCRIBE, "http://r/x", "whsec_" + "A" * 32,
                           10)
    event = Deactivation(hook.id, account.id, 1, 3, "connection refused", 2, 1000.0)
    notify.store_notification(event, base_url="http://srv", ttl_sec=86400)
    return event


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


def test_retries_with_backoff_then_records_mailed_at(deactivation):
    clock = task.Clock()
    clock.advance(5000)
    mailer, sent = make_mailer(clock, [False, False, True])
    mailer.after_deactivate(deactivation)
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
    assert b"http://srv/reactivate/" in message


def test_gives_up_after_the_last_retry_and_stops_cleanly(deactivation, caplog):
    clock = task.Clock()
    mailer, sent = make_mailer(clock, [False] * 10)
    mailer.after_deactivate(deactivation)
    for delay in (10.0, 60.0, 300.0, 10_000.0):
        clock.advance(delay)
    assert len(sent) == 4
    assert "giving up on notification" in caplog.text
    assert Notification.get().mailed_at is None
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
    event = Deactivation(hook.id, account.id, 1, 3, "timeout", 0, 1000.0)
    notify.store_notification(event, base_url="http://srv", ttl_sec=86400)
    mailer, sent = make_mailer(task.Clock(), [True])
    mailer.after_deactivate(event)
    assert sent == [] and Notification.get().mailed_at is None
