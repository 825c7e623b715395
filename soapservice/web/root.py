"""The resource tree of ``soapservice serve``, and ``GET /``: an index of its endpoints."""

from twisted.web import resource
from twisted.web.wsgi import WSGIResource

from soapservice import __version__
from soapservice.soap.apps import build_wsgi
from soapservice.soap.limits import XmlLimits
from soapservice.web.demo import Demo
from soapservice.web.health import Health
from soapservice.web.jsonapi import JsonRoot
from soapservice.web.legacy import legacy_tree
from soapservice.web.pages import Markup, fragment, page, set_page_headers, static_files
from soapservice.web.portal import Portal

# (link or None, what is there, what it is): the endpoints a newcomer looks for.
ENDPOINTS = (
    ("/soap?wsdl", "/soap", "SOAP 1.1 (document/literal): the WSDL"),
    ("/soap12?wsdl", "/soap12", "SOAP 1.2: the WSDL"),
    ("/webservice/webservice/soap3?wsdl", "/webservice/webservice/soap3",
     "the legacy platform's rpc/encoded endpoint for positional callers: the WSDL"),
    (None, "/json/<Operation>", "the same operations with form or JSON parameters, "
     "answering the JSON envelope"),
    ("/demo", "/demo", "Web Service Demo: try an operation, copy sample code"),
    ("/portal", "/portal", "customer portal: your webhooks' health, deliveries and actions"),
    (None, "POST /events", "ingest an event (bearer token SOAPSERVICE_INGEST_TOKEN)"),
    (None, "/reactivate/<token>", "the reactivation link of a deactivation notification"),
    ("/healthz", "/healthz", "health: the store answers"),
    ("/metrics", "/metrics", "Prometheus metrics"),
)


class Root(resource.Resource):
    """``GET /``: what this server offers, with links (the startup line prints this
    address)."""

    def __init__(self):
        super().__init__()
        rows = Markup("\n".join(
            fragment("index-row.html", link=link, name=name, what=what) if link else
            fragment("index-row-plain.html", name=name, what=what)
            for link, name, what in ENDPOINTS))
        self.body = page("index.html", "soapservice", version=__version__, rows=rows)

    def getChild(self, path, request):
        if path == b"" and not request.postpath:  # "/" itself
            return self
        return super().getChild(path, request)

    def render_GET(self, request):
        set_page_headers(request)
        return self.body


def build_root(api, settings, reactor, pool, extra=None) -> resource.Resource:
    """``extra``: more children (name -> resource) from the other parts of the service."""
    root = Root()
    base = settings.base_url
    xml_limits = XmlLimits.from_settings(settings)
    for name, version in ((b"soap", "1.1"), (b"soap12", "1.2")):
        path = f"/{name.decode()}"
        wsgi = build_wsgi(api, version, base + path, settings.max_body_bytes,
                          xml_limits=xml_limits,
                          path_from_host=path if settings.address_from_request else None)
        root.putChild(name, WSGIResource(reactor, pool, wsgi))
    root.putChild(b"json", JsonRoot(api, reactor, pool))
    root.putChild(b"healthz", Health(reactor, pool))
    root.putChild(b"webservice", legacy_tree(api, settings, reactor, pool))
    root.putChild(b"demo", Demo(settings))
    root.putChild(b"portal", Portal(api, settings, reactor, pool))
    root.putChild(b"static", static_files())
    for name, child in (extra or {}).items():
        root.putChild(name.encode() if isinstance(name, str) else name, child)
    return root
