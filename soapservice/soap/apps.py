"""Spyne applications (SOAP 1.1 and 1.2) over the one service, as WSGI apps."""

import logging
import traceback

import spyne.model.complex
from lxml import etree
from spyne import Application
from spyne.server.wsgi import WsgiApplication

from soapservice.soap.hardening import GuardedWsgi, HardenedSoap11, HardenedSoap12
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
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "client fault %s: %s", (
                code, str(exc.faultstring)[:300])  # a hostile value can be 1 MB
            record.exc_info = record.exc_text = None
        return True


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
                      direct_responses: bool = True) -> Application:
    """``direct_responses=False`` has Spyne serialize every response itself: the
    reference tests/test_soap_responses.py compares the direct writer with."""
    protocol = Soap12 if soap_version == "1.2" else Soap11
    out_protocol = protocol()
    out_protocol.direct_responses = direct_responses
    app = Application([WebHookService], tns=NAMESPACE, name=SERVICE_NAME,
                      in_protocol=protocol(validator=None), out_protocol=out_protocol)
    app.event_manager.add_listener("method_call", lambda ctx: setattr(ctx, "udc", api))
    return app


def build_wsgi(api, soap_version: str, address: str, max_body_bytes: int, *,
               direct_responses: bool = True) -> GuardedWsgi:
    """A WSGI app whose WSDL names ``address`` (the public URL), never the Host header,
    and that answers a SOAP fault whatever goes wrong inside Spyne."""
    wsgi = WsgiApplication(build_application(api, soap_version,
                                             direct_responses=direct_responses),
                           max_content_length=max_body_bytes)
    wsgi.doc.wsdl11.build_interface_document(address)
    wsgi._wsdl = polish_wsdl(wsgi.doc.wsdl11.get_interface_document())
    return GuardedWsgi(wsgi, soap_version)


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
