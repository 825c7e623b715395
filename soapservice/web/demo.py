"""``/demo``: the Web Service Demo page, and ``/static/`` for the pages' CSS and JS.

The page is static HTML/CSS/JS shipped in the package (no CDN, no server-side state):
it reads ``/demo/operations.json``, built here from the Spyne service definition, so a
new operation or parameter shows up without editing the page, and it calls ``/soap``
from the browser like any other client. Nothing typed on the page reaches the server
except through that SOAP call.
"""

from __future__ import annotations

import json
from pathlib import Path

from spyne.model.primitive import Boolean, Integer
from twisted.web import resource, static

from soapservice.errors import DESCRIPTIONS, EVENTS
from soapservice.soap.service import OPERATIONS, WebHookService, parameter_types
from soapservice.soap.types import NAMESPACE

WEB = Path(__file__).resolve().parent
STATIC = WEB / "static"
TEMPLATES = WEB / "templates"

# Values a parameter may take, where the API fixes them (the page offers a choice).
CHOICES = {"event": list(EVENTS), "replayEvents": ["0", "1"]}

# A line for people choosing an operation; an operation without one still appears.
SUMMARIES = {
    "CreateWebHook": "Register a URL that receives one event of one app.",
    "GetWebHooks": "List the account's webhooks, optionally filtered by app and event.",
    "ActivateWebHook": "Reactivate a webhook; replayEvents=1 also sends its buffered "
                       "events, 0 discards them.",
    "DeleteWebHookById": "Delete a webhook and its undelivered events.",
}

HINTS = {
    "url": "http or https",
    "replayEvents": "1 sends the buffered events, 0 discards them",
    "app": "your application's name",
}

# The pages are same-origin only: no inline script, no third-party anything.
SECURITY_HEADERS = {
    b"content-security-policy": (b"default-src 'none'; script-src 'self'; style-src 'self'; "
                                 b"img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                                 b"form-action 'self'; frame-ancestors 'none'"),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
}


def _type_name(spyne_type) -> str:
    if issubclass(spyne_type, Boolean):
        return "boolean"
    if issubclass(spyne_type, Integer):
        return "int"
    return "string"


def describe_operations(base_url: str) -> dict:
    """The service as the page needs it: operations, parameters, error texts, URLs."""
    operations = []
    for name in OPERATIONS:
        descriptor = WebHookService.public_methods[name]
        parameters = []
        for param, spyne_type in parameter_types(name):
            parameters.append({
                "name": param,
                "type": _type_name(spyne_type),
                "required": (spyne_type.Attributes.min_occurs or 0) >= 1,
                "choices": CHOICES.get(param),
                "secret": param == "password",
                "hint": HINTS.get(param, ""),
            })
        operations.append({
            "name": name,
            "summary": SUMMARIES.get(name, ""),
            "resultElement": next(iter(descriptor.out_message._type_info)),
            "parameters": parameters,
        })
    return {
        "namespace": NAMESPACE,
        "baseUrl": base_url,
        "soapPath": "/soap",
        "jsonPath": "/json/",
        "wsdlUrl": f"{base_url}/soap?wsdl",
        "errors": {str(int(code)): text for code, text in DESCRIPTIONS.items()},
        "operations": operations,
    }


def _secure(request, content_type: bytes, cache: bytes = b"no-cache"):
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"cache-control", cache)
    for name, value in SECURITY_HEADERS.items():
        request.setHeader(name, value)


class OperationsJson(resource.Resource):
    isLeaf = True

    def __init__(self, base_url: str):
        super().__init__()
        self.body = json.dumps(describe_operations(base_url), indent=1).encode()

    def render_GET(self, request):
        _secure(request, b"application/json; charset=utf-8")
        return self.body


class Page(resource.Resource):
    """A static HTML page from ``web/templates``, read once at start."""

    isLeaf = True

    def __init__(self, template: str):
        super().__init__()
        self.body = (TEMPLATES / template).read_bytes()

    def render_GET(self, request):
        _secure(request, b"text/html; charset=utf-8")
        return self.body


class Demo(resource.Resource):
    """``/demo`` (the page) and ``/demo/operations.json``."""

    def __init__(self, settings):
        super().__init__()
        self.page = Page("demo.html")
        self.putChild(b"operations.json", OperationsJson(settings.base_url))

    def render_GET(self, request):
        return self.page.render_GET(request)

    def getChild(self, path, request):
        if path == b"":
            return self.page
        return resource.NoResource()


class StaticFiles(static.File):
    """``/static/``: the shipped CSS and JS, without directory listings."""

    contentTypes = {**static.File.contentTypes, ".js": "text/javascript; charset=utf-8",
                    ".css": "text/css; charset=utf-8"}

    def directoryListing(self):
        return resource.ForbiddenResource()

    def render_GET(self, request):
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control", b"no-cache")
        return super().render_GET(request)


def static_files() -> StaticFiles:
    return StaticFiles(str(STATIC), defaultType="application/octet-stream")
