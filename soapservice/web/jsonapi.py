"""``/json/<Operation>``: the four operations with form-encoded or JSON parameters,
answering the JSON envelope with HTTP 200, like the original's JSON API.

Parameter names come from the Spyne service definition, so the SOAP and JSON surfaces
cannot drift apart.
"""

from __future__ import annotations

import json
from datetime import datetime

from twisted.internet.threads import deferToThreadPool
from twisted.web import resource, server

from soapservice.errors import Error
from soapservice.soap.service import OPERATIONS, parameter_names


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
        self.method = getattr(api, OPERATIONS[name])
        self.params = parameter_names(name)

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
        d = deferToThreadPool(self.reactor, self.pool, self.method, **kwargs)

        def done(envelope):
            if not request._disconnected:
                request.write(render_envelope(envelope))
                request.finish()

        def failed(failure):
            if not request._disconnected:
                request.write(json.dumps({"error": int(Error.INTERNAL),
                                          "message": "Internal error"}).encode())
                request.finish()

        d.addCallbacks(done, failed)
        return server.NOT_DONE_YET


class JsonRoot(resource.Resource):
    def __init__(self, api, reactor, pool):
        super().__init__()
        for name in OPERATIONS:
            self.putChild(name.encode(), JsonOperation(api, reactor, pool, name))

    def getChild(self, path, request):
        return resource.NoResource(f"unknown operation {path.decode('utf-8', 'replace')!r}")
