"""What each portal request does, in a worker thread (store, password hashing).

The Twisted resource (``resource.py``) reads the request into an :class:`Input` on the
reactor thread, runs :meth:`Handler.handle` through the service's runner and writes the
:class:`Output` back; nothing here touches Twisted, so the rules run in process on a
``task.Clock``. Reads and actions go through :meth:`WebhookAPI.as_account` (the core of
the SOAP operations, with its checks and refusals: another account's webhook is "not
found" there); sign-in goes through the API's own authenticator and throttle.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from soapservice import auth, notify, portal_links
from soapservice.errors import Error
from soapservice.store import accounts, portal, server_secret
from soapservice.web.pages import Markup
from soapservice.web.portal import views
from soapservice.web.portal.session import Session, Sessions

log = logging.getLogger(__name__)

COOKIE = "soapservice_portal"
LOGIN_COOKIE = "soapservice_portal_login"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_ACTIONS = ("test", "resend", "reactivate", "rotate", "delete")


@dataclass
class Input:
    method: str
    parts: list[str]                   # the path below /portal
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    cookie: str | None = None          # the session cookie
    login_nonce: str | None = None     # the sign-in form's cookie
    address: str = "-"
    cross_site: bool = False           # the browser said the POST came from elsewhere


@dataclass
class Output:
    status: int = 200
    body: bytes = b""
    location: str | None = None
    # (name, value or None to clear, max-age seconds)
    cookies: list[tuple[str, str | None, int]] = field(default_factory=list)


class Handler:
    def __init__(self, api, settings, clock: Callable[[], float]):
        self.api, self.settings, self.clock = api, settings, clock
        self._sessions: Sessions | None = None

    # -- plumbing ---------------------------------------------------------------------
    @property
    def sessions(self) -> Sessions:
        if self._sessions is None:  # the key is in the store: read once, in a thread
            self._sessions = Sessions(server_secret(notify.KEY_NAME), self.clock)
        return self._sessions

    def handle(self, inp: Input) -> Output:
        session, account = self._session(inp.cookie)
        out = self._route(inp, session, account)
        if session is not None and account is not None and not any(
                c[0] == COOKIE for c in out.cookies):
            out.cookies.append((COOKIE, self.sessions.renew(session),
                                self.sessions.max_age(session)))
        return out

    def _session(self, cookie: str | None):
        s = self.sessions.read(cookie)
        if s is None:
            return None, None
        account = accounts.find(s.username)
        if account is None or not self.sessions.valid_for(s, account.password_hash):
            return None, None
        return s, account

    def _page(self, status: int, title: str, main: Markup, s: Session | None = None,
              account=None) -> Output:
        token = self.sessions.form_token(s) if s is not None else None
        return Output(status, views.page(title, main, form_token=token,
                                         signed_in=account.username if account else None,
                                         full=s.full if s else True))

    def _refused(self, status: int, title: str, detail: str, s=None, account=None) -> Output:
        return self._page(status, title, views.refused(title, detail), s, account)

    @staticmethod
    def _redirect(location: str) -> Output:
        return Output(303, b"", location)

    def _route(self, inp: Input, s: Session | None, account) -> Output:
        parts = [p for p in inp.parts if p] or []
        if inp.method == "POST" and inp.cross_site:
            log.warning("portal: refused a cross-site POST")
            return self._refused(403, "Request refused", "This request came from another "
                                 "site. Open the portal and use its buttons.", s, account)
        if parts == ["sign-in"] and inp.method == "POST":
            return self._sign_in(inp)
        if parts == ["sign-in"] or (not parts and s is None):
            return self._sign_in_page(inp, next_hook=_int(inp.query.get("next")))
        if len(parts) == 2 and parts[0] == "link" and inp.method == "GET":
            return self._link(parts[1], s, account)
        if s is None or account is None:
            if inp.method == "POST":
                return self._refused(403, "Signed out", "Your session has ended. Sign in "
                                     "again and repeat what you did.")
            hook = _int(parts[1]) if len(parts) >= 2 and parts[0] == "webhooks" else None
            return self._sign_in_page(inp, next_hook=hook,
                                      message="Sign in to see this page." if parts else None)
        if inp.method == "POST" and not self.sessions.form_ok(s, inp.form.get("form", "")):
            log.warning("portal: refused a POST without the session's form field")
            return self._refused(403, "Request refused", "This form did not come from a "
                                 "page of this session (or the page is too old). Reload the "
                                 "page and try again.", s, account)
        if parts == ["sign-out"] and inp.method == "POST":
            self.sessions.end(s)
            out = self._redirect("/portal")
            out.cookies.append((COOKIE, None, 0))
            return out
        if not parts and inp.method == "GET":
            if not s.full:
                return self._redirect(f"/portal/webhooks/{s.webhook}")
            return self._overview(s, account)
        if parts and parts[0] == "webhooks" and len(parts) in (2, 3):
            hook_id = _int(parts[1])
            if hook_id is None:
                return self._refused(404, "No such page", "Webhook ids are numbers.", s,
                                     account)
            if not s.full and hook_id != s.webhook:
                return self._refused(403, "Only the linked webhook", "This session came "
                                     "from a notification's link and shows only its webhook. "
                                     "Sign in with your password to see the others.", s,
                                     account)
            if len(parts) == 2 and inp.method == "GET":
                return self._webhook(s, account, hook_id, inp.query)
            if len(parts) == 3 and parts[2] in _ACTIONS and inp.method == "POST":
                return self._act(s, account, hook_id, parts[2], inp.form)
        return self._refused(404 if inp.method == "GET" else 405, "No such page",
                             "The portal has no page here.", s, account)

    # -- sign-in ----------------------------------------------------------------------
    def _sign_in_page(self, inp: Input, message: str | None = None, status: int = 200,
                      username: str = "", next_hook: int | None = None) -> Output:
        nonce = inp.login_nonce if inp.login_nonce and _NONCE.match(inp.login_nonce) else (
            secrets.token_urlsafe(24))
        main = views.sign_in(self.sessions.login_token(nonce), message, username, next_hook)
        out = self._page(status, "Sign in", main)
        out.cookies.append((LOGIN_COOKIE, nonce, 3600))
        return out

    def _sign_in(self, inp: Input) -> Output:
        username = inp.form.get("username", "").strip()
        password = inp.form.get("password", "")
        next_hook = _int(inp.form.get("next"))
        nonce = inp.login_nonce if inp.login_nonce and _NONCE.match(inp.login_nonce) else ""
        if not self.sessions.login_ok(nonce, inp.form.get("form", "")):
            log.warning("portal: refused a sign-in without the sign-in form's field")
            return self._sign_in_page(inp, "The sign-in form was too old or came from "
                                      "elsewhere. Please sign in again.", 403, username,
                                      next_hook)
        if not username or not password:
            return self._sign_in_page(inp, "Enter your username and password.", 400,
                                      username, next_hook)
        try:
            account = self.api.auth.check(username, password, inp.address)
        except auth.Throttled:  # what the API answers with error 8
            return self._sign_in_page(inp, "Too many failed sign-ins; try again later.",
                                      429, username, next_hook)
        if account is None:
            # 200, not 401: the form again, with a message (browsers log a 401 as an error)
            return self._sign_in_page(inp, "Wrong username or password.", 200, username,
                                      next_hook)
        log.info("portal: %r signed in from %s", account.username, inp.address)
        out = self._redirect(f"/portal/webhooks/{next_hook}" if next_hook else "/portal")
        value = self.sessions.issue(account.username, account.password_hash)
        out.cookies.append((COOKIE, value, int(self.sessions.lifetime_sec)))
        out.cookies.append((LOGIN_COOKIE, None, 0))
        return out

    def _link(self, token: str, s: Session | None, account) -> Output:
        try:
            link = portal.open_link(token, self.clock())
        except portal_links.LinkError as exc:
            if exc.expired:
                return self._refused(410, "This link has expired", "Links in notifications "
                                     "work for a limited time. Sign in with your API username "
                                     "and password instead.")
            return self._refused(404, "This link is not valid", "It was not issued by this "
                                 "server, or it was cut or changed on its way.")
        where = f"/portal/webhooks/{link.webhook_id}"
        if s is not None and account is not None and account.id == link.account_id and s.full:
            return self._redirect(where)  # already signed in to this account
        owner = accounts.get(link.account_id)
        if owner is None:
            return self._refused(410, "This account no longer exists", "Nothing to show.")
        out = self._redirect(where)
        value = self.sessions.issue(owner.username, owner.password_hash, link.webhook_id)
        out.cookies.append((COOKIE, value, int(self.sessions.link_lifetime_sec)))
        return out

    # -- pages ------------------------------------------------------------------------
    def _one(self, account, hook_id: int):
        """The account's webhook as the overview shows it, or None (not its own)."""
        found = portal.overview(account.id, self.clock(), webhook_ids=[hook_id])
        return found[0] if found else None

    def _overview(self, s: Session, account) -> Output:
        hooks = portal.overview(account.id, self.clock())
        return self._page(200, "Your webhooks", views.overview(hooks), s,
                          account)

    def _webhook(self, s: Session, account, hook_id: int, query: dict[str, str],
                 outcome: Markup = views.EMPTY, status: int = 200) -> Output:
        hook = self._one(account, hook_id)
        if hook is None:
            return self._refused(404, "Webhook not found", f"Webhook {hook_id} is not one "
                                 "of your webhooks.", s, account)
        chart = portal.chart(account.id, hook_id, self.clock())
        state = query.get("state") or None
        before = _int(query.get("before"))
        env = self.api.as_account(account, "GetWebHookDeliveries", webhook_id=hook_id,
                                  state=state, limit=views.PAGE_SIZE, before_id=before)
        if env.error != Error.OK:
            return self._refused(400, "Cannot show these deliveries", env.message, s,
                                 account)
        main = views.webhook(hook, env.result, self.sessions.form_token(s), state=state,
                             before=before, now=self.clock(), outcome=outcome, full=s.full,
                             charts=views.chart_section(chart) if chart else views.EMPTY)
        return self._page(status, f"Webhook #{hook_id}", main, s, account)

    # -- actions ----------------------------------------------------------------------
    def _act(self, s: Session, account, hook_id: int, action: str,
             form: dict[str, str]) -> Output:
        if action in ("rotate", "delete") and not s.full:
            return self._refused(403, "Sign in first", "Rotating the secret and deleting "
                                 "need a sign-in with your password.", s, account)
        if action == "test":
            env = self.api.as_account(account, "TestWebHook", webhook_id=hook_id)
            if env.error == Error.OK:
                r = env.result
                if r["error"] is None:
                    text = f"Test sent: the receiver answered HTTP {r['status']} in " \
                           f"{r['durationMs']} ms (webhook-id {r['messageId']})."
                else:
                    text = f"Test sent: it failed after {r['durationMs']} ms: {r['error']} " \
                           f"(webhook-id {r['messageId']})."
                return self._after(s, account, hook_id, text, error=r["error"] is not None)
        elif action == "resend":
            event_id = form.get("event_id") or None
            env = self.api.as_account(
                account, "ResendWebHookEvents", webhook_id=hook_id, event_id=event_id,
                since=None if event_id else form.get("since") or None,
                until=None if event_id else form.get("until") or None)
            if env.error == Error.OK:
                n = env.result
                what = f"event {event_id}" if event_id else "the window"
                text = (f"Resent {what}: {n} deliver" + ("y" if n == 1 else "ies")
                        + " queued, with the original webhook-id.") if n else (
                    f"Nothing to resend in {what}: no delivered or failed event there.")
                return self._after(s, account, hook_id, text)
        elif action == "reactivate":
            replay = form.get("replay")
            if replay not in ("0", "1"):
                return self._after(s, account, hook_id, "Choose one of the two buttons.",
                                   error=True, status=400)
            env = self.api.as_account(account, "ActivateWebHook", webhook_id=hook_id,
                                      replay=replay)
            if env.error == Error.OK:
                n = env.result["replayedEvents"]
                text = ("Reactivated; " + (f"{n} buffered events are being sent, oldest "
                                           "first." if replay == "1" else
                                           "its buffered events were discarded."))
                return self._after(s, account, hook_id, text)
        elif action == "rotate":
            hours = _int(form.get("grace_hours"), zero=True)
            if hours is None:
                return self._after(s, account, hook_id, "The grace period is a number of "
                                   "hours (0 to 168).", error=True, status=400)
            grace = hours * 3600
            env = self.api.as_account(account, "RotateWebHookSecret", webhook_id=hook_id,
                                      grace=grace)
            if env.error == Error.OK:
                outcome = views.secret(env.result["secret"], hours)
                return self._webhook(s, account, hook_id, {}, outcome)
        else:  # delete
            if form.get("confirm") != "yes":
                hook = self._one(account, hook_id)
                if hook is None:
                    return self._refused(404, "Webhook not found", f"Webhook {hook_id} is "
                                         "not one of your webhooks.", s, account)
                return self._page(200, f"Delete webhook #{hook_id}?", views.delete_confirm(
                    hook, self.sessions.form_token(s)), s, account)
            env = self.api.as_account(account, "DeleteWebHookById", webhook_id=hook_id)
            if env.error == Error.OK:
                log.info("portal: %r deleted webhook %d", account.username, hook_id)
                return self._page(200, f"Webhook #{hook_id} deleted", views.deleted(hook_id),
                                  s, account)
        if env.error == Error.NOT_FOUND:
            return self._refused(404, "Webhook not found", f"Webhook {hook_id} is not one of "
                                 "your webhooks.", s, account)
        status = 429 if env.error == Error.THROTTLED else 400
        return self._after(s, account, hook_id, env.message, error=True, status=status)

    def _after(self, s, account, hook_id, text: str, *, error: bool = False,
               status: int = 200) -> Output:
        return self._webhook(s, account, hook_id, {}, views.notice(text, error=error),
                             status)


def _int(value: str | None, *, zero: bool = False) -> int | None:
    """A positive decimal number (or 0 with ``zero``), else None."""
    if value is None or not value.isdigit() or len(value) > 18:
        return None
    number = int(value)
    return number if number > 0 or (zero and number == 0) else None
