"""``/json/<Operation>``: the four operations with form-encoded or JSON parameters,
answering the JSON envelope with HTTP 200, like the original's JSON API.

Parameter names come from the operation registry (:mod:`soapservice.operations`), as
the SOAP service's do, so the SOAP and JSON surfaces cannot drift apart.
"""

from __future__ import annotations

import json
from datetime import datetime

from twisted.web import resource

from soapservice import operations as ops
from soapservice.errors import Error
from soapservice.services import Runner
from soapservice.web.respond import respond


def _default(value):
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(type(value))


def render_envelope(envelope) -> bytes:
    return json.dumps(envelope.as_dict(), default=_default).encode()


def parse_parameters(request) -> dict:
    """Form fields (query string or body), or a JSON object body."""
    ctype = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
    if ctype == "application/json":
        body = request.content.read()
        data = json.loads(body or b"{}")
        if not isinstance(data, dict):
            raise ValueError("JSON body must be an object")
        return data
    return {k.decode("utf-8"): v[-1].decode("utf-8") for k, v in request.args.items()}


class JsonOperation(resource.Resource):
    isLeaf = True

    def __init__(self, api, reactor, pool, name):
        super().__init__()
        self.api, self.reactor, self.pool, self.name = api, reactor, pool, name
        self.run = Runner(reactor, pool)  # blocking work off the reactor
        self.method = getattr(api, ops.get(name).function)
        self.params = ops.parameter_names(name)

    def render_GET(self, request):
        return self.render_POST(request)

    def render_POST(self, request):
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        try:
            raw = parse_parameters(request)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            request.setResponseCode(400)
            return json.dumps({"error": int(Error.INVALID_VALUE),
                               "message": f"Unreadable parameters: {str(exc)[:200]}"}).encode()
        kwargs = {}
        for name in self.params:
            value = raw.get(name)
            if isinstance(value, bool) or not isinstance(value, str | int | float | None):
                # true/false, lists and objects are no value of any parameter here.
                return json.dumps({"error": int(Error.INVALID_VALUE),
                                   "message": f"Invalid value for {name}"}).encode()
            kwargs[name] = value if value is None or isinstance(value, str) else str(value)
        address = request.getClientAddress()
        kwargs["address"] = getattr(address, "host", "-")
        d = self.run(self.method, **kwargs)
        return respond(request, d, render_envelope, what=f"/json/{self.name}",
                       internal=_internal)


def _internal(request, reference: str) -> bytes:
    return json.dumps({"error": int(Error.INTERNAL),
                       "message": f"Internal error (reference {reference})"}).encode()


class UnknownOperation(resource.Resource):
    """``/json/<no such operation>``: the JSON envelope (error 6, HTTP 404), naming the
    operations and, for a wrongly cased name, the right spelling (names are
    case-sensitive, as on the SOAP endpoints)."""

    isLeaf = True

    def __init__(self, name: str):
        super().__init__()
        known = {op.lower(): op for op in ops.BY_NAME}
        if not name:
            message = "No operation named: use /json/<Operation>"
        elif name.lower() in known:
            message = (f"Unknown operation {name!r}: did you mean {known[name.lower()]}? "
                       "Operation names are case-sensitive")
        else:
            message = f"Unknown operation {name[:100]!r}"
        self.message = f"{message}; operations: {', '.join(ops.BY_NAME)}"

    def render(self, request):
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        return json.dumps({"error": int(Error.INVALID_VALUE), "message": self.message}
                          ).encode()


class JsonRoot(resource.Resource):
    def __init__(self, api, reactor, pool):
        super().__init__()
        for name in ops.BY_NAME:
            self.putChild(name.encode(), JsonOperation(api, reactor, pool, name))

    def getChild(self, path, request):
        return UnknownOperation(path.decode("utf-8", "replace"))

    def render(self, request):  # /json itself
        return UnknownOperation("").render(request)
