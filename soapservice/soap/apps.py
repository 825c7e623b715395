"""Spyne applications (SOAP 1.1 and 1.2) over the one service, as WSGI apps."""

from lxml import etree
from spyne import Application
from spyne.protocol.soap import Soap11, Soap12
from spyne.server.wsgi import WsgiApplication

from soapservice.soap.service import WebHookService
from soapservice.soap.types import NAMESPACE

SERVICE_NAME = "WebHookService"


def build_application(api, soap_version: str = "1.1") -> Application:
    protocol = Soap12 if soap_version == "1.2" else Soap11
    app = Application([WebHookService], tns=NAMESPACE, name=SERVICE_NAME,
                      in_protocol=protocol(validator=None), out_protocol=protocol())
    app.event_manager.add_listener("method_call", lambda ctx: setattr(ctx, "udc", api))
    return app


def build_wsgi(api, soap_version: str, address: str, max_body_bytes: int) -> WsgiApplication:
    """A WSGI app whose WSDL names ``address`` (the public URL), never the Host header."""
    wsgi = WsgiApplication(build_application(api, soap_version),
                           max_content_length=max_body_bytes)
    wsgi.doc.wsdl11.build_interface_document(address)
    wsgi._wsdl = polish_wsdl(wsgi.doc.wsdl11.get_interface_document())
    return wsgi


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
