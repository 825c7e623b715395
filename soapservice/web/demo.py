"""``/demo``: the Web Service Demo page and ``/demo/operations.json``.

The page is static HTML/CSS/JS shipped in the package (no CDN, no server-side state):
it reads ``/demo/operations.json``, built here from the Spyne service definition, so a
new operation or parameter shows up without editing the page, and it calls ``/soap``
from the browser like any other client. Nothing typed on the page reaches the server
except through that SOAP call.
"""

from __future__ import annotations

import json

from spyne.model.primitive import Boolean, Integer
from twisted.web import pages as twisted_pages
from twisted.web import resource

from soapservice.errors import DESCRIPTIONS, EVENTS
from soapservice.soap.service import OPERATIONS, WebHookService, parameter_types
from soapservice.soap.types import NAMESPACE
from soapservice.web.pages import StaticPage, set_page_headers

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


class OperationsJson(resource.Resource):
    isLeaf = True

    def __init__(self, base_url: str):
        super().__init__()
        self.body = json.dumps(describe_operations(base_url), indent=1).encode()

    def render_GET(self, request):
        set_page_headers(request, b"application/json; charset=utf-8")
        return self.body


class Demo(resource.Resource):
    """``/demo`` (the page) and ``/demo/operations.json``."""

    def __init__(self, settings):
        super().__init__()
        self.page = StaticPage("demo.html")
        self.putChild(b"operations.json", OperationsJson(settings.base_url))

    def render_GET(self, request):
        return self.page.render_GET(request)

    def getChild(self, path, request):
        if path == b"":
            return self.page
        return twisted_pages.notFound()
