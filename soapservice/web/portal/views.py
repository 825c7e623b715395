"""The portal's pages from the core's answers (plain dicts), through the templates in
``web/templates/portal/``: every value is escaped by the template mechanism; only
fragments rendered from templates (or the chart module's SVG) are inserted as markup.
No inline script or style (the CSP forbids both): the layout is ``/static/portal.css``.
Every form posts to the portal and carries the session's anti-forgery field.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from soapservice import charts
from soapservice.operations import DELIVERY_STATES
from soapservice.web.pages import Markup, fragment, render

PAGE_SIZE = 25
EMPTY = Markup("")


def f(name: str, **values) -> Markup:
    return fragment(f"portal/{name}.html", **values)


def join(parts) -> Markup:
    return Markup("\n".join(parts))


def when(value) -> Markup:
    """A moment (datetime or UNIX seconds) as a ``<time>`` in UTC; "never" for None."""
    if value is None:
        return f("never", words="never")
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    moment = moment.astimezone(UTC)
    return f("time", iso=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
             shown=moment.strftime("%Y-%m-%d %H:%M:%S"))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def page(title: str, main: Markup, *, form_token: str | None = None,
         signed_in: str | None = None, full: bool = True) -> bytes:
    """The whole page: header (who is signed in, sign-out), then ``main``."""
    if signed_in is None:
        nav = EMPTY
    else:
        nav = f("nav-full" if full else "nav-link", who=signed_in, form=form_token or "")
    return render("portal/page.html", title=title, nav=nav, main=main)


def notice(text: str, *, error: bool = False, ident: str = "outcome") -> Markup:
    """A message; an action's outcome takes the focus (keyboard and screen reader land
    on what happened, not at the top of the page again)."""
    focus = Markup(' tabindex="-1" autofocus') if ident == "outcome" else EMPTY
    return f("notice", kind="notice error" if error else "notice",
             role="alert" if error else "status", ident=ident, words=text, focus=focus)


def refused(title: str, detail: str) -> Markup:
    return f("refused", heading=title, detail=detail)


def sign_in(form_token: str, message: str | None = None, username: str = "",
            next_hook: int | None = None) -> Markup:
    return f("sign-in", form=form_token, username=username,
             problem=notice(message, error=True, ident="sign-in-error") if message else EMPTY,
             next=f("next-field", webhook_id=next_hook) if next_hook else EMPTY)


# -- the overview ----------------------------------------------------------------------
def sparkline(o, names: list[tuple[str, str]]) -> Markup:
    """The overview's small chart of the last 24 hours (charts.py's SVG, text escaped);
    ``names``: each hour's label and title, the same for every row of the page."""
    bars = [charts.Bar(label, title, b.succeeded, b.failed)
            for (label, title), b in zip(names, o.hours, strict=True)]
    return Markup(charts.bar_chart(bars, small=True, width=144, height=32,
                                   label=f"Webhook {o.id}, last 24 hours"))


def overview(hooks: list, message: Markup = EMPTY) -> Markup:
    """``hooks``: store.portal.WebhookOverview rows."""
    if not hooks:
        return f("overview-empty", message=message)
    # Every row's hours are the same 24: their names once (formatting dates per bar
    # was most of the page's time at 100 webhooks).
    names = [(bar.label, bar.title) for bar in charts.hour_bars(hooks[0].hours)]
    rows = []
    for h in hooks:
        rows.append(f(
            "overview-row", id=h.id, health=h.health, app=h.app, event=h.event, url=h.url,
            badge=f("badge", state=h.health), failures=h.failure_count, buffered=h.buffered,
            held=h.held, dropped=h.dropped, last_success=when(h.last_success_at),
            last_failure=when(h.last_failure_at),
            last_error=f("last-error", words=h.last_error)
            if h.last_error and h.health != "healthy" else EMPTY,
            chart=sparkline(h, names)))
    failing = sum(1 for h in hooks if h.health != "healthy")
    summary = plural(len(hooks), "webhook") + (
        f", {failing} need attention." if failing else ", all healthy.")
    return f("overview", message=message, summary=summary, rows=join(rows))


# -- one webhook -------------------------------------------------------------------------
def _utc_local(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def chart_section(c) -> Markup:
    """The webhook page's charts (store.portal.Chart): per hour over 24 h, per day over 7."""
    hours, days = charts.hour_bars(c.hours), charts.day_bars(c.days)
    return f("charts", legend=Markup(charts.legend()),
             hours=Markup(charts.bar_chart(hours, label="Attempts per hour, last 24 hours",
                                           label_every=3)),
             days=Markup(charts.bar_chart(days, label="Attempts per day, last 7 days")),
             ok_24h=sum(b.succeeded for b in c.hours), failed_24h=sum(b.failed for b in c.hours),
             ok_7d=sum(b.succeeded for b in c.days), failed_7d=sum(b.failed for b in c.days),
             p50_24h=_ms(c.p50_ms_24h), p95_24h=_ms(c.p95_ms_24h),
             p50_7d=_ms(c.p50_ms_7d), p95_7d=_ms(c.p95_ms_7d))


def webhook(h, deliveries: list[dict], token: str, *, state: str | None,
            before: int | None, now: float, charts: Markup = EMPTY,
            outcome: Markup = EMPTY, full: bool = True) -> Markup:
    """``h``: a store.portal.WebhookOverview; ``deliveries``: GetWebHookDeliveries' result."""
    base = f"/portal/webhooks/{h.id}"
    actions = [f("action-test", base=base, form=token)]
    if h.active:
        end = datetime.fromtimestamp(now, UTC).replace(microsecond=0)
        actions.append(f("action-resend", base=base, form=token,
                         since=_utc_local(end - timedelta(days=1)), until=_utc_local(end)))
    else:
        actions.append(f("action-reactivate", base=base, form=token,
                         events=plural(h.buffered, "buffered event")))
    if full:
        actions.append(f("action-rotate", base=base, form=token))
        actions.append(f("action-delete", base=base, form=token))
    else:
        actions.append(f("action-link-note"))
    return f("webhook", id=h.id, app=h.app, event=h.event, url=h.url, outcome=outcome,
             tone="ok" if h.health == "healthy" else "failed",
             badge=f("badge", state=h.health), failures=h.failure_count,
             buffered=h.buffered, held=h.held, dropped=h.dropped,
             last_success=when(h.last_success_at), last_failure=when(h.last_failure_at),
             last_error=h.last_error or f("never", words="none"), actions=join(actions),
             charts=charts, log=log(h.id, deliveries, token, state=state, before=before,
                                    active=h.active))


def _attempts(d: dict) -> Markup:
    items = []
    for a in d.get("attempts") or []:
        items.append(f(
            "attempt", at=when(a["at"]),
            status=a["status"] if a.get("status") is not None else "no answer",
            duration=a["durationMs"],
            error=f("attempt-error", error=a["error"]) if a.get("error") else EMPTY,
            snippet=f("snippet", words=a["responseSnippet"])
            if a.get("responseSnippet") else EMPTY))
    if not items:
        return f("never", words="no attempt yet")
    return f("attempts", summary=plural(len(items), "attempt") + " (latest first)",
             items=Markup("".join(items)))


def log(hid: int, deliveries: list[dict], token: str, *, state: str | None,
        before: int | None, active: bool) -> Markup:
    base = f"/portal/webhooks/{hid}"
    options = [f("option", value="", label="all", selected=EMPTY)] + [
        f("option", value=s, label=s, selected=Markup(" selected") if s == state else EMPTY)
        for s in DELIVERY_STATES]
    rows = []
    for d in deliveries:
        resend = EMPTY
        if active and d["state"] in ("delivered", "failed"):
            resend = f("resend-one", base=base, form=token, id=d["id"], event_id=d["eventId"])
        rows.append(f(
            "delivery-row", id=d["id"], state=d["state"], created=when(d["created"]),
            event_id=d["eventId"],
            subscriber=f("subscriber", subscriber=d["subscriberId"])
            if d.get("subscriberId") else EMPTY,
            message_id=d["messageId"],
            last_status=d["lastStatus"] if d.get("lastStatus") is not None else "–",
            last_error=d.get("lastError") or "", attempts=_attempts(d), resend=resend))
    if rows:
        caption = "Newest first" + (f", state {state}" if state else "") + "."
        table = f("log-table", caption=caption, rows=join(rows))
    else:
        table = f("log-empty", words="No deliveries" + (f" in state {state}" if state else "")
                  + (" before these." if before else "."))
    links = []
    if before:
        query = urlencode({"state": state} if state else {})
        links.append(f("link", href=base + ("?" + query if query else ""), ident="newest",
                       rel=EMPTY, words="Newest"))
    if len(deliveries) >= PAGE_SIZE:
        query = urlencode({**({"state": state} if state else {}),
                           "before": deliveries[-1]["id"]})
        links.append(f("link", href=f"{base}?{query}", ident="older",
                       rel=Markup(' rel="next"'), words="Older"))
    pager = f("pager", links=Markup(" ".join(links))) if links else EMPTY
    return f("log", base=base, options=Markup("".join(options)), table=table, pager=pager)


def secret(value: str, hours: int | None) -> Markup:
    grace = (f"the old one keeps signing too for {plural(hours, 'hour')}" if hours
             else "the old secret no longer signs")
    return f("secret", secret=value, grace=grace)


def delete_confirm(h, token: str) -> Markup:
    return f("delete-confirm", id=h.id, app=h.app, event=h.event, url=h.url,
             events=plural(h.buffered, "undelivered event"),
             base=f"/portal/webhooks/{h.id}", form=token)


def deleted(hid: int) -> Markup:
    return f("deleted", id=hid)
