"""The portal's Twisted resource: reads a request, hands it to the handler in a worker
thread (the service's runner: no store or password work on the reactor) and writes the
answer with the pages' security headers."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from twisted.web import resource

from soapservice.services import Runner
from soapservice.web.pages import SECURITY_HEADERS
from soapservice.web.portal import views
from soapservice.web.portal.handler import COOKIE, LOGIN_COOKIE, Handler, Input, Output
from soapservice.web.respond import respond

HEADERS = {**SECURITY_HEADERS, b"cache-control": b"no-store",
           b"content-type": b"text/html; charset=utf-8", b"x-robots-tag": b"noindex"}
_MAX_FIELD = 4096


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw[:_MAX_FIELD].decode("utf-8", "replace")


class Portal(resource.Resource):
    isLeaf = True

    def __init__(self, api, settings, reactor, pool, clock=time.time):
        super().__init__()
        self.settings = settings
        self.run = Runner(reactor, pool)
        self.handler = Handler(api, settings, clock)
        self.secure = settings.base_url.startswith("https:")

    def render_GET(self, request):
        return self._serve(request, "GET")

    def render_POST(self, request):
        return self._serve(request, "POST")

    def render_HEAD(self, request):
        return self._serve(request, "GET")

    def _cross_site(self, request) -> bool:
        """A browser's POST says where it comes from: refuse another site's. (With
        no-referrer a same-origin POST says ``Origin: null``; Sec-Fetch-Site tells.)"""
        fetch_site = request.getHeader("sec-fetch-site")
        if fetch_site is not None and fetch_site.strip().lower() not in ("same-origin",
                                                                          "none"):
            return True
        origin = request.getHeader("origin")
        if origin is None or origin.strip().lower() == "null":
            return False  # the form field bound to the session still applies
        allowed = {_origin(self.settings.base_url)}
        host = request.getHeader("host")
        if host:
            allowed.add(f"{'https' if request.isSecure() else 'http'}://{host}".lower())
        return origin.strip().lower() not in allowed

    def _input(self, request, method: str) -> Input:
        args = request.args or {}
        values = {_text(k): _text(v[0]) for k, v in args.items() if v}
        post = method == "POST"
        address = request.getClientAddress()
        return Input(
            method=method,
            parts=[_text(p) for p in request.postpath],
            query={} if post else values,
            form=values if post else {},
            cookie=_text(request.getCookie(COOKIE.encode())) or None,
            login_nonce=_text(request.getCookie(LOGIN_COOKIE.encode())) or None,
            address=getattr(address, "host", "-"),
            cross_site=post and self._cross_site(request))

    def _serve(self, request, method: str):
        inp = self._input(request, method)
        d = self.run(self.handler.handle, inp)
        return respond(request, d, lambda out: self._write(request, out), what="portal",
                       internal=self._internal)

    def _write(self, request, out: Output) -> bytes:
        request.setResponseCode(out.status)
        for name, value in HEADERS.items():
            request.setHeader(name, value)
        if out.location:
            request.setHeader(b"location", out.location.encode("ascii"))
        for name, value, max_age in out.cookies:
            request.addCookie(name.encode(), (value or "").encode("ascii"), path=b"/portal",
                              max_age=str(max_age if value is not None else 0).encode(),
                              httpOnly=True, sameSite="strict", secure=self.secure)
        return out.body

    def _internal(self, request, reference: str) -> bytes:
        return self._write(request, Output(500, views.page("Something went wrong", views.refused(
            "Something went wrong", f"The server could not answer (reference {reference}). "
            "Try again in a moment."))))
