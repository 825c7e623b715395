"""``/webservice/webservice/...``: the legacy platform's URL layout, so its customers'
code only changes the host name.

- ``soap3`` (``?wsdl`` for the WSDL): rpc/encoded SOAP 1.1 (:mod:`soapservice.legacy`);
- ``json/<operation in lower case>``: the JSON mirror of :mod:`soapservice.web.jsonapi`.

Each SOAP call (parsing included) runs on the thread pool, like every other call.
"""

from __future__ import annotations

from twisted.internet.threads import deferToThreadPool
from twisted.web import resource, server

from soapservice.legacy.protocol import Fault, answer, render_fault
from soapservice.legacy.wsdl import PATH, legacy_wsdl
from soapservice.soap.service import OPERATIONS
from soapservice.web.jsonapi import JsonOperation

_XML = b"text/xml; charset=utf-8"


class LegacySoap(resource.Resource):
    isLeaf = True

    def __init__(self, api, reactor, pool, address: str):
        super().__init__()
        self.api, self.reactor, self.pool = api, reactor, pool
        self.wsdl = legacy_wsdl(address)

    def render_GET(self, request):
        # twisted.web drops "?wsdl" from request.args (no "="): read the query itself.
        query = request.uri.partition(b"?")[2]
        if any(p.partition(b"=")[0].lower() == b"wsdl" for p in query.split(b"&")):
            request.setHeader(b"content-type", _XML)
            return self.wsdl
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return (b"rpc/encoded SOAP 1.1 endpoint of soapservice; POST SOAP requests here, "
                b"WSDL at ?wsdl\n")

    def render_POST(self, request):
        body = request.content.read()
        host = getattr(request.getClientAddress(), "host", "-")
        d = deferToThreadPool(self.reactor, self.pool, answer, self.api, body, host)

        def done(outcome):
            status, payload = outcome
            self._write(request, status, payload)

        def failed(failure):
            self._write(request, 500, render_fault(Fault("Internal error", "Server")))

        d.addCallbacks(done, failed)
        return server.NOT_DONE_YET

    @staticmethod
    def _write(request, status, payload):
        if request._disconnected:
            return
        request.setResponseCode(status)
        request.setHeader(b"content-type", _XML)
        request.write(payload)
        request.finish()


class LegacyJson(resource.Resource):
    """``json/createwebhook`` and friends; the operation name in any case."""

    def __init__(self, api, reactor, pool):
        super().__init__()
        self.operations = {name.lower(): JsonOperation(api, reactor, pool, name)
                           for name in OPERATIONS}

    def getChild(self, path, request):
        child = self.operations.get(path.decode("utf-8", "replace").lower())
        if child is None:
            return resource.NoResource(f"unknown operation {path.decode('utf-8', 'replace')!r}")
        return child


def legacy_tree(api, settings, reactor, pool) -> resource.Resource:
    """The ``webservice`` child of the root, holding ``webservice/soap3`` and ``json``."""
    top, inner = resource.Resource(), resource.Resource()
    top.putChild(b"webservice", inner)
    inner.putChild(b"soap3", LegacySoap(api, reactor, pool, settings.base_url + PATH))
    inner.putChild(b"json", LegacyJson(api, reactor, pool))
    return top
