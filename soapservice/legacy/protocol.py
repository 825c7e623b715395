"""The legacy endpoint's wire format: rpc/encoded SOAP 1.1 in, Apache maps out.

Requests are read the way legacy toolkits write them: parts named as in the WSDL or
PHP's non-WSDL ``param0..paramN`` (else taken by position), typed with ``xsi:type`` or
not, ``xsi:nil``, SOAP-encoding ``href`` references. Answers are what PHP's own
``SoapServer`` sends for an array (``xsi:type="ns2:Map"`` with ``<item><key/><value/>``,
lists as ``SOAP-ENC:Array``), so PHP decodes them into nested associative arrays.

Pure functions over bytes (no Twisted): the web resource runs :func:`answer` on the
thread pool. The parser resolves no entities, loads no DTD, touches no network and
keeps libxml2's size limits; a document with a DOCTYPE is refused.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from soapservice import operations as ops
from soapservice.errors import log_internal_error
from soapservice.operations import NAMESPACE
from soapservice.soap.limits import XmlLimits, over_limit
from soapservice.xmltext import xml_safe

log = logging.getLogger(__name__)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENC = "http://schemas.xmlsoap.org/soap/encoding/"
XSD = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
APACHE = "http://xml.apache.org/xml-soap"

_OPERATIONS = {name.lower(): name for name in ops.BY_NAME}
_PARAM_N = re.compile(r"param(\d+)")
_INT32 = range(-(2**31), 2**31)


class Fault(Exception):
    """A SOAP 1.1 fault; ``code`` is ``Client``, ``Server`` or ``MustUnderstand``."""

    def __init__(self, message: str, code: str = "Client"):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Call:
    operation: str
    namespace: str
    arguments: dict = field(default_factory=dict)


def _parser():
    return etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True,
                           dtd_validation=False, huge_tree=False, remove_comments=True,
                           remove_pis=True)


def _local(element) -> str:
    return etree.QName(element).localname


def _children(element):
    return [c for c in element if isinstance(c.tag, str)]


def _is_true(value: str | None) -> bool:
    return (value or "").strip() in ("1", "true")


def _xsi_type(element) -> tuple[str | None, str]:
    """The ``xsi:type`` of an element as (namespace, local name)."""
    raw = element.get(f"{{{XSI}}}type")
    if not raw:
        return None, ""
    prefix, _, local = raw.strip().rpartition(":")
    return element.nsmap.get(prefix or None), local


class _Reader:
    def __init__(self, envelope):
        self.envelope = envelope
        self._ids = None

    def _referenced(self, href: str):
        if not href.startswith("#"):
            raise Fault(f"unsupported reference {href!r}")
        if self._ids is None:
            self._ids = {e.get("id"): e for e in self.envelope.iter()
                         if isinstance(e.tag, str) and e.get("id")}
        target = self._ids.get(href[1:])
        if target is None or target.get("href") is not None:
            raise Fault(f"unresolved reference {href!r}")
        return target

    def value(self, name: str, element) -> str | None:
        href = element.get("href")
        if href is not None:
            element = self._referenced(href)
        if _is_true(element.get(f"{{{XSI}}}nil")):
            return None
        if _children(element):
            raise Fault(f"parameter {name} must be a simple value")
        text = "".join(element.itertext())
        namespace, type_name = _xsi_type(element)
        if namespace == XSD and type_name == "boolean":
            # PHP's non-WSDL mode sends true/false as xsd:boolean; the API speaks 0/1.
            return "1" if _is_true(text) else "0"
        return text


def parse_call(body: bytes, limits: XmlLimits | None = None) -> Call:
    """The operation and its arguments (name -> text or None); :class:`Fault` if unusable."""
    if not body or not body.strip():
        raise Fault("empty request body")
    try:
        tree = etree.fromstring(body, _parser()).getroottree()
    except etree.XMLSyntaxError as exc:
        raise Fault(f"malformed XML: {exc}") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise Fault("DTDs are not allowed")
    envelope = tree.getroot()
    reason = over_limit(envelope, limits or XmlLimits())
    if reason is not None:
        raise Fault(f"request refused: {reason}")
    if envelope.tag != f"{{{SOAP_ENV}}}Envelope":
        raise Fault("not a SOAP 1.1 envelope (expected "
                    f"{{{SOAP_ENV}}}Envelope, got {envelope.tag})")
    header = envelope.find(f"{{{SOAP_ENV}}}Header")
    if header is not None:
        for entry in _children(header):
            if _is_true(entry.get(f"{{{SOAP_ENV}}}mustUnderstand")):
                raise Fault(f"header {entry.tag} not understood", "MustUnderstand")
    body_el = envelope.find(f"{{{SOAP_ENV}}}Body")
    if body_el is None or not _children(body_el):
        raise Fault("SOAP Body without an operation")
    # The call is the first Body entry without a SOAP-ENC id (the others are multirefs).
    candidates = [e for e in _children(body_el) if e.get("id") is None]
    if not candidates:
        raise Fault("SOAP Body without an operation")
    call_el = candidates[0]
    operation = _OPERATIONS.get(_local(call_el).lower())
    if operation is None:
        raise Fault(f"unknown operation {_local(call_el)!r}; "
                    f"supported: {', '.join(ops.BY_NAME)}")
    names = ops.parameter_names(operation)
    by_name = {n.lower(): n for n in names}
    reader = _Reader(envelope)
    arguments: dict = {}
    for index, part in enumerate(_children(call_el)):
        local = _local(part)
        numbered = _PARAM_N.fullmatch(local)
        if local.lower() in by_name:
            name = by_name[local.lower()]
        elif numbered and int(numbered.group(1)) < len(names):
            name = names[int(numbered.group(1))]
        elif index < len(names):
            name = names[index]
        else:
            continue  # more arguments than parameters: ignored, as PHP functions do
        if name in arguments:
            raise Fault(f"parameter {name} given twice")
        arguments[name] = reader.value(name, part)
    namespace = etree.QName(call_el).namespace or NAMESPACE
    return Call(operation, namespace, arguments)


# -- rendering ---------------------------------------------------------------------------

def _clean(text: str) -> str:
    return xml_safe(text)


def _type_of(value) -> str:
    if value is None:
        return "xsd:anyType"
    if isinstance(value, bool):
        return "xsd:boolean"
    if isinstance(value, int):
        return "xsd:int" if value in _INT32 else "xsd:long"
    if isinstance(value, float):
        return "xsd:double"
    if isinstance(value, datetime):
        return "xsd:dateTime"
    if isinstance(value, dict):
        return "ns2:Map"
    if isinstance(value, list | tuple):
        return "SOAP-ENC:Array"
    return "xsd:string"


def _encode(element, value) -> None:
    xsi_type = f"{{{XSI}}}type"
    if value is None:
        element.set(f"{{{XSI}}}nil", "true")
    elif isinstance(value, dict):
        element.set(xsi_type, "ns2:Map")
        for key, item_value in value.items():
            item = etree.SubElement(element, "item")
            key_el = etree.SubElement(item, "key")
            key_el.set(xsi_type, "xsd:string")
            key_el.text = _clean(str(key))
            _encode(etree.SubElement(item, "value"), item_value)
    elif isinstance(value, list | tuple):
        kinds = {_type_of(v) for v in value}
        item_type = kinds.pop() if len(kinds) == 1 else "xsd:ur-type"
        element.set(f"{{{SOAP_ENC}}}arrayType", f"{item_type}[{len(value)}]")
        element.set(xsi_type, "SOAP-ENC:Array")
        for item_value in value:
            _encode(etree.SubElement(element, "item"), item_value)
    else:
        element.set(xsi_type, _type_of(value))
        if isinstance(value, bool):
            element.text = "true" if value else "false"
        elif isinstance(value, datetime):
            element.text = value.isoformat().replace("+00:00", "Z")
        else:
            element.text = _clean(str(value))


def _envelope(namespace: str):
    nsmap = {"SOAP-ENV": SOAP_ENV, "ns1": namespace, "xsd": XSD, "xsi": XSI,
             "SOAP-ENC": SOAP_ENC, "ns2": APACHE}
    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=nsmap)
    root.set(f"{{{SOAP_ENV}}}encodingStyle", SOAP_ENC)
    return root, etree.SubElement(root, f"{{{SOAP_ENV}}}Body")


def _bytes(root) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def render_response(call: Call, envelope: dict) -> bytes:
    """``<ns1:OpResponse><return xsi:type="ns2:Map">`` holding error, message, result."""
    root, body = _envelope(call.namespace)
    response = etree.SubElement(body, f"{{{call.namespace}}}{call.operation}Response")
    _encode(etree.SubElement(response, "return"), envelope)
    return _bytes(root)


def render_fault(fault: Fault) -> bytes:
    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"SOAP-ENV": SOAP_ENV})
    body = etree.SubElement(root, f"{{{SOAP_ENV}}}Body")
    fault_el = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(fault_el, "faultcode").text = f"SOAP-ENV:{fault.code}"
    etree.SubElement(fault_el, "faultstring").text = _clean(fault.message)
    return _bytes(root)


def answer(api, body: bytes, address: str = "-",
           limits: XmlLimits | None = None) -> tuple[int, bytes]:
    """HTTP status and body for one request: 200 with the envelope, 500 with a fault.

    Blocks (store, password hashing): call it from a worker thread.
    """
    try:
        call = parse_call(body, limits)
    except Fault as fault:
        return 500, render_fault(fault)
    method = getattr(api, ops.get(call.operation).function)
    arguments = {name: call.arguments.get(name)
                 for name in ops.parameter_names(call.operation)}
    try:
        envelope = method(**arguments, address=address)
        return 200, render_response(call, envelope.as_dict())
    except Exception:
        reference = log_internal_error(log, "legacy SOAP")
        return 500, render_fault(Fault(f"Internal error (reference {reference})", "Server"))
