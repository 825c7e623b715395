"""The portal's session and anti-forgery rules, in process: :class:`Sessions` on a
``task.Clock``, and the ``/portal`` resource of ``serve``'s tree driven by StubTreq over
a real store (sign-in, cookie flags, refused posts, another account's webhook)."""

from __future__ import annotations

import re
import time
from http.cookiejar import CookieJar

import pytest
from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent, _SynchronousProducer
from twisted.internet import task

from soapservice import auth
from soapservice.api import WebhookAPI
from soapservice.config import Settings
from soapservice.store import accounts, webhooks
from soapservice.web.portal import session as sessions
from soapservice.web.portal.session import Sessions
from soapservice.web.root import build_root
from tests.support.doubles import InlinePool, InlineReactor

KEY = b"k" * 32


def test_a_session_ends_after_idle_time_and_at_its_lifetime_whatever_is_renewed():
    clock = task.Clock()
    s = Sessions(KEY, clock.seconds)
    value = s.issue("alice", "hash1")
    assert s.read(value).username == "alice"
    clock.advance(sessions.IDLE_SEC - 1)
    assert s.read(value) is not None
    clock.advance(1)
    assert s.read(value) is None  # idle too long
    # Renewed on every answer: the idle clock restarts, the lifetime does not.
    clock2 = task.Clock()
    s2 = Sessions(KEY, clock2.seconds)
    value = s2.issue("alice", "hash1")
    while clock2.seconds() + sessions.IDLE_SEC / 2 < sessions.LIFETIME_SEC:
        clock2.advance(sessions.IDLE_SEC / 2)
        current = s2.read(value)
        assert current is not None, clock2.seconds()
        value = s2.renew(current)
    clock2.advance(sessions.LIFETIME_SEC - clock2.seconds())
    assert s2.read(value) is None


def test_a_link_session_names_one_webhook_and_lives_an_hour():
    clock = task.Clock()
    s = Sessions(KEY, clock.seconds)
    value = s.issue("alice", "hash1", webhook=7)
    read = s.read(value)
    assert (read.webhook, read.full) == (7, False)
    for _ in range(2):
        clock.advance(sessions.LINK_LIFETIME_SEC / 2 - 30)
        value = s.renew(s.read(value))
    clock.advance(60)
    assert s.read(value) is None
    assert s.read(s.issue("alice", "hash1")).full


def test_a_changed_tampered_or_ended_session_is_refused():
    clock = task.Clock()
    s = Sessions(KEY, clock.seconds)
    value = s.issue("alice", "hash1")
    session = s.read(value)
    assert s.valid_for(session, "hash1")
    assert not s.valid_for(session, "hash2")  # the password changed
    assert not s.valid_for(session, None)     # the account is gone
    body, _, mac = value.rpartition(".")
    forged = body.replace(body.split(".")[1], "Ym9i") + "." + mac  # "bob"
    assert s.read(forged) is None
    assert Sessions(b"x" * 32, clock.seconds).read(value) is None  # another server's key
    assert s.read("") is None and s.read("a.b") is None and s.read("x" * 5000) is None
    renewed = s.renew(session)
    s.end(session)
    assert s.read(value) is None and s.read(renewed) is None  # signed out: every copy


def test_form_fields_are_bound_to_their_session_or_sign_in_cookie():
    clock = task.Clock()
    s = Sessions(KEY, clock.seconds)
    one, two = s.read(s.issue("alice", "h")), s.read(s.issue("alice", "h"))
    assert s.form_ok(one, s.form_token(one))
    assert not s.form_ok(two, s.form_token(one))
    assert not s.form_ok(one, "") and not s.form_ok(one, "ü")
    assert s.login_ok("n" * 20, s.login_token("n" * 20))
    assert not s.login_ok("m" * 20, s.login_token("n" * 20))
    assert not s.login_ok("", s.login_token(""))


# -- the resource, in process -------------------------------------------------------------
HOST = "http://soapservice.test"


class _NoJar(CookieJar):
    """treq's client keeps no cookies: the test's own jar decides what is sent."""

    def extract_cookies(self, response, request):
        pass


class Browser:
    """An in-process client of serve's tree with its own jar of the portal's cookies."""

    def __init__(self, settings, api=None):
        api = api or WebhookAPI(settings)
        self.api = api
        agent = RequestTraversalAgent(build_root(api, settings, InlineReactor(), InlinePool()))
        self.stub = HTTPClient(agent, cookiejar=_NoJar(),
                               data_to_body_producer=_SynchronousProducer)
        self.stub.flush = agent.flush
        self.cookies: dict[str, str] = {}
        self.set_cookie: list[str] = []

    def go(self, method, path, data=None, headers=None):
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        h = {"cookie": cookie} if cookie else {}
        h.update(headers or {})
        d = getattr(self.stub, method)(HOST + path, data=data, headers=h,
                                        allow_redirects=False)
        self.stub.flush()
        from tests.test_web_inprocess import result_of
        response = result_of(d)
        body = result_of(response.content()).decode()
        self.set_cookie = response.headers.getRawHeaders("set-cookie") or []
        for line in self.set_cookie:
            name, _, rest = line.partition("=")
            value = rest.split(";")[0]
            if value and "Max-Age=0" not in line:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return response, body

    def form(self, body):
        return re.search(r'name="form" value="([^"]+)"', body).group(1)

    def sign_in(self, username, password):
        _, body = self.go("get", "/portal")
        return self.go("post", "/portal/sign-in", {"username": username,
                                                    "password": password,
                                                    "form": self.form(body)})


@pytest.fixture
def portal(alice):
    accounts.add("bob", auth.hash_password("pw", n=2**4))
    settings = Settings(allow_private_targets=True, ingest_token="t")
    return Browser(settings)


def test_sign_in_sets_a_strict_http_only_cookie_and_refuses_a_wrong_password(portal):
    response, body = portal.go("get", "/portal")
    assert response.code == 200 and 'id="sign-in-form"' in body
    assert response.headers.getRawHeaders("referrer-policy") == ["no-referrer"]
    csp = response.headers.getRawHeaders("content-security-policy")[0]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    response, body = portal.sign_in("alice", "nope")
    assert response.code == 200 and "Wrong username or password." in body
    assert "soapservice_portal=" not in "".join(portal.set_cookie)
    response, _ = portal.sign_in("alice", "pw")
    assert response.code == 303
    assert response.headers.getRawHeaders("location") == ["/portal"]
    line = [c for c in portal.set_cookie if c.startswith("soapservice_portal=")][0]
    assert "HttpOnly" in line and "samesite=strict" in line.lower() and "Path=/portal" in line
    assert "Secure" not in line  # the public URL is http here
    response, body = portal.go("get", "/portal")
    assert response.code == 200 and 'id="who">alice<' in body


def test_the_cookie_is_secure_behind_an_https_public_url(alice):
    browser = Browser(Settings(public_url="https://hooks.example", ingest_token="t"))
    browser.sign_in("alice", "pw")
    line = [c for c in browser.set_cookie if c.startswith("soapservice_portal=")][0]
    assert "Secure" in line


def test_sign_in_is_throttled_by_the_api_throttle_and_counts_toward_it(alice):
    """One throttle for the portal and the API: failures in either delay both."""
    clock = task.Clock()
    settings = Settings(ingest_token="t")
    api = WebhookAPI(settings, auth.Authenticator(
        accounts.find, throttle=auth.Throttle(clock=clock.seconds), clock=clock.seconds))
    portal = Browser(settings, api)
    for _ in range(6):  # 5 free, the 6th starts a delay of 1 s
        response, body = portal.sign_in("alice", "wrong")
        assert response.code == 200 and "Wrong username or password." in body
    response, body = portal.sign_in("alice", "pw")
    assert response.code == 429 and "Too many failed sign-ins" in body
    assert api.get_webhooks("alice", "pw", address="127.0.0.1").error == 8
    clock.advance(1)
    response, _ = portal.sign_in("alice", "pw")
    assert response.code == 303
    # The other way round: failures at the API delay the portal's sign-in.
    portal.cookies.clear()
    for _ in range(6):
        assert api.get_webhooks("alice", "bad", address="127.0.0.1").error == 1
    response, body = portal.sign_in("alice", "pw")
    assert response.code == 429, re.findall("<main.*", body, re.S)


def test_posts_without_the_form_field_or_from_another_site_change_nothing(portal, alice):
    hook = webhooks.create(alice.id, "shop", "optin_finalized", "http://127.0.0.1:9/h",
                           "whsec_" + "A" * 32, 100)
    response, _ = portal.sign_in("alice", "pw")
    _, body = portal.go("get", f"/portal/webhooks/{hook.id}")
    token = portal.form(body)
    response, body = portal.go("post", f"/portal/webhooks/{hook.id}/delete",
                               {"confirm": "yes"})
    assert response.code == 403 and "did not come from a page of this session" in body
    response, body = portal.go("post", f"/portal/webhooks/{hook.id}/delete",
                               {"confirm": "yes", "form": token},
                               headers={"sec-fetch-site": "cross-site"})
    assert response.code == 403 and "came from another site" in body
    response, body = portal.go("post", f"/portal/webhooks/{hook.id}/delete",
                               {"confirm": "yes", "form": token},
                               headers={"origin": "https://evil.example"})
    assert response.code == 403
    assert webhooks.get(alice.id, hook.id) is not None
    # A sign-in posted from elsewhere (no field from the sign-in page) is refused too.
    fresh = Browser(Settings(ingest_token="t"))
    response, body = fresh.go("post", "/portal/sign-in", {"username": "alice",
                                                          "password": "pw"})
    assert response.code == 403 and "soapservice_portal=" not in "".join(fresh.set_cookie)


def test_another_accounts_webhook_is_not_found_and_not_touched(portal, alice):
    bob = accounts.find("bob")
    theirs = webhooks.create(bob.id, "shop", "optin_finalized", "http://127.0.0.1:9/bobs-hook",
                             "whsec_" + "B" * 32, 100)
    portal.sign_in("alice", "pw")
    _, body = portal.go("get", "/portal")
    token = portal.form(body)
    response, body = portal.go("get", f"/portal/webhooks/{theirs.id}")
    assert response.code == 404 and "bobs-hook" not in body
    for action in ("delete", "rotate", "resend", "test", "reactivate"):
        response, _ = portal.go("post", f"/portal/webhooks/{theirs.id}/{action}",
                                {"form": token, "confirm": "yes", "replay": "1",
                                 "grace_hours": "1"})
        assert response.code == 404, action
    after = webhooks.get(bob.id, theirs.id)
    assert after is not None and after.secret == "whsec_" + "B" * 32


def test_signing_out_ends_the_session(portal):
    portal.sign_in("alice", "pw")
    kept = dict(portal.cookies)
    _, body = portal.go("get", "/portal")
    response, _ = portal.go("post", "/portal/sign-out", {"form": portal.form(body)})
    assert response.code == 303 and "soapservice_portal" not in portal.cookies
    portal.cookies = kept  # a copy of the cookie kept from before
    response, body = portal.go("get", "/portal")
    assert 'id="sign-in-form"' in body and 'id="who"' not in body


def test_values_are_shown_as_text(portal, alice):
    hook = webhooks.create(alice.id, "<script>alert(1)</script>", "optin_finalized",
                           "http://127.0.0.1:9/h?a=<b>", "whsec_" + "A" * 32, 100)
    portal.sign_in("alice", "pw")
    for path in ("/portal", f"/portal/webhooks/{hook.id}"):
        _, body = portal.go("get", path)
        assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
        assert "a=&lt;b&gt;" in body


def test_a_notifications_link_opens_its_webhook_only(portal, alice):
    from soapservice.store import portal as portal_store
    mine = webhooks.create(alice.id, "shop", "optin_finalized", "http://127.0.0.1:9/a",
                           "whsec_" + "A" * 32, 100)
    other = webhooks.create(alice.id, "shop", "optout_finalized", "http://127.0.0.1:9/o",
                            "whsec_" + "O" * 32, 100)
    link = portal_store.make_link("http://soapservice.test", alice.id, mine.id,
                                  time.time() + 3600)
    path = link.removeprefix("http://soapservice.test")
    response, _ = portal.go("get", path)
    assert response.code == 303
    assert response.headers.getRawHeaders("location") == [f"/portal/webhooks/{mine.id}"]
    line = [c for c in portal.set_cookie if c.startswith("soapservice_portal=")][0]
    assert "HttpOnly" in line and "samesite=strict" in line.lower()
    response, body = portal.go("get", f"/portal/webhooks/{mine.id}")
    assert response.code == 200 and 'id="nav-sign-in"' in body
    assert 'id="rotate"' not in body and 'id="delete"' not in body
    token = portal.form(body)
    response, _ = portal.go("get", "/portal")  # the overview: the link's webhook instead
    assert response.headers.getRawHeaders("location") == [f"/portal/webhooks/{mine.id}"]
    response, _ = portal.go("get", f"/portal/webhooks/{other.id}")
    assert response.code == 403
    response, _ = portal.go("post", f"/portal/webhooks/{mine.id}/rotate",
                            {"form": token, "grace_hours": "1"})
    assert response.code == 403
    assert webhooks.get(alice.id, mine.id).secret == "whsec_" + "A" * 32
    # A changed or expired link opens nothing.
    fresh = Browser(Settings(ingest_token="t"))
    response, body = fresh.go("get", path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB"))
    assert response.code == 404 and "soapservice_portal=" not in "".join(fresh.set_cookie)
    expired = portal_store.make_link("http://soapservice.test", alice.id, mine.id,
                                     time.time() - 1)
    response, _ = fresh.go("get", expired.removeprefix("http://soapservice.test"))
    assert response.code == 410


def test_the_log_pages_newest_first_and_keeps_its_filter(portal, alice):
    from soapservice.ingest import emit
    from soapservice.web.portal.views import PAGE_SIZE
    hook = webhooks.create(alice.id, "shop", "optin_finalized", "http://127.0.0.1:9/h",
                           "whsec_" + "A" * 32, 100)
    for i in range(PAGE_SIZE + 5):
        emit("alice", "optin_finalized", {"subscriber_id": i}, window_sec=86400.0)
    portal.sign_in("alice", "pw")
    base = f"/portal/webhooks/{hook.id}"
    _, body = portal.go("get", base + "?state=pending")
    first = [int(n) for n in re.findall(r'<tr id="delivery-(\d+)"', body)]
    assert len(first) == PAGE_SIZE and first == sorted(first, reverse=True)
    older = re.search(r'<a href="([^"]+)" id="older"', body).group(1).replace("&amp;", "&")
    assert "state=pending" in older and f"before={first[-1]}" in older
    _, body = portal.go("get", older)
    second = [int(n) for n in re.findall(r'<tr id="delivery-(\d+)"', body)]
    assert len(second) == 5 and max(second) < min(first)
    assert 'id="older"' not in body and 'id="newest"' in body
    _, body = portal.go("get", base + "?state=delivered")
    assert 'id="no-deliveries"' in body
    response, body = portal.go("get", base + "?state=bogus")
    assert response.code == 400 and "state must be one of" in body
