"""``/webservice/webservice/...``: the legacy platform's URL layout, so its customers'
code only changes the host name.

- ``soap3`` (``?wsdl`` for the WSDL): rpc/encoded SOAP 1.1 (:mod:`soapservice.legacy`);
- ``json/<operation in lower case>``: the JSON mirror of :mod:`soapservice.web.jsonapi`.

Each SOAP call (parsing included) runs on the thread pool, like every other call.
"""

from __future__ import annotations

from twisted.web import resource

from soapservice import operations as ops
from soapservice.addresses import PerAddress, base_from_host
from soapservice.legacy.protocol import Fault, answer, render_fault
from soapservice.legacy.wsdl import PATH, legacy_wsdl
from soapservice.services import Runner
from soapservice.soap.limits import XmlLimits
from soapservice.web.jsonapi import JsonOperation
from soapservice.web.respond import respond

_XML = b"text/xml; charset=utf-8"


class LegacySoap(resource.Resource):
    isLeaf = True

    def __init__(self, api, reactor, pool, address: str, xml_limits=None,
                 from_host: bool = False):
        """``from_host``: the WSDL names the address each request came in on."""
        super().__init__()
        self.api, self.reactor, self.pool = api, reactor, pool
        self.run = Runner(reactor, pool)  # blocking work off the reactor
        self.wsdl = legacy_wsdl(address)
        self.fallback = address.removesuffix(PATH)
        self.documents = PerAddress(legacy_wsdl) if from_host else None
        self.xml_limits = xml_limits

    def render_GET(self, request):
        # twisted.web drops "?wsdl" from request.args (no "="): read the query itself.
        query = request.uri.partition(b"?")[2]
        if any(p.partition(b"=")[0].lower() == b"wsdl" for p in query.split(b"&")):
            request.setHeader(b"content-type", _XML)
            if self.documents is None:
                return self.wsdl
            base = base_from_host(request.getHeader(b"host"), self.fallback)
            return self.documents.get(base + PATH)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return (b"rpc/encoded SOAP 1.1 endpoint of soapservice; POST SOAP requests here, "
                b"WSDL at ?wsdl\n")

    def render_POST(self, request):
        body = request.content.read()
        host = getattr(request.getClientAddress(), "host", "-")
        d = self.run(answer, self.api, body, host,
                              self.xml_limits)

        def done(outcome):
            status, payload = outcome
            return self._answer(request, status, payload)

        def internal(request, reference):
            fault = Fault(f"Internal error (reference {reference})", "Server")
            return self._answer(request, 500, render_fault(fault))

        return respond(request, d, done, what="legacy SOAP", internal=internal)

    @staticmethod
    def _answer(request, status, payload) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", _XML)
        return payload


class LegacyJson(resource.Resource):
    """``json/createwebhook`` and friends; the operation name in any case."""

    def __init__(self, api, reactor, pool):
        super().__init__()
        self.operations = {name.lower(): JsonOperation(api, reactor, pool, name)
                           for name in ops.BY_NAME}

    def getChild(self, path, request):
        child = self.operations.get(path.decode("utf-8", "replace").lower())
        if child is None:
            return resource.NoResource(f"unknown operation {path.decode('utf-8', 'replace')!r}")
        return child


def legacy_tree(api, settings, reactor, pool) -> resource.Resource:
    """The ``webservice`` child of the root, holding ``webservice/soap3`` and ``json``."""
    top, inner = resource.Resource(), resource.Resource()
    top.putChild(b"webservice", inner)
    inner.putChild(b"soap3", LegacySoap(api, reactor, pool, settings.base_url + PATH,
                                        XmlLimits.from_settings(settings),
                                        from_host=settings.address_from_request))
    inner.putChild(b"json", LegacyJson(api, reactor, pool))
    return top
