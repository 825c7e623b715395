"""Spyne applications (SOAP 1.1 and 1.2) over the one service, as WSGI apps."""

import functools
import logging
import re
import traceback

import spyne.model.complex
from lxml import etree
from spyne import Application
from spyne.server.wsgi import WsgiApplication

from soapservice.addresses import PerAddress, base_from_host
from soapservice.soap.hardening import GuardedWsgi, HardenedSoap11, HardenedSoap12
from soapservice.soap.limits import XmlLimits
from soapservice.soap.responses import DirectResponses
from soapservice.soap.service import WebHookService
from soapservice.soap.types import NAMESPACE

SERVICE_NAME = "WebHookService"


class _ClientErrorsBriefly(logging.Filter):
    """Spyne logs every client fault with a traceback at ERROR and, for unparsable XML,
    the whole request (passwords included) at ERROR. Bad input is the client's
    business: one INFO line with the fault, never the request body. It also warns on
    every call that its own (customized) response class is instantiated: dropped."""

    def filter(self, record):
        if record.name.endswith(".invalid"):
            return False
        if record.name == "spyne.model.complex" and "customized class" in str(record.msg):
            return False  # Spyne's own response message classes, on every call
        exc = record.exc_info[1] if record.exc_info else record.msg
        code = getattr(exc, "faultcode", "") or ""
        if code == "Client" or code.startswith("Client."):
            if record.name == "spyne.server.wsgi":
                return False  # the same fault spyne.server._base has just logged
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "client fault %s: %s", (
                code, _QUOTED.sub("'***'", str(exc.faultstring)[:300]))
            record.exc_info = record.exc_text = None
        return True


# Spyne quotes the value it could not use ("Could not cast 'x' to integer"): whatever
# the client sent there (a password in the wrong field) stays out of the log.
_QUOTED = re.compile(r"""'[^']*'?|"[^"]*"?""")


class _StackOnlyForDebug:
    """Spyne formats the whole call stack for a DEBUG line on every call that builds
    its own customized response class (``logger.debug(traceback.format_stack())``: the
    argument is built even when DEBUG is off); ~5 % of a GetWebHooks call. Only build
    it when that logger would print it."""

    def __getattr__(self, name):
        return getattr(traceback, name)

    @staticmethod
    def format_stack(*args, **kwargs):
        if logging.getLogger("spyne.model.complex").isEnabledFor(logging.DEBUG):
            return traceback.format_stack(*args, **kwargs)
        return []


spyne.model.complex.traceback = _StackOnlyForDebug()


for _name in ("spyne.protocol.soap.soap11.invalid", "spyne.protocol.soap.soap12.invalid",
              "spyne.protocol.xml.invalid", "spyne.server._base", "spyne.server.wsgi",
              "spyne.application", "spyne.application.client", "spyne.model.complex"):
    logging.getLogger(_name).addFilter(_ClientErrorsBriefly())


class Soap11(DirectResponses, HardenedSoap11):
    """SOAP 1.1: hardened input, responses written by soap/responses.py."""


class Soap12(DirectResponses, HardenedSoap12):
    """SOAP 1.2: hardened input, responses written by soap/responses.py."""


def build_application(api, soap_version: str = "1.1", *,
                      direct_responses: bool = True,
                      xml_limits: XmlLimits | None = None) -> Application:
    """``direct_responses=False`` has Spyne serialize every response itself: the
    reference tests/test_soap_responses.py compares the direct writer with."""
    protocol = Soap12 if soap_version == "1.2" else Soap11
    out_protocol = protocol()
    out_protocol.direct_responses = direct_responses
    in_protocol = protocol(validator=None)
    in_protocol.xml_limits = xml_limits or XmlLimits()
    app = Application([WebHookService], tns=NAMESPACE, name=SERVICE_NAME,
                      in_protocol=in_protocol, out_protocol=out_protocol)
    app.event_manager.add_listener("method_call", lambda ctx: setattr(ctx, "udc", api))
    return app


def build_wsgi(api, soap_version: str, address: str, max_body_bytes: int, *,
               direct_responses: bool = True,
               xml_limits: XmlLimits | None = None, path_from_host: str | None = None):
    """A WSGI app whose WSDL names ``address`` (the public URL), never the Host header,
    and that answers a SOAP fault whatever goes wrong inside Spyne.

    ``path_from_host`` (``/soap``): the WSDL names ``http://<Host><path>`` of each
    request instead (a wildcard host without a public URL); Spyne's own WSDL cache,
    which would keep the first request's address for everyone, is not used for it."""
    wsgi = WsgiApplication(build_application(api, soap_version,
                                             direct_responses=direct_responses,
                                             xml_limits=xml_limits),
                           max_content_length=max_body_bytes)
    wsgi._wsdl = _wsdl_for(wsgi, address)
    guarded = GuardedWsgi(wsgi, soap_version)
    if path_from_host is None:
        return guarded
    return WsdlPerHost(guarded, address, path_from_host)


def _wsdl_for(wsgi, address: str) -> bytes:
    wsgi.doc.wsdl11.build_interface_document(address)
    return polish_wsdl(wsgi.doc.wsdl11.get_interface_document())


def _fresh_wsdl(interface, address: str) -> bytes:
    """A WSDL built anew for ``address``: Spyne's document object keeps the elements of
    its first build (a second build of the same one names no address at all)."""
    from spyne.interface.wsdl import Wsdl11
    document = Wsdl11(interface)
    document.build_interface_document(address)
    return polish_wsdl(document.get_interface_document())


class WsdlPerHost:
    """``?wsdl`` answered with the address the request came in on; every other request
    goes to the wrapped app."""

    def __init__(self, app: GuardedWsgi, fallback_address: str, path: str):
        self.app, self.path = app, path
        self.fallback = fallback_address.removesuffix(path)
        self.documents = PerAddress(functools.partial(_fresh_wsdl, app.app.app.interface))

    def __getattr__(self, name):  # doc, _wsdl, ... of the wrapped app
        return getattr(self.app, name)

    def __call__(self, environ, start_response):
        if not self.app.app.is_wsdl_request(environ):
            return self.app(environ, start_response)
        base = base_from_host(environ.get("HTTP_HOST"), self.fallback)
        document = self.documents.get(base + self.path)
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"),
                                  ("Content-Length", str(len(document)))])
        return [document]


def polish_wsdl(document: bytes) -> bytes:
    """Spyne's WSDL, made readable and clean for stub generators.

    Spyne sets ``parameterOrder`` to the element name, which is not a part name
    (the part is ``parameters``): wsimport warns about it on every operation. The
    attribute is optional and meaningless for document style, so it goes. The document
    is pretty-printed so that the committed copies under ``wsdl/`` diff readably.
    """
    root = etree.fromstring(document)
    for operation in root.iter("{http://schemas.xmlsoap.org/wsdl/}operation"):
        operation.attrib.pop("parameterOrder", None)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def wsdl_document(api, soap_version: str, address: str) -> bytes:
    return build_wsgi(api, soap_version, address, 1 << 20)._wsdl
