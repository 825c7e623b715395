"""The customer portal end to end: one real server for the module, real receivers on
127.0.0.1, headless Chromium signing in and clicking as a customer would (screenshots of
each page at 1280 and 390 px under tests/artifacts/), plus plain HTTP for what a browser
would not send (cross-site posts, forged fields)."""

from __future__ import annotations

import re

import pytest
import requests

from tests.browser import (
    DESKTOP,
    PHONE,
    console_errors,
    page_status,
    screenshot,
    wait_for,
)
from tests.conftest import PASSWORD, Server
from tests.support.receiver import Receiver
from tests.support.server import server_fixture

TOKEN = "test-ingest-token"
# /down answers 503 with Retry-After: an hour: the webhook is paused after one failed
# attempt and stays active ("failing"); /gone answers 410: deactivated at once.
ENV = {"SOAPSERVICE_RETRY_SCHEDULE": "3600"}
PAUSE = (503, {"Retry-After": "3600"})


class Scene:
    def __init__(self, server: Server, receiver: Receiver):
        self.server, self.receiver = server, receiver
        self.answers = {"/ok": 200, "/down": PAUSE, "/gone": 410}
        receiver.answer = lambda req: self.answers.get(req["path"].split("?")[0], 200)

    def json(self, operation, user="alice", **params):
        r = requests.post(f"{self.server.url}/json/{operation}", timeout=30,
                          data={"username": user, "password": PASSWORD, **params})
        assert r.status_code == 200, r.text
        return r.json()

    def create(self, path, event="optin_finalized", user="alice", app="shop"):
        answer = self.json("CreateWebHook", user=user, app=app, event=event,
                           url=f"{self.receiver.url}{path}")
        assert answer["error"] == 0, answer
        return answer["result"]["id"]

    def emit(self, event, n=1, user="alice", start=0):
        for i in range(start, start + n):
            r = requests.post(self.server.url + "/events", timeout=10, json={
                "account": user, "event": event,
                "data": {"subscriber_id": f"s{i}", "n": i}},
                headers={"authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 202, r.text

    def hook(self, hook_id, user="alice"):
        hooks = self.json("GetWebHooks", user=user)["result"] or []
        found = [h for h in hooks if h["id"] == hook_id]
        return found[0] if found else None

    def requests_to(self, path):
        with self.receiver.lock:
            return [r for r in self.receiver.requests if r["path"] == path]


@server_fixture(scope="module")
def scene(tmp_path_factory):
    receiver = Receiver().start()
    server = Server(tmp_path_factory.mktemp("portal"), ENV)
    for user in ("alice", "bob"):
        server.add_account(user)
    server.start()
    s = Scene(server, receiver)
    s.ok = s.create("/ok")                      # healthy: delivers
    s.down = s.create("/down", event="optout_finalized")  # failing: 503, paused an hour
    s.gone = s.create("/gone", event="profilemanager_finalized")     # inactive: 410
    s.bobs = s.create("/bob", user="bob")
    s.emit("optin_finalized", 2)
    s.emit("optout_finalized", 1)
    s.emit("profilemanager_finalized", 1)
    wait_for(lambda: len(s.requests_to("/ok")) == 2, timeout=30, message="2 deliveries")
    wait_for(lambda: s.hook(s.down)["failureCount"] == 1, timeout=30, message="a failure")
    wait_for(lambda: not s.hook(s.gone)["active"], timeout=30, message="the 410 to deactivate")
    s.emit("profilemanager_finalized", 2, start=1)  # buffered behind the deactivation
    wait_for(lambda: s.hook(s.gone)["bufferedEvents"] == 3, timeout=30,
             message=f"3 buffered (the one answered 410 and 2 more): {s.hook(s.gone)}")
    yield s
    server.stop()
    receiver.stop()


def by_id(driver, ident):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.ID, ident)


def submit(driver, button):
    """Click ``button`` and wait for the page it posts to (the old page gone)."""
    from selenium.webdriver.support import expected_conditions
    old = driver.find_element("tag name", "html")
    button.click()
    wait_for(lambda: expected_conditions.staleness_of(old)(driver), message="the next page")
    wait_for(lambda: driver.execute_script("return document.readyState") == "complete",
             message="the page to load")


def outcome(driver):
    return by_id(driver, "outcome").text


def shots(driver, name):
    """The page at 1280 px and at 390 px; neither scrolls sideways."""
    for size, label in ((DESKTOP, "1280"), (PHONE, "390")):
        driver.set_window_size(*size)
        width = driver.execute_script("return document.documentElement.scrollWidth")
        client = driver.execute_script("return document.documentElement.clientWidth")
        assert width <= client, f"{name} at {label} px scrolls sideways ({width} > {client})"
        screenshot(driver, f"portal-{name}-{label}")
    driver.set_window_size(*DESKTOP)
    assert console_errors(driver) == []


def sign_in(driver, url, user="alice", password=PASSWORD):
    driver.get(url + "/portal")
    by_id(driver, "username").clear()
    by_id(driver, "username").send_keys(user)
    by_id(driver, "password").send_keys(password)
    submit(driver, by_id(driver, "sign-in"))


def test_sign_in_then_the_overview_and_the_webhook_page_show_what_happened(scene, browser):
    url = scene.server.url
    sign_in(browser, url, password="not it")
    assert "Wrong username or password." in by_id(browser, "sign-in-error").text
    # The labels name the fields (screen readers), and the username is kept.
    assert browser.find_element("css selector", "label[for=username]").text == "Username"
    assert by_id(browser, "username").get_attribute("value") == "alice"
    shots(browser, "sign-in")
    sign_in(browser, url)
    wait_for(lambda: by_id(browser, "webhooks"), message="the overview")
    assert by_id(browser, "who").text == "alice"

    def row(hook_id):
        return by_id(browser, f"hook-{hook_id}")

    assert row(scene.ok).find_element("class name", "health").text == "healthy"
    down = row(scene.down)
    assert down.find_element("class name", "health").text == "failing"
    failures = scene.hook(scene.down)["failureCount"]
    assert down.find_element("class name", "failures").text == str(failures)
    assert "HTTP 503" in down.find_element("class name", "last-failure").text
    gone = row(scene.gone)
    assert gone.find_element("class name", "health").text == "inactive"
    assert gone.find_element("class name", "buffered").text == "3"
    assert "never" in row(scene.ok).find_element("class name", "last-failure").text
    assert f"hook-{scene.bobs}" not in browser.page_source  # bob's is not listed
    shots(browser, "overview")

    down.find_element("class name", "hook-link").click()
    wait_for(lambda: by_id(browser, "deliveries"), message="the webhook page")
    assert by_id(browser, "webhook-url").text == f"{scene.receiver.url}/down"
    log = by_id(browser, "deliveries")
    first = log.find_elements("css selector", "tbody tr")[0]
    assert first.find_element("class name", "state").text == "failed"
    assert first.find_element("class name", "last-status").text == "503"
    first.find_element("tag name", "summary").click()  # the attempts, opened by keyboard too
    attempts = first.find_elements("css selector", "ol.attempts li")
    assert len(attempts) == failures == 1 and "503" in attempts[0].text
    assert first.find_element("class name", "snippet").text == "ok"  # the receiver's body
    shots(browser, "webhook")
    # The filter: only delivered ones (none here).
    from selenium.webdriver.support.ui import Select
    Select(by_id(browser, "state")).select_by_value("delivered")
    by_id(browser, "filter").click()
    wait_for(lambda: by_id(browser, "no-deliveries"), message="the filtered log")
    assert "state=delivered" in browser.current_url

    # The charts' numbers are the store's: each attempt GetWebHookDeliveries lists.
    for hook_id in (scene.down, scene.ok):
        browser.get(f"{url}/portal/webhooks/{hook_id}")
        attempts = [a for d in scene.json("GetWebHookDeliveries", webhookId=hook_id)["result"]
                    for a in d["attempts"]]
        ok = sum(1 for a in attempts if a.get("status") and 200 <= a["status"] < 300)
        figure = by_id(browser, "chart-24h")
        shown = (figure.find_element("class name", "chart-ok").text,
                 figure.find_element("class name", "chart-failed").text)
        assert shown == (str(ok), str(len(attempts) - ok)), hook_id
        label = figure.find_element("tag name", "svg").get_attribute("aria-label")
        assert label.endswith(f"{ok} succeeded, {len(attempts) - ok} failed")
        week = by_id(browser, "chart-7d").find_element("class name", "chart-ok").text
        assert week == str(ok)
    assert ok == 2  # the two events /ok received
    overview_label = f"Webhook {scene.ok}, last 24 hours: 2 succeeded, 0 failed"
    browser.get(f"{url}/portal")
    assert row(scene.ok).find_element("css selector", "svg").get_attribute(
        "aria-label") == overview_label

    by_id(browser, "sign-out").click()
    wait_for(lambda: by_id(browser, "sign-in-form"), message="the sign-in page")
    browser.get(f"{url}/portal/webhooks/{scene.down}")
    assert by_id(browser, "sign-in-form")  # signed out: the page asks again

    # The portal link of the deactivation's notification opens that webhook, and only it.
    import sqlite3
    with sqlite3.connect(scene.server.db_path) as db:
        (link,) = db.execute("SELECT portal_link FROM notification WHERE webhook_id = ?",
                             (scene.gone,)).fetchone()
    assert link.startswith(f"{url}/portal/link/")
    browser.get(link)
    wait_for(lambda: by_id(browser, "webhook-url"), message="the linked webhook")
    assert browser.current_url == f"{url}/portal/webhooks/{scene.gone}"
    assert by_id(browser, "reactivate-count").text == "3 buffered events"
    assert by_id(browser, "nav-sign-in") and not browser.find_elements("id", "rotate")
    shots(browser, "webhook-from-link")
    by_id(browser, "sign-out").click()


def test_actions_act_once_through_the_page(scene, browser):
    url = scene.server.url
    # By keyboard: the username field has the focus, Tab goes to the password, Enter signs in.
    from selenium.webdriver.common.keys import Keys
    browser.get(url + "/portal")
    assert browser.switch_to.active_element.get_attribute("id") == "username"
    browser.switch_to.active_element.send_keys("alice", Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") == "password"
    browser.switch_to.active_element.send_keys(PASSWORD, Keys.ENTER)
    wait_for(lambda: by_id(browser, "webhooks"), message="the overview")

    # Send a test: one request, marked as a test, its answer shown.
    browser.get(f"{url}/portal/webhooks/{scene.ok}")
    before = len(scene.requests_to("/ok"))
    submit(browser, by_id(browser, "test"))
    answer = outcome(browser)
    assert "answered HTTP 200" in answer
    # The answer has the focus: a keyboard or screen reader lands on it.
    assert browser.switch_to.active_element.get_attribute("id") == "outcome"
    tests = scene.requests_to("/ok")[before:]
    assert len(tests) == 1 and tests[0]["headers"].get("x-soapservice-test") == "1"
    assert re.search(r"webhook-id (msg_test_\w+)", answer).group(1) == \
        tests[0]["headers"]["webhook-id"]

    # Resend one delivered event: it arrives again with its original webhook-id.
    delivered = [r for r in scene.requests_to("/ok") if "x-soapservice-test" not in
                 r["headers"]]
    row = browser.find_elements("css selector", "#deliveries tbody tr.state-delivered")[-1]
    message_id = row.find_element("class name", "message-id").text
    original = [r for r in delivered if r["headers"]["webhook-id"] == message_id]
    assert len(original) == 1
    submit(browser, row.find_element("css selector", "button[id^=resend-]"))
    assert "1 delivery queued" in outcome(browser)
    wait_for(lambda: len([r for r in scene.requests_to("/ok")
                          if r["headers"]["webhook-id"] == message_id]) == 2,
             timeout=30, message="the resent event")
    again = [r for r in scene.requests_to("/ok") if r["headers"]["webhook-id"] == message_id]
    assert again[1]["body"] == original[0]["body"]

    # Rotate: the new secret is shown once and is the webhook's; GetWebHooks agrees.
    old = scene.hook(scene.ok)["secret"]
    by_id(browser, "grace").clear()
    by_id(browser, "grace").send_keys("2")
    submit(browser, by_id(browser, "rotate"))
    secret = by_id(browser, "new-secret").text
    assert secret.startswith("whsec_") and secret != old
    assert "2 hours" in by_id(browser, "grace-note").text
    assert scene.hook(scene.ok)["secret"] == secret
    browser.get(f"{url}/portal/webhooks/{scene.ok}")
    assert secret not in browser.page_source  # shown once

    # Reactivate with the buffer: the 3 buffered events arrive, each once.
    scene.answers["/gone"] = 200
    browser.get(f"{url}/portal/webhooks/{scene.gone}")
    assert by_id(browser, "reactivate-count").text == "3 buffered events"
    shots(browser, "webhook-inactive")
    submit(browser, by_id(browser, "reactivate-replay"))
    assert "3 buffered events are being sent" in outcome(browser)
    wait_for(lambda: len([r for r in scene.requests_to("/gone") if r["status"] == 200]) == 3,
             timeout=30, message="the 3 buffered events")
    hook = scene.hook(scene.gone)
    assert hook["active"] and hook["bufferedEvents"] == 0

    # Delete, after a confirmation page; posting the confirmation again finds nothing.
    browser.get(f"{url}/portal/webhooks/{scene.down}")
    submit(browser, by_id(browser, "delete"))
    assert scene.hook(scene.down) is not None  # asking deleted nothing
    shots(browser, "delete-confirm")
    submit(browser, by_id(browser, "confirm-delete"))
    assert scene.hook(scene.down) is None
    assert outcome(browser).startswith(f"Webhook #{scene.down} ")
    assert console_errors(browser) == []


def portal_session(scene, user="alice"):
    """A requests session signed in the way the page's form does it."""
    http = requests.Session()
    page = http.get(scene.server.url + "/portal", timeout=10)
    field = re.search(r'name="form" value="([^"]+)"', page.text).group(1)
    r = http.post(scene.server.url + "/portal/sign-in", timeout=30, allow_redirects=False,
                  data={"username": user, "password": PASSWORD, "form": field})
    assert r.status_code == 303, r.text
    return http


def test_refusal_pages_keep_their_status_and_log_nothing_else(scene, browser):
    """docs/portal.rst "Refusal pages": a refused page is answered 403/404/410 with a
    page of its own; Chromium reports that status of the page in the console, and
    nothing else may be there (its style sheet loads, nothing is blocked)."""
    url = scene.server.url
    sign_in(browser, url)
    wait_for(lambda: by_id(browser, "webhooks"), message="the overview")
    assert console_errors(browser) == []
    import sqlite3
    with sqlite3.connect(scene.server.db_path) as db:
        (link,) = db.execute("SELECT portal_link FROM notification WHERE webhook_id = ?",
                             (scene.gone,)).fetchone()
    token = link.rsplit("/", 1)[1]
    tampered = link[:-len(token)] + token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    for address, status, title in (
            (f"{url}/portal/webhooks/{scene.bobs}", 404, "Webhook not found"),
            (f"{url}/portal/no-such-page", 404, "No such page"),
            (tampered, 404, "This link is not valid")):
        browser.get(address)
        assert browser.find_element("tag name", "h1").text == title
        assert page_status(browser) == status
        # Styled by its own style sheet (a failed load would be in the console too).
        sheets = browser.execute_script("return document.styleSheets.length")
        assert sheets >= 1
        assert console_errors(browser, page_status=status) == [], address
    screenshot(browser, "portal-refused-link")
    # The filter leaves out only that report: the same page's report under another
    # status than the page's own is an error.
    browser.get(f"{url}/portal/webhooks/{scene.bobs}")
    reported = console_errors(browser, page_status=403)
    assert len(reported) == 1 and "status of 404" in reported[0], reported


def test_cross_site_posts_and_another_accounts_ids_are_refused(scene):
    http = portal_session(scene)
    base = f"{scene.server.url}/portal/webhooks/{scene.ok}"
    page = http.get(base, timeout=10)
    field = re.search(r'name="form" value="([^"]+)"', page.text).group(1)
    secret = scene.hook(scene.ok)["secret"]
    for headers, data in (({}, {}), ({}, {"form": "forged"}),
                          ({"origin": "https://evil.example"}, {"form": field}),
                          ({"sec-fetch-site": "cross-site"}, {"form": field})):
        r = http.post(base + "/rotate", data={"grace_hours": "1", **data}, headers=headers,
                      timeout=10)
        assert r.status_code == 403, (headers, data, r.status_code)
    assert scene.hook(scene.ok)["secret"] == secret
    # Bob's webhook, by id, from alice's session: not found, and untouched.
    bobs = f"{scene.server.url}/portal/webhooks/{scene.bobs}"
    assert http.get(bobs, timeout=10).status_code == 404
    r = http.post(bobs + "/delete", data={"form": field, "confirm": "yes"}, timeout=10)
    assert r.status_code == 404 and scene.hook(scene.bobs, user="bob") is not None
    # A confirmation posted twice (a reload) deletes once, then finds nothing.
    doomed = scene.create("/doomed")
    first = http.post(f"{scene.server.url}/portal/webhooks/{doomed}/delete", timeout=10,
                      data={"form": field, "confirm": "yes"})
    assert first.status_code == 200 and scene.hook(doomed) is None
    again = http.post(f"{scene.server.url}/portal/webhooks/{doomed}/delete", timeout=10,
                      data={"form": field, "confirm": "yes"})
    assert again.status_code == 404 and "not one of your webhooks" in again.text


@pytest.fixture(autouse=True)
def _no_server_errors(scene):
    yield
    assert "Traceback" not in scene.server.log()
