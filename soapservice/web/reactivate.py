"""``/reactivate/<token>``: the page of a deactivation notification's link.

GET only shows (a mail scanner following the link changes nothing); the confirming
POST acts. Cross-site posting is refused three ways: the Origin (else Referer) must be
this server, the form carries a field bound to the link and to a random value in a
``SameSite=Strict`` cookie set by the GET, and the page may only post to itself (CSP
``form-action 'self'``). Refused or spent links get a plain 404/410 page. Store work
runs on the API thread pool; the pages are templates (``refused.html``,
``reactivate.html``, ``reactivated.html``), every value escaped.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from twisted.web import resource

from soapservice import reactivation
from soapservice.services import Runner
from soapservice.web.pages import SECURITY_HEADERS, page
from soapservice.web.respond import respond

log = logging.getLogger(__name__)

COOKIE = b"soapservice_reactivate"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_=.-]{1,1024}$")

# The demo's headers, no-referrer included: with same-origin the page's own stylesheet
# request and its POST carried the link's token in their Referer (into access logs, the
# server's and any proxy's). With no-referrer a browser's POST says "Origin: null", so
# a same-site POST is told by its Sec-Fetch-Site (every current browser sends it); the
# form field bound to the SameSite=Strict cookie is what no other site can forge.
HEADERS = {**SECURITY_HEADERS, b"cache-control": b"no-store",
           b"content-type": b"text/html; charset=utf-8", b"x-robots-tag": b"noindex"}


def when(value: float | None) -> str:
    if value is None:
        return "unknown"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def events(n: int) -> str:
    return f"{n} buffered event" + ("" if n == 1 else "s")


class Reactivate(resource.Resource):
    isLeaf = True

    def __init__(self, settings, reactor, pool, clock=time.time):
        super().__init__()
        self.settings, self.reactor, self.pool, self.clock = settings, reactor, pool, clock
        self.run = Runner(reactor, pool)  # blocking work off the reactor
        # Called (in the pool thread) with a webhook id after a replay was queued.
        self.on_webhook_activated: list = []

    # -- helpers ----------------------------------------------------------------------
    def _token(self, request) -> str | None:
        parts = request.postpath
        if len(parts) != 1:
            return None
        token = parts[0].decode("ascii", "replace")
        return token if _TOKEN.match(token) else None

    def _page(self, request, status: int, template: str, title: str, **values) -> bytes:
        request.setResponseCode(status)
        for name, value in HEADERS.items():
            request.setHeader(name, value)
        return page(template, title, **values)

    def _refused(self, request, status, title, detail) -> bytes:
        return self._page(request, status, "refused.html", title, heading=title,
                          detail=detail)

    def _not_a_link(self, request) -> bytes:
        return self._refused(request, 404, "This link is not valid",
                             "It was not issued by this server, or it was cut or changed "
                             "on its way.")

    def _link_refused(self, request, failure):
        if failure.check(reactivation.LinkRefused):
            exc = failure.value
            return self._refused(request, exc.status, exc.title, exc.detail)
        return None

    def _internal(self, request, reference: str) -> bytes:
        return self._refused(request, 500, "Something went wrong",
                             f"The server could not answer (reference {reference}). "
                             "Try again in a moment.")

    def _same_origin(self, request) -> bool:
        """A browser's POST names where it comes from; it must be this server."""
        fetch_site = request.getHeader("sec-fetch-site")
        if fetch_site is not None and fetch_site.strip().lower() not in ("same-origin",
                                                                          "none"):
            return False
        origin = request.getHeader("origin")
        if origin is None:
            referer = request.getHeader("referer")
            if referer is None:
                return True  # not a browser; the form field and cookie still apply
            origin = _origin(referer) or "null"
        origin = origin.strip().lower()
        if origin == "null":  # what no-referrer makes of this page's own POST
            return True
        allowed = {_origin(self.settings.base_url)}
        host = request.getHeader("host")
        if host:
            scheme = "https" if request.isSecure() else "http"
            allowed.add(f"{scheme}://{host}".lower())
        return origin in allowed

    # -- GET: show ----------------------------------------------------------------------
    def render_GET(self, request):
        token = self._token(request)
        if token is None:
            return self._not_a_link(request)
        nonce = (request.getCookie(COOKIE) or b"").decode("ascii", "replace")
        if not _NONCE.match(nonce):
            nonce = secrets.token_urlsafe(24)
        d = self.run(reactivation.view, token, self.clock())
        return respond(request, d, lambda v: self._show(request, token, v, nonce),
                       what="reactivation page",
                       expected=lambda f: self._link_refused(request, f),
                       internal=self._internal)

    def _show(self, request, token, v: reactivation.LinkView, nonce: str) -> bytes:
        secure = "; Secure" if self.settings.base_url.startswith("https:") else ""
        request.addCookie(COOKIE, nonce.encode(), path=b"/reactivate/", httpOnly=True,
                          sameSite="strict", secure=bool(secure))
        field = reactivation.form_value(v.form_key, nonce)
        return self._page(
            request, 200, "reactivate.html", f"Reactivate webhook {v.webhook_id}",
            webhook_id=v.webhook_id, app=v.app, event=v.event, url=v.url,
            deactivated_at=when(v.deactivated_at),
            reason=v.reason or "its URL stayed unreachable",
            last_error=v.last_error or "none recorded", buffered=events(v.buffered),
            action=f"/reactivate/{token}", field=field)

    # -- POST: act ----------------------------------------------------------------------
    def render_POST(self, request):
        token = self._token(request)
        if token is None:
            return self._not_a_link(request)
        if not self._same_origin(request):
            # Not the Origin or Referer itself: whatever a client sends stays out of logs.
            log.warning("reactivation: refused a cross-site POST")
            return self._refused(request, 403, "Request refused",
                                 "This request came from another site. Open the link from "
                                 "your notification and press a button on its page.")
        args = request.args or {}
        replay_raw = (args.get(b"replay") or [b""])[0]
        if replay_raw not in (b"0", b"1"):
            return self._refused(request, 400, "Choose an action",
                                 "Press one of the two buttons on the link's page.")
        field = (args.get(b"form") or [b""])[0].decode("ascii", "replace")
        nonce = (request.getCookie(COOKIE) or b"").decode("ascii", "replace")
        nonce = nonce if _NONCE.match(nonce) else ""
        d = self.run(self._act, token, replay_raw == b"1", nonce, field)
        return respond(request, d, lambda result: self._done(request, *result),
                       what="reactivation page",
                       expected=lambda f: self._post_refused(request, f),
                       internal=self._internal)

    def _act(self, token, replay, nonce, field):
        """In the pool thread: act, then wake the delivery loop (thread-safe callbacks)."""
        before, replayed = reactivation.reactivate(token, replay, self.clock(), nonce, field)
        if replayed:
            for callback in self.on_webhook_activated:
                callback(before.webhook_id)
        return before, replay, replayed

    def _post_refused(self, request, failure):
        if failure.check(reactivation.FormRefused):
            log.warning("reactivation: refused a POST without this page's form field")
            return self._refused(
                request, 403, "Request refused",
                "This confirmation did not come from the page this server showed (or the "
                "page is too old). Open the link again and press a button there.")
        return self._link_refused(request, failure)

    def _done(self, request, v: reactivation.LinkView, replay: bool, replayed: int) -> bytes:
        log.info("webhook %d reactivated through its link (%s)", v.webhook_id,
                 f"{replayed} buffered events replayed" if replay else
                 f"{v.buffered} buffered events discarded")
        if replay:
            what = (f"Its {events(replayed)} are being sent now, oldest first."
                    if replayed else "It had no buffered events to send.")
        else:
            what = (f"Its {events(v.buffered)} were discarded."
                    if v.buffered else "It had no buffered events.")
        return self._page(request, 200, "reactivated.html",
                          f"Webhook {v.webhook_id} is active again", webhook_id=v.webhook_id,
                          app=v.app, event=v.event, url=v.url, outcome=what)
