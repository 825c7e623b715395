"""``/demo``: the Web Service Demo page and ``/demo/operations.json``.

The page is static HTML/CSS/JS shipped in the package (no CDN, no server-side state):
it reads ``/demo/operations.json``, built here from the operation registry, so a
new operation or parameter shows up without editing the page, and it calls ``/soap``
from the browser like any other client. Nothing typed on the page reaches the server
except through that SOAP call.
"""

from __future__ import annotations

import json

from twisted.web import pages as twisted_pages
from twisted.web import resource

from soapservice import operations as ops
from soapservice.addresses import PerAddress, base_from_host
from soapservice.errors import DESCRIPTIONS
from soapservice.operations import NAMESPACE
from soapservice.web.pages import StaticPage, set_page_headers

# The page offers these types; dateTime is typed in as text (ISO 8601).
_PAGE_TYPES = {ops.STRING: "string", ops.INT: "int", ops.LONG: "int",
               ops.BOOLEAN: "boolean", ops.DATETIME: "dateTime"}


def describe_operations(base_url: str) -> dict:
    """The service as the page needs it: operations, parameters, error texts, URLs."""
    operations = []
    for op in ops.OPERATIONS:
        parameters = [{
            "name": param.name,
            "type": _PAGE_TYPES[param.type],
            "required": param.required,
            "choices": list(param.choices) if param.choices else None,
            "secret": param.secret,
            "hint": param.hint,
        } for param in op.params]
        operations.append({
            "name": op.name,
            "summary": op.summary,
            "resultElement": op.result_name,
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

    def __init__(self, base_url: str, from_host: bool = False):
        """``from_host``: the samples name the address each request came in on."""
        super().__init__()
        self.base_url = base_url
        self.body = self._build(base_url)
        self.documents = PerAddress(self._build) if from_host else None

    @staticmethod
    def _build(base_url: str) -> bytes:
        return json.dumps(describe_operations(base_url), indent=1).encode()

    def render_GET(self, request):
        set_page_headers(request, b"application/json; charset=utf-8")
        if self.documents is None:
            return self.body
        return self.documents.get(base_from_host(request.getHeader(b"host"), self.base_url))


class Demo(resource.Resource):
    """``/demo`` (the page) and ``/demo/operations.json``."""

    def __init__(self, settings):
        super().__init__()
        self.page = StaticPage("demo.html")
        self.putChild(b"operations.json", OperationsJson(settings.base_url,
                                                         settings.address_from_request))

    def render_GET(self, request):
        return self.page.render_GET(request)

    def getChild(self, path, request):
        if path == b"":
            return self.page
        return twisted_pages.notFound()
