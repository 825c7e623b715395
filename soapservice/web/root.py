"""The resource tree of ``soapservice serve``."""

from twisted.web import resource
from twisted.web.wsgi import WSGIResource

from soapservice.soap.apps import build_wsgi
from soapservice.web.demo import Demo
from soapservice.web.health import Health
from soapservice.web.jsonapi import JsonRoot
from soapservice.web.legacy import legacy_tree
from soapservice.web.pages import static_files


class Root(resource.Resource):
    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return (b"soapservice: SOAP 1.1 at /soap (WSDL /soap?wsdl), SOAP 1.2 at /soap12, "
                b"JSON at /json/<Operation>, demo at /demo\n")


def build_root(api, settings, reactor, pool, extra=None) -> resource.Resource:
    """``extra``: more children (name -> resource) from the other parts of the service."""
    root = Root()
    base = settings.base_url
    for name, version in ((b"soap", "1.1"), (b"soap12", "1.2")):
        wsgi = build_wsgi(api, version, f"{base}/{name.decode()}", settings.max_body_bytes)
        root.putChild(name, WSGIResource(reactor, pool, wsgi))
    root.putChild(b"json", JsonRoot(api, reactor, pool))
    root.putChild(b"healthz", Health(reactor, pool))
    root.putChild(b"webservice", legacy_tree(api, settings, reactor, pool))
    root.putChild(b"demo", Demo(settings))
    root.putChild(b"static", static_files())
    for name, child in (extra or {}).items():
        root.putChild(name.encode() if isinstance(name, str) else name, child)
    return root
