"""What the HTML pages (index, demo, reactivation) share: security headers, the shipped
static files at ``/static/``, and templates from ``web/templates`` with every value
escaped. Every page is a template: a page's body is a fragment (its own template)
placed in ``page.html``; no page writes HTML in Python, so nothing reaches a page
unescaped unless it is a fragment rendered from a template itself (:class:`Markup`).

The pages ship inside the package (no CDN: the machines running the service may have no
internet) and allow only same-origin resources and no inline script.
"""

from __future__ import annotations

import functools
import html
import string
from pathlib import Path

from twisted.web import pages as twisted_pages
from twisted.web import resource, static

WEB = Path(__file__).resolve().parent
STATIC = WEB / "static"
TEMPLATES = WEB / "templates"

SECURITY_HEADERS = {
    b"content-security-policy": (b"default-src 'none'; script-src 'self'; style-src 'self'; "
                                 b"img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                                 b"form-action 'self'; frame-ancestors 'none'"),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
}


def set_page_headers(request, content_type: bytes = b"text/html; charset=utf-8",
                     cache: bytes = b"no-cache"):
    """Content type, caching and the security headers every page answer carries."""
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"cache-control", cache)
    for name, value in SECURITY_HEADERS.items():
        request.setHeader(name, value)


class Markup(str):
    """A value that is already HTML: :func:`render` inserts it unescaped."""


def render_text(text: str, **values) -> bytes:
    """``text`` with its ``$name`` placeholders filled in, each value HTML-escaped (quotes
    too) unless it is :class:`Markup`. A missing value raises ``KeyError``."""
    escaped = {k: v if isinstance(v, Markup) else html.escape(str(v), quote=True)
               for k, v in values.items()}
    return string.Template(text).substitute(escaped).encode("utf-8")


@functools.cache
def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def render(template: str, **values) -> bytes:
    """``web/templates/<template>`` through :func:`render_text`."""
    return render_text(_template(template), **values)


def fragment(template: str, **values) -> Markup:
    """A piece of a page from ``web/templates`` (values escaped as by :func:`render`),
    to be placed in another template."""
    return Markup(render(template, **values).decode("utf-8").rstrip("\n"))


def page(template: str, title: str, **values) -> bytes:
    """A whole page: ``template``'s fragment as the main part of ``page.html``."""
    return render("page.html", title=title, main=fragment(template, **values))


class StaticPage(resource.Resource):
    """A fixed HTML page from ``web/templates``, read once at start."""

    isLeaf = True

    def __init__(self, template: str):
        super().__init__()
        self.body = (TEMPLATES / template).read_bytes()

    def render_GET(self, request):
        set_page_headers(request)
        return self.body


class StaticFiles(static.File):
    """``/static/``: the shipped CSS and JS, without directory listings."""

    contentTypes = {**static.File.contentTypes, ".js": "text/javascript; charset=utf-8",
                    ".css": "text/css; charset=utf-8"}

    def directoryListing(self):
        return twisted_pages.forbidden("No listing here.")

    def getChild(self, path, request):
        # A NUL byte (/static/%00) made twisted's stat() raise: a 500 and a traceback.
        if b"\x00" in path:
            return twisted_pages.notFound("No such file.")
        try:
            return super().getChild(path, request)
        except (ValueError, OSError):
            return twisted_pages.notFound("No such file.")

    def render_GET(self, request):
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control", b"no-cache")
        return super().render_GET(request)


def static_files() -> StaticFiles:
    return StaticFiles(str(STATIC), defaultType="application/octet-stream")
