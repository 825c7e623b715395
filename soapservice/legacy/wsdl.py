"""The rpc/encoded WSDL of the legacy endpoint, generated from the service definition.

Every operation's parts are ``username``, ``password`` and the operation's parameters in
the order of the registry (:mod:`soapservice.operations`) (PHP ``SoapClient`` maps
positional arguments onto them); every answer is one ``apachesoap:Map`` part named
``return`` (PHP decodes it into a nested associative array). The Map types are declared
in the document itself, so no client has to fetch a schema from the network.
"""

from __future__ import annotations

from lxml import etree

from soapservice import operations as ops
from soapservice.operations import NAMESPACE

WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XSD = "http://www.w3.org/2001/XMLSchema"
SOAP_ENC = "http://schemas.xmlsoap.org/soap/encoding/"
APACHE = "http://xml.apache.org/xml-soap"
HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"

SERVICE_NAME = "WebHookService"
PATH = "/webservice/webservice/soap3"

_NSMAP = {"wsdl": WSDL, "soap": WSDL_SOAP, "xsd": XSD, "soapenc": SOAP_ENC,
          "apachesoap": APACHE, "tns": NAMESPACE}

_DOC = ("The WebHooks API in the legacy platform's rpc/encoded style: call the operations "
        "positionally (username, password, then the parameters); every answer is a map "
        "with 'error' (int, 0 = success), 'message' (string) and, on success, 'result' "
        "(a map for one webhook, a list of maps for GetWebHooks, the id for "
        "DeleteWebHookById).")


def soap_action(operation: str) -> str:
    return f"{NAMESPACE}#{operation}"


def _xsd_type(param: ops.Param) -> str:
    """Every parameter type of the registry is an XML Schema simple type of that name."""
    return f"xsd:{param.type}"


def _el(parent, ns, tag, **attrs):
    return etree.SubElement(parent, f"{{{ns}}}{tag}", {k: str(v) for k, v in attrs.items()})


def _map_schema(types):
    schema = _el(types, XSD, "schema", targetNamespace=APACHE)
    # Lists are SOAP-ENC:Array; no schemaLocation: clients know this namespace (suds
    # bundles it, PHP builds it in), so nothing is fetched from the network.
    _el(schema, XSD, "import", namespace=SOAP_ENC)
    item = _el(schema, XSD, "complexType", name="mapItem")
    seq = _el(item, XSD, "sequence")
    for part in ("key", "value"):
        _el(seq, XSD, "element", name=part, type="xsd:anyType", nillable="true")
    map_type = _el(schema, XSD, "complexType", name="Map")
    seq = _el(map_type, XSD, "sequence")
    _el(seq, XSD, "element", name="item", type="apachesoap:mapItem", minOccurs="0",
        maxOccurs="unbounded")


def legacy_wsdl(address: str) -> bytes:
    """The WSDL document with ``address`` (the public URL of the endpoint) as location."""
    root = etree.Element(f"{{{WSDL}}}definitions", nsmap=_NSMAP,
                         name=SERVICE_NAME, targetNamespace=NAMESPACE)
    _el(root, WSDL, "documentation").text = _DOC
    _map_schema(_el(root, WSDL, "types"))
    for operation in ops.BY_NAME:
        request = _el(root, WSDL, "message", name=f"{operation}Request")
        for param in ops.get(operation).params:
            _el(request, WSDL, "part", name=param.name, type=_xsd_type(param))
        response = _el(root, WSDL, "message", name=f"{operation}Response")
        _el(response, WSDL, "part", name="return", type="apachesoap:Map")

    port_type = _el(root, WSDL, "portType", name=f"{SERVICE_NAME}PortType")
    for operation in ops.BY_NAME:
        order = " ".join(ops.parameter_names(operation))
        op = _el(port_type, WSDL, "operation", name=operation, parameterOrder=order)
        _el(op, WSDL, "input", message=f"tns:{operation}Request")
        _el(op, WSDL, "output", message=f"tns:{operation}Response")

    binding = _el(root, WSDL, "binding", name=f"{SERVICE_NAME}Binding",
                  type=f"tns:{SERVICE_NAME}PortType")
    _el(binding, WSDL_SOAP, "binding", style="rpc", transport=HTTP_TRANSPORT)
    for operation in ops.BY_NAME:
        op = _el(binding, WSDL, "operation", name=operation)
        _el(op, WSDL_SOAP, "operation", soapAction=soap_action(operation), style="rpc")
        for direction in ("input", "output"):
            _el(_el(op, WSDL, direction), WSDL_SOAP, "body", use="encoded",
                namespace=NAMESPACE, encodingStyle=SOAP_ENC)

    service = _el(root, WSDL, "service", name=SERVICE_NAME)
    port = _el(service, WSDL, "port", name=f"{SERVICE_NAME}Port",
               binding=f"tns:{SERVICE_NAME}Binding")
    _el(port, WSDL_SOAP, "address", location=address)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
