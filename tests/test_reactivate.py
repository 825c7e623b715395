"""The reactivation link of a deactivation notification. End to end: a real server
deactivates webhooks whose receiver is down, and the link from ``soapservice
notifications`` is followed in headless Chromium and with plain HTTP. In process (the
last part): the link's rules (expiry, forged, replaced, deleted, escaping) on the page
resource through StubTreq, with a settable clock."""

from __future__ import annotations

import re

import requests
import zeep

from tests.browser import PHONE, console_errors, screenshot, wait_for
from tests.conftest import PASSWORD, soapservice
from tests.support.receiver import Receiver

FAST = {"SOAPSERVICE_RETRY_SCHEDULE": "0.1,0.1"}
SUBSCRIBE, UNSUBSCRIBE = "optin_finalized", "optout_finalized"


class Scene:
    """A server, a receiver that is down, and webhooks of alice that point at it."""

    def __init__(self, make_server, env=None, events=(SUBSCRIBE,)):
        self.receiver = Receiver().start()
        self.receiver.stop()  # the port stays known; connections are refused
        self.server = make_server({**FAST, **(env or {})})
        self.client = zeep.Client(self.server.url + "/soap?wsdl")
        self.hooks = {}
        for event in events:
            answer = self.client.service.CreateWebHook(
                "alice", PASSWORD, "shop", event, f"{self.receiver.url}/{event}")
            assert answer.error == 0, answer.message
            self.hooks[event] = answer.result.id

    def emit(self, event, n=1, start=0):
        for i in range(start, start + n):
            r = requests.post(self.server.url + "/events", json={
                "account": "alice", "event": event,
                "data": {"subscriber_id": f"s{i}", "n": i, "event": event}},
                headers={"authorization": "Bearer test-ingest-token"}, timeout=10)
            assert r.status_code == 202, r.text

    def hook(self, webhook_id):
        answer = self.client.service.GetWebHooks("alice", PASSWORD, None, None)
        assert answer.error == 0
        found = [h for h in (answer.result.WebHook if answer.result else [])
                 if h.id == webhook_id]
        return found[0] if found else None

    def deactivate(self, event, n=2, then=1):
        """Emit n events, wait for the deactivation, then emit ``then`` more (buffered)."""
        webhook_id = self.hooks[event]
        self.emit(event, n)
        wait_for(lambda: not self.hook(webhook_id).active, timeout=30,
                 message=f"webhook {webhook_id} to be deactivated")
        self.emit(event, then, start=n)
        wait_for(lambda: self.hook(webhook_id).bufferedEvents == n + then, timeout=30,
                 message="the new events to be buffered")
        return self.link(webhook_id)

    def link(self, webhook_id, count=1):
        """The newest link of the webhook, as ``soapservice notifications`` prints it."""
        def found():
            out = soapservice("notifications", env=self.server.env).stdout
            links = re.findall(rf"webhook {webhook_id} .*?reactivate: (\S+)", out, re.S)
            return links if len(links) >= count else None
        links = wait_for(found, timeout=30,
                         message=f"the notification of webhook {webhook_id}")
        assert links[0].startswith(self.server.url + "/reactivate/")
        return links[0]

    def close(self):
        self.receiver.stop()


def by_id(driver, element_id):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.ID, element_id)


def form_of(session, link):
    """GET the page as a browser would (keeping its cookie) and return the form field."""
    page = session.get(link, timeout=10)
    assert page.status_code == 200, page.text
    return re.search(r'name="form" value="([0-9a-f]+)"', page.text).group(1)


def assert_clear_page(response, status, words):
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("text/html")
    assert words.lower() in response.text.lower(), response.text
    assert "Traceback" not in response.text and "twisted" not in response.text.lower()


# ---- in a browser -----------------------------------------------------------------------

def test_link_reactivates_with_and_without_the_buffered_events(make_server, browser):
    scene = Scene(make_server, events=(SUBSCRIBE, UNSUBSCRIBE))
    try:
        replay_link = scene.deactivate(SUBSCRIBE, n=2, then=1)
        discard_link = scene.deactivate(UNSUBSCRIBE, n=1, then=1)
        sub_id, unsub_id = scene.hooks[SUBSCRIBE], scene.hooks[UNSUBSCRIBE]

        browser.get(replay_link)
        assert by_id(browser, "webhook-id").text == str(sub_id)
        assert by_id(browser, "webhook-app").text == "shop"
        assert by_id(browser, "webhook-event").text == SUBSCRIBE
        assert by_id(browser, "webhook-url").text == f"{scene.receiver.url}/{SUBSCRIBE}"
        assert "Connection refused" in by_id(browser, "last-error").text or \
            "refused" in by_id(browser, "last-error").text.lower()
        assert by_id(browser, "buffered").text == "3 buffered events"
        # Two subscribers' deliveries fail side by side (probing starts only after a run
        # of failures), so the run that ends the schedule counts 3 to 6 attempts.
        assert re.search(r"\b[3-6] consecutive failed attempts", by_id(browser, "reason").text)
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
                        by_id(browser, "deactivated-at").text)
        replay_button = by_id(browser, "replay")
        assert replay_button.text == "Reactivate and send the 3 buffered events"
        assert by_id(browser, "discard").text == "Reactivate without them"
        screenshot(browser, "reactivate-page")
        assert console_errors(browser) == []  # nothing blocked by the CSP, no 404s
        # Opening the page (twice) changed nothing.
        browser.refresh()
        hook = scene.hook(sub_id)
        assert not hook.active and hook.bufferedEvents == 3

        scene.receiver.start()  # the receiver is back, on the same port
        by_id(browser, "replay").click()
        wait_for(lambda: by_id(browser, "outcome"), message="the outcome page")
        assert browser.find_element("tag name", "h1").text == f"Webhook {sub_id} is active again"
        assert "3 buffered events are being sent now" in by_id(browser, "outcome").text
        screenshot(browser, "reactivate-done-replay")
        hook = scene.hook(sub_id)
        assert hook.active and hook.failureCount == 0 and hook.bufferedEvents == 0
        scene.receiver.wait_for(lambda: len(scene.receiver.delivered(f"/{SUBSCRIBE}")) == 3,
                                what="the 3 replayed events")
        assert sorted(e["n"] for e in scene.receiver.delivered(f"/{SUBSCRIBE}")) == [0, 1, 2]

        # The second webhook, on a phone-sized window, with the keyboard.
        browser.set_window_size(*PHONE)
        browser.get(discard_link)
        assert by_id(browser, "replay").text == "Reactivate and send the 2 buffered events"
        screenshot(browser, "reactivate-page-phone")
        from selenium.webdriver.common.keys import Keys
        discard = by_id(browser, "discard")
        discard.send_keys(Keys.ENTER)
        wait_for(lambda: by_id(browser, "outcome"), message="the outcome page")
        assert "2 buffered events were discarded" in by_id(browser, "outcome").text
        screenshot(browser, "reactivate-done-discard")
        hook = scene.hook(unsub_id)
        assert hook.active and hook.failureCount == 0 and hook.bufferedEvents == 0
        # Only events after the reactivation arrive.
        scene.emit(UNSUBSCRIBE, 1, start=10)
        scene.receiver.wait_for(lambda: scene.receiver.delivered(f"/{UNSUBSCRIBE}"),
                                what="the new event")
        assert [e["n"] for e in scene.receiver.delivered(f"/{UNSUBSCRIBE}")] == [10]

        # The used link now says so.
        browser.get(replay_link)
        assert "already active" in browser.find_element("tag name", "h1").text
        screenshot(browser, "reactivate-used-link")
    finally:
        scene.close()


def test_a_post_from_another_site_is_refused_in_the_browser(make_server, browser, tmp_path):
    scene = Scene(make_server)
    try:
        link = scene.deactivate(SUBSCRIBE, n=1, then=0)
        browser.get(link)  # the victim has the page's cookie
        field = by_id(browser, "reactivate-form").find_element(
            "name", "form").get_attribute("value")
        # Another origin (the receiver's port) hosts a page posting to the link.
        import http.server
        import threading
        page = (f'<form id="f" method="post" action="{link}">'
                f'<input name="form" value="{field}"><input name="replay" value="1"></form>'
                '<script>document.getElementById("f").submit()</script>').encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            browser.get(f"http://127.0.0.1:{httpd.server_address[1]}/")
            wait_for(lambda: browser.current_url.startswith(scene.server.url),
                     message="the cross-site form to post")
            wait_for(lambda: "Request refused" in browser.find_element("tag name", "h1").text,
                     message="the refusal page")
            screenshot(browser, "reactivate-cross-site-refused")
        finally:
            httpd.shutdown()
            httpd.server_close()
        hook = scene.hook(scene.hooks[SUBSCRIBE])
        assert not hook.active and hook.bufferedEvents == 1
    finally:
        scene.close()


# ---- over plain HTTP ----------------------------------------------------------------------

def test_get_changes_nothing_and_only_a_same_site_post_acts_once(make_server):
    scene = Scene(make_server)
    try:
        link = scene.deactivate(SUBSCRIBE, n=2, then=0)
        webhook_id = scene.hooks[SUBSCRIBE]
        session = requests.Session()
        for _ in range(3):  # a mail scanner, a preview, the person
            field = form_of(session, link)
        page = session.get(link, timeout=10)
        assert page.headers["cache-control"] == "no-store"
        assert "form-action 'self'" in page.headers["content-security-policy"]
        # The token in the page's address never goes out in a Referer (stylesheet, POST).
        assert page.headers["referrer-policy"] == "no-referrer"
        cookie = page.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie.replace("strict", "Strict")
        hook = scene.hook(webhook_id)
        assert not hook.active and hook.bufferedEvents == 2

        origin = scene.server.url
        refused = [
            session.post(link, data={"form": field, "replay": "1"},
                         headers={"origin": "http://evil.example"}),
            session.post(link, data={"form": field, "replay": "1"},
                         headers={"referer": "http://evil.example/page"}),
            session.post(link, data={"form": field, "replay": "1"},
                         headers={"origin": "null", "sec-fetch-site": "cross-site"}),
            session.post(link, data={"form": field, "replay": "1"},
                         headers={"origin": origin, "sec-fetch-site": "same-site"}),
            # the right origin, but no cookie (another browser) or a forged field
            requests.post(link, data={"form": field, "replay": "1"},
                          headers={"origin": origin}),
            session.post(link, data={"form": "0" * 64, "replay": "1"},
                         headers={"origin": origin}),
            session.post(link, data={"replay": "1"}, headers={"origin": origin}),
        ]
        for response in refused:
            assert_clear_page(response, 403, "Request refused")
        assert_clear_page(session.post(link, data={"form": field, "replay": "2"},
                                       headers={"origin": origin}), 400, "Choose an action")
        hook = scene.hook(webhook_id)
        assert not hook.active and hook.bufferedEvents == 2

        # What a browser sends under no-referrer for the page's own form.
        done = session.post(link, data={"form": field, "replay": "0"},
                            headers={"origin": "null", "sec-fetch-site": "same-origin"})
        assert done.status_code == 200, done.text
        assert "2 buffered events were discarded" in done.text
        hook = scene.hook(webhook_id)
        assert hook.active and hook.bufferedEvents == 0

        # Replayed after use: refused, and the GET says why.
        again = session.post(link, data={"form": field, "replay": "1"},
                             headers={"origin": origin})
        assert_clear_page(again, 410, "already active")
        assert_clear_page(session.get(link), 410, "already active")
        assert "/reactivate/***" in scene.server.log()
        assert link.rsplit("/", 1)[1] not in scene.server.log()
    finally:
        scene.close()


# Forged, tampered, expired, replaced and deleted links: in process, below.


def test_two_clicks_at_once_act_once(make_server):
    scene = Scene(make_server)
    try:
        link = scene.deactivate(SUBSCRIBE, n=2, then=0)
        session = requests.Session()
        field = form_of(session, link)
        from concurrent.futures import ThreadPoolExecutor

        def post(replay):
            return session.post(link, data={"form": field, "replay": replay},
                                headers={"origin": scene.server.url}, timeout=30)

        scene.receiver.start()  # back up, so a replay is delivered at once
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(post, ["1", "0", "1", "0"]))
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 410, 410, 410], codes
        [done] = [a for a in answers if a.status_code == 200]
        hook = scene.hook(scene.hooks[SUBSCRIBE])
        assert hook.active
        if "being sent now" in done.text:  # the replay won: both events arrive once
            scene.receiver.wait_for(lambda: len(scene.receiver.delivered()) == 2,
                                    what="the replayed events")
        else:
            assert "2 buffered events were discarded" in done.text
    finally:
        scene.close()


# ---- in process: the link's rules on a settable clock, through StubTreq -----------------

class Link:
    """The reactivation page of ``serve`` in process (no socket, store calls inline, the
    time settable), and a webhook of alice left deactivated as an outcome leaves it
    (inactive, ordinal moved on, its notification stored by ``notify``)."""

    NOW = 1_800_000_000.0
    BASE = "http://soapservice.test"

    def __init__(self, ttl_sec=3600.0, app="shop", url="http://127.0.0.1:9/hook"):
        from treq.testing import StubTreq
        from twisted.web import resource

        from soapservice.api import WebhookAPI
        from soapservice.config import Settings
        from soapservice.web.reactivate import Reactivate
        from tests.support.doubles import InlinePool, InlineReactor, SettableTime
        self.settings = Settings(allow_private_targets=True, public_url=self.BASE)
        self.api, self.ttl_sec, self.time = WebhookAPI(self.settings), ttl_sec, SettableTime(
            self.NOW)
        self.page = Reactivate(self.settings, InlineReactor(), InlinePool(), clock=self.time)
        self.woken: list[int] = []
        self.page.on_webhook_activated.append(self.woken.append)
        root = resource.Resource()
        root.putChild(b"reactivate", self.page)
        self.stub = StubTreq(root)
        created = self.api.create_webhook("alice", "pw", app, SUBSCRIBE, url)
        assert created.error == 0, created.message
        self.webhook_id = created.result["id"]

    def deactivate(self, buffered=0) -> str:
        """Deactivate the webhook, buffer ``buffered`` events, return the newest link."""
        from types import SimpleNamespace

        from peewee import fn

        from soapservice import ingest, notify
        from soapservice.models import Webhook
        Webhook.update(active=False, deactivations=fn.COALESCE(Webhook.deactivations, 0) + 1,
                       deactivated_at=self.time.now, failure_count=3,
                       last_error="connection refused").where(
            Webhook.id == self.webhook_id).execute()
        hook = Webhook.get_by_id(self.webhook_id)
        for i in range(buffered):
            ingest.emit("alice", SUBSCRIBE, {"subscriber_id": f"s{i}"}, window_sec=86400,
                        now=self.time.now)
        notify.store_notification(SimpleNamespace(
            webhook_id=hook.id, account_id=hook.account_id, deactivations=hook.deactivations,
            at=self.time.now, last_error=hook.last_error, failure_count=3,
            buffered=buffered, held=0), base_url=self.BASE, ttl_sec=self.ttl_sec)
        from soapservice.store import notifications
        return notifications.listing("alice")[0].link

    def request(self, method, link, **kwargs):
        from tests.test_web_inprocess import result_of
        d = getattr(self.stub, method)(link, **kwargs)
        self.stub.flush()
        response = result_of(d)
        response.text = result_of(response.content()).decode()
        return response

    def form(self, link):
        """GET the page; the form field and the cookie a browser would keep."""
        page = self.request("get", link)
        assert page.code == 200, page.text
        cookie = page.headers.getRawHeaders("set-cookie")[0].split(";")[0]
        return re.search(r'name="form" value="([0-9a-f]+)"', page.text).group(1), cookie

    def post(self, link, cookie, **data):
        return self.request("post", link, data=data, headers={
            "cookie": cookie, "origin": self.BASE})

    def hook(self):
        from soapservice.store import webhooks
        return webhooks.get_by_id(self.webhook_id)


def assert_page(response, status, words):
    assert response.code == status, (response.code, response.text[:500])
    assert words.lower() in response.text.lower(), response.text


def test_the_page_escapes_what_the_store_holds(alice):
    scene = Link(app="<b>shop</b>", url="http://127.0.0.1:9/h?a=1&b=2")
    link = scene.deactivate(buffered=2)
    page = scene.request("get", link)
    assert_page(page, 200, "Reactivate webhook")
    assert "<b>" not in page.text
    assert "&lt;b&gt;shop&lt;/b&gt;" in page.text and "a=1&amp;b=2" in page.text
    assert '<dd id="buffered">2 buffered events</dd>' in page.text
    field, cookie = scene.form(link)
    done = scene.post(link, cookie, form=field, replay="1")
    assert_page(done, 200, "2 buffered events are being sent now")
    assert "&lt;b&gt;shop&lt;/b&gt;" in done.text and "<b>" not in done.text
    assert scene.hook().active and scene.woken == [scene.webhook_id]


def test_a_link_expires_at_its_ttl_and_then_changes_nothing(alice):
    scene = Link(ttl_sec=60)
    link = scene.deactivate()
    field, cookie = scene.form(link)
    scene.time.now += 60
    assert scene.request("get", link).code == 200  # up to its last second
    scene.time.now += 1
    assert_page(scene.request("get", link), 410, "expired")
    assert_page(scene.post(link, cookie, form=field, replay="1"), 410, "expired")
    assert not scene.hook().active


def test_forged_tampered_replaced_and_deleted_links(alice):
    scene = Link()
    link = scene.deactivate()
    base, token = link.rsplit("/", 1)
    payload, mac = token.split(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    for bad in ("x", "eyJ.abc", f"{flipped}.{mac}", f"{payload}.{mac[:-2]}",
                f"{payload}.{mac}x", f"{token}/more", "%00%ff", "a" * 3000):
        assert_page(scene.request("get", f"{base}/{bad}"), 404, "not valid")
        assert_page(scene.request("post", f"{base}/{bad}", data={"replay": "1"}), 404,
                    "not valid")
    assert_page(scene.request("get", base + "/"), 404, "not valid")

    # Replaced: reactivated through the API, then deactivated anew.
    assert scene.api.activate_webhook("alice", "pw", str(scene.webhook_id)).error == 0
    assert_page(scene.request("get", link), 410, "already active")
    newer = scene.deactivate()
    assert newer != link
    assert_page(scene.request("get", link), 410, "replaced")
    assert scene.request("get", newer).code == 200

    # Deleted.
    assert scene.api.delete_webhook("alice", "pw", str(scene.webhook_id)).error == 0
    assert_page(scene.request("get", newer), 410, "no longer exists")
