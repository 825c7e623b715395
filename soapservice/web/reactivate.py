"""``/reactivate/<token>``: the page of a deactivation notification's link.

GET only shows (a mail scanner following the link changes nothing); the confirming
POST acts. Cross-site posting is refused three ways: the Origin (else Referer) must be
this server, the form carries a field bound to the link and to a random value in a
``SameSite=Strict`` cookie set by the GET, and the page may only post to itself (CSP
``form-action 'self'``). Refused or spent links get a plain 404/410 page. Store work
runs on the API thread pool; pages are server-rendered HTML, every value escaped.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

from twisted.internet.threads import deferToThreadPool
from twisted.web import resource, server

from soapservice import reactivation
from soapservice.web.pages import SECURITY_HEADERS, Markup, render

log = logging.getLogger(__name__)

COOKIE = b"soapservice_reactivate"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_=.-]{1,1024}$")

# Same headers as the demo, except that a same-origin POST must carry its Origin (with
# no-referrer, browsers send "Origin: null"). The token never leaves the site.
HEADERS = {**SECURITY_HEADERS, b"referrer-policy": b"same-origin",
           b"cache-control": b"no-store", b"content-type": b"text/html; charset=utf-8",
           b"x-robots-tag": b"noindex"}


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


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
        # Called (in the pool thread) with a webhook id after a replay was queued.
        self.on_webhook_activated: list = []

    # -- helpers ----------------------------------------------------------------------
    def _token(self, request) -> str | None:
        parts = request.postpath
        if len(parts) != 1:
            return None
        token = parts[0].decode("ascii", "replace")
        return token if _TOKEN.match(token) else None

    def _page(self, request, status: int, title: str, main: str) -> bytes:
        request.setResponseCode(status)
        for name, value in HEADERS.items():
            request.setHeader(name, value)
        return render("page.html", title=title, main=Markup(main))

    def _refused(self, request, status, title, detail) -> bytes:
        main = (f'<h1>{esc(title)}</h1>\n<p class="notice error" role="alert">{esc(detail)}</p>'
                '\n<p class="note">Nothing was changed.</p>')
        return self._page(request, status, title, main)

    def _finish(self, request, body: bytes):
        if not request._disconnected:
            request.write(body)
            request.finish()

    def _failed(self, request, failure):
        if failure.check(reactivation.LinkRefused):
            exc = failure.value
            return self._refused(request, exc.status, exc.title, exc.detail)
        reference = uuid.uuid4().hex[:12]
        log.error("reactivation page: internal error, reference %s: %s", reference,
                  failure.getTraceback())
        return self._refused(request, 500, "Something went wrong",
                             f"The server could not answer (reference {reference}). "
                             "Try again in a moment.")

    def _same_origin(self, request) -> bool:
        """A browser's POST names where it comes from; it must be this server."""
        origin = request.getHeader("origin")
        if origin is None:
            referer = request.getHeader("referer")
            if referer is None:
                return True  # not a browser; the form field and cookie still apply
            origin = _origin(referer) or "null"
        origin = origin.strip().lower()
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
            return self._refused(request, 404, "This link is not valid",
                                 "It was not issued by this server, or it was cut or "
                                 "changed on its way.")
        nonce = (request.getCookie(COOKIE) or b"").decode("ascii", "replace")
        if not _NONCE.match(nonce):
            nonce = secrets.token_urlsafe(24)
        d = deferToThreadPool(self.reactor, self.pool, reactivation.view, token, self.clock())
        d.addCallbacks(lambda v: self._show(request, token, v, nonce),
                       lambda f: self._failed(request, f))
        d.addCallback(lambda body: self._finish(request, body))
        return server.NOT_DONE_YET

    def _show(self, request, token, v: reactivation.LinkView, nonce: str) -> bytes:
        secure = "; Secure" if self.settings.base_url.startswith("https:") else ""
        request.addCookie(COOKIE, nonce.encode(), path=b"/reactivate/", httpOnly=True,
                          sameSite="strict", secure=bool(secure))
        field = reactivation.form_value(v.form_key, nonce)
        n = v.buffered
        action = esc(f"/reactivate/{token}")
        main = f"""<h1>Reactivate webhook {v.webhook_id}</h1>
<p>This webhook was deactivated because its URL could not be reached. Choose what to do
with the events that arrived since; nothing changes until you press a button.</p>
<dl class="envelope failed" id="webhook">
  <dt>Webhook</dt><dd id="webhook-id">{v.webhook_id}</dd>
  <dt>App</dt><dd id="webhook-app">{esc(v.app)}</dd>
  <dt>Event</dt><dd id="webhook-event">{esc(v.event)}</dd>
  <dt>URL</dt><dd id="webhook-url" class="value">{esc(v.url)}</dd>
  <dt>Deactivated</dt><dd id="deactivated-at">{esc(when(v.deactivated_at))}</dd>
  <dt>Why</dt><dd id="reason">{esc(v.reason or "its URL stayed unreachable")}</dd>
  <dt>Last error</dt><dd id="last-error" class="value">{esc(v.last_error or "none recorded")}</dd>
  <dt>Buffered</dt><dd id="buffered">{esc(events(n))}</dd>
</dl>
<form method="post" action="{action}" class="actions" id="reactivate-form">
  <input type="hidden" name="form" value="{esc(field)}">
  <button type="submit" name="replay" value="1" id="replay" class="primary">Reactivate and
  send the {esc(events(n))}</button>
  <button type="submit" name="replay" value="0" id="discard">Reactivate without them</button>
</form>
<p class="note">Sending them delivers them oldest first, before any newer event of the same
subscriber. Without them they are deleted for good. Either way the webhook starts
receiving new events again, and this link stops working.</p>"""
        return self._page(request, 200, f"Reactivate webhook {v.webhook_id}", main)

    # -- POST: act ----------------------------------------------------------------------
    def render_POST(self, request):
        token = self._token(request)
        if token is None:
            return self._refused(request, 404, "This link is not valid",
                                 "It was not issued by this server, or it was cut or "
                                 "changed on its way.")
        if not self._same_origin(request):
            log.warning("reactivation: refused a cross-site POST (origin %r)",
                        request.getHeader("origin") or request.getHeader("referer"))
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
        d = deferToThreadPool(self.reactor, self.pool, self._act, token,
                              replay_raw == b"1", nonce, field)
        d.addCallbacks(lambda result: self._done(request, *result),
                       lambda f: self._post_failed(request, token, f))
        d.addCallback(lambda body: self._finish(request, body))
        return server.NOT_DONE_YET

    def _act(self, token, replay, nonce, field):
        """In the pool thread: act, then wake the delivery loop (thread-safe callbacks)."""
        before, replayed = reactivation.reactivate(token, replay, self.clock(), nonce, field)
        if replayed:
            for callback in self.on_webhook_activated:
                callback(before.webhook_id)
        return before, replay, replayed

    def _post_failed(self, request, token, failure):
        if failure.check(reactivation.FormRefused):
            log.warning("reactivation: refused a POST without this page's form field")
            return self._refused(
                request, 403, "Request refused",
                "This confirmation did not come from the page this server showed (or the "
                "page is too old). Open the link again and press a button there.")
        return self._failed(request, failure)

    def _done(self, request, v: reactivation.LinkView, replay: bool, replayed: int) -> bytes:
        log.info("webhook %d reactivated through its link (%s)", v.webhook_id,
                 f"{replayed} buffered events replayed" if replay else
                 f"{v.buffered} buffered events discarded")
        if replay:
            what = (f"Its {esc(events(replayed))} are being sent now, oldest first."
                    if replayed else "It had no buffered events to send.")
        else:
            what = (f"Its {esc(events(v.buffered))} were discarded."
                    if v.buffered else "It had no buffered events.")
        main = f"""<h1>Webhook {v.webhook_id} is active again</h1>
<p class="notice" role="status" id="outcome">Webhook {v.webhook_id} ({esc(v.app)},
{esc(v.event)}, <span class="value">{esc(v.url)}</span>) receives events again.
<span id="outcome-events">{what}</span></p>
<p class="note">This link has been used and no longer works. If the URL fails again for the
whole retry schedule, the webhook is deactivated again and a new notification is sent.</p>"""
        return self._page(request, 200, f"Webhook {v.webhook_id} is active again", main)
