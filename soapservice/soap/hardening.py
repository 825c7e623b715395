"""Hostile input at the SOAP door: Spyne's protocols and WSGI app, made to fail safe.

Spyne's parser already resolves no entities, loads no DTD and touches no network; on
top of that this module

- refuses any DTD outright (a SOAP message must not carry one) with a Client fault;
- refuses a document over the shape caps of :mod:`soapservice.soap.limits` (attributes
  per element, elements, depth, namespaces) before Spyne walks it;
- turns an unknown or lying charset, a missing ``Body`` and anything else that escapes
  Spyne's request parsing into a SOAP Fault instead of an empty HTTP 500;
- ignores SOAP-encoding ``href``/``id`` references (document/literal never uses them,
  and Spyne's resolver recurses without end on a cycle).

``soap/apps.py`` combines these with its envelope checks and log filters.
"""

from __future__ import annotations

import codecs
import logging

from spyne.model.fault import Fault
from spyne.protocol.soap import Soap11, Soap12

from soapservice.errors import log_internal_error
from soapservice.soap.limits import XmlLimits, over_limit

log = logging.getLogger(__name__)


class _Hardened:
    xml_limits = XmlLimits()

    def create_in_document(self, ctx, charset=None):
        if ctx.transport.get_request_method() != "POST":
            return super().create_in_document(ctx, charset)  # Spyne's 405
        # An empty request crashes Spyne (StopIteration) into a bare HTTP 500.
        chunks = [chunk for chunk in ctx.in_string if chunk]
        if not any(chunk.strip() for chunk in chunks):
            raise Fault("Client.SoapError", "Empty request: a SOAP envelope was expected")
        ctx.in_string = chunks
        if charset:
            try:
                codecs.lookup(charset)
            except LookupError:
                raise Fault("Client.UnsupportedCharset",
                            f"unsupported charset {charset[:40]!r}") from None
        try:
            super().create_in_document(ctx, charset)
        except UnicodeError:
            raise Fault("Client.XMLSyntaxError",
                        "request body does not match its charset") from None
        root, _xmlids = ctx.in_document
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None:
            raise Fault("Client.DTDNotAllowed", "a SOAP message must not contain a DTD")
        reason = over_limit(root, self.xml_limits)
        if reason is not None:
            raise Fault("Client.XMLTooComplex", f"request refused: {reason}")
        ctx.in_document = (root, None)  # no href resolution

    def decompose_incoming_envelope(self, ctx, message):
        root = ctx.in_document[0]
        if root.tag == f"{{{self.ns_soap_env}}}Envelope":
            body = root.find(f"{{{self.ns_soap_env}}}Body")
            if body is None or len(body) == 0:
                raise Fault("Client.SoapError", "the SOAP Body is missing or names no operation")
        return super().decompose_incoming_envelope(ctx, message)


class HardenedSoap11(_Hardened, Soap11):
    pass


class HardenedSoap12(_Hardened, Soap12):
    pass


_FAULT = {
    "1.1": ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<soap11env:Envelope xmlns:soap11env="http://schemas.xmlsoap.org/soap/envelope/">'
            '<soap11env:Body><soap11env:Fault><faultcode>soap11env:Server</faultcode>'
            '<faultstring>{message}</faultstring></soap11env:Fault></soap11env:Body>'
            '</soap11env:Envelope>', "text/xml; charset=utf-8"),
    "1.2": ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<soap12env:Envelope xmlns:soap12env="http://www.w3.org/2003/05/soap-envelope">'
            '<soap12env:Body><soap12env:Fault><soap12env:Code><soap12env:Value>'
            'soap12env:Receiver</soap12env:Value></soap12env:Code><soap12env:Reason>'
            '<soap12env:Text xml:lang="en">{message}</soap12env:Text></soap12env:Reason>'
            '</soap12env:Fault></soap12env:Body></soap12env:Envelope>',
            "application/soap+xml; charset=utf-8"),
}


class GuardedWsgi:
    """Last line of defence around Spyne's WSGI app: an exception that escapes it
    becomes a SOAP ``Server`` fault carrying a log reference (SPEC §1, error 99),
    never an empty 500 or a traceback. The answer is buffered (it is small) so a late
    failure can still replace it."""

    def __init__(self, app, soap_version: str):
        self.app = app
        self.template, self.content_type = _FAULT[soap_version]

    def __getattr__(self, name):  # doc, _wsdl, ... of the wrapped app
        return getattr(self.app, name)

    def __call__(self, environ, start_response):
        captured = []

        def capture(status, headers, exc_info=None):
            captured[:] = [status, headers]
            return lambda data: None  # Spyne never uses write()

        try:
            result = self.app(environ, capture)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            reference = log_internal_error(log, "SOAP request handling")
            body = self.template.format(
                message=f"Internal error (reference {reference})").encode()
            start_response("500 Internal Server Error", [
                ("Content-Type", self.content_type), ("Content-Length", str(len(body)))])
            return [body]
        start_response(*captured)
        return [body]
