"""The four operations' SOAP responses, written straight from the core's Envelope.

Spyne serializes a response by building ComplexModel objects and walking them through
its generic, coroutine-based ``to_parent`` machinery into an lxml tree, then
serializing the tree: the largest part of a GetWebHooks call listing five webhooks,
which took ten times a bare Spyne no-op. Here the document is written as text
directly: one element per field in declared order, with the element names, namespace
prefixes and value formats Spyne uses, read once per operation from the Spyne types
and from a skeleton document lxml serializes for us (XML declaration, envelope and
namespace declarations).

The output is byte for byte what Spyne writes; tests/test_soap_responses.py compares
the two for every operation, both SOAP versions and awkward values, and the text
escaping with lxml's for every character XML can carry. Whatever this module does not
know how to write exactly as Spyne would (a field type or attribute it was not made
for, a value of an unexpected type, a required field that is None) goes through
Spyne's own serializer instead, as do Faults. The WSDL is Spyne's business.
"""

from __future__ import annotations

import datetime
import re

from lxml import etree
from spyne.descriptor import BODY_STYLE_WRAPPED
from spyne.model.complex import ComplexModelBase, XmlAttribute
from spyne.model.primitive import Boolean, DateTime, Integer, Unicode

from soapservice.api import Envelope
from soapservice.soap.service import to_spyne
from soapservice.xmltext import xml_safe

# Characters XML 1.0 cannot carry become U+FFFD, as service._xml_safe does for Spyne;
# libxml2 escapes &, <, > and CR in element text. _SPECIAL is either kind.
_SPECIAL = re.compile("[\x00-\x08\x0b-\x1f&<>\ud800-\udfff\ufffe\uffff]")


def escape(text: str) -> str:
    """Element text as Spyne's answer carries it (lxml writing UTF-8)."""
    if _SPECIAL.search(text) is None:
        return text
    return (xml_safe(text).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;").replace("\r", "&#13;"))


_TEXT, _INT, _BOOL, _DATETIME, _COMPLEX = range(5)
_MARK = "soapservice-direct-response-body"


class _Unsupported(Exception):
    """This value or type is left to Spyne's serializer."""


class _Plan:
    """How to write the members of one ComplexModel: ``fields`` holds, per member,
    (key, tag, kind, required, repeated, member plan or None). Compiled, the tag is
    the qualified name; resolved, it is the written start tag, followed by the end
    tag."""

    __slots__ = ("keys", "fields", "attributes")

    def __init__(self, fields, attributes=()):
        self.fields = tuple(fields)
        self.attributes = tuple(attributes)  # keys of unqualified int attributes
        self.keys = frozenset(f[0] for f in self.fields)  # attributes may be left out

    def tags(self):
        for field in self.fields:
            yield field[1]
            if field[-1] is not None:
                yield from field[-1].tags()


def _plain(attrs, *names) -> bool:
    return all(getattr(attrs, name, None) is None for name in names)


def _compile(protocol, cls) -> _Plan:
    """The plan for ``cls``, mirroring XmlDocument._get_members_etree. Raises
    _Unsupported for anything whose Spyne rendering this module does not reproduce."""
    if getattr(cls, "__extends__", None) is not None:
        raise _Unsupported(cls)
    namespace = cls.get_namespace()
    if not namespace:
        raise _Unsupported(cls)
    fields, attributes = [], []
    for key, member in cls._type_info.items():
        if issubclass(member, XmlAttribute):
            if not issubclass(member.type, Integer) or member._ns is not None:
                raise _Unsupported(cls, key)
            attributes.append(key)
            continue
        attrs = protocol.get_cls_attrs(member)
        if (attrs.exc or attrs.default is not None or member.Attributes.sub_ns is not None
                or member.Attributes.sub_name is not None or attrs.sub_ns is not None
                or attrs.sub_name is not None or attrs.prot is not None):
            raise _Unsupported(cls, key)
        sub = None
        if issubclass(member, ComplexModelBase):
            kind, sub = _COMPLEX, _compile(protocol, member)
        elif issubclass(member, Boolean):
            kind = _BOOL
        elif issubclass(member, Integer) and _plain(attrs, "str_format", "format"):
            kind = _INT
        elif issubclass(member, Unicode) and _plain(attrs, "str_format", "format"):
            kind = _TEXT
        elif (issubclass(member, DateTime) and attrs.timezone and _plain(
                attrs, "as_timezone", "serialize_as", "datetime_format", "dt_format",
                "date_format", "out_format", "format", "str_format", "string_format",
                "interp_format")):
            kind = _DATETIME
        else:
            raise _Unsupported(cls, key)
        fields.append((key, f"{{{namespace}}}{key}", kind, member.Attributes.min_occurs > 0,
                       member.Attributes.max_occurs > 1, sub))
    return _Plan(fields, attributes)


def _resolve(plan: _Plan, names: dict) -> _Plan:
    """The plan with each qualified name replaced by the start and end tag written."""
    return _Plan(((key, f"<{names[tag]}>", f"</{names[tag]}>", kind, required, repeated,
                   None if sub is None else _resolve(sub, names))
                  for key, tag, kind, required, repeated, sub in plan.fields),
                 plan.attributes)


def _write(out: list, plan: _Plan, values: dict) -> None:
    if values.keys() != plan.keys and not (
            plan.attributes and values.keys() - plan.attributes == plan.keys):
        raise _Unsupported("members")
    for key, start, end, kind, required, repeated, sub in plan.fields:
        value = values[key]
        if value is None:
            if required:
                raise _Unsupported(key)  # Spyne writes xsi:nil
            continue
        if kind is _INT:
            if type(value) is not int:
                raise _Unsupported(key)
            out.append(f"{start}{value}{end}")
        elif kind is _TEXT:
            if type(value) is not str:
                raise _Unsupported(key)
            out.append(f"{start}{escape(value)}{end}")
        elif kind is _DATETIME:
            if type(value) is not datetime.datetime:
                raise _Unsupported(key)
            out.append(f"{start}{value.isoformat()}{end}")
        elif kind is _BOOL:
            if type(value) is not bool:
                raise _Unsupported(key)
            out.append(f"{start}true{end}" if value else f"{start}false{end}")
        elif repeated:
            if type(value) is not list:
                raise _Unsupported(key)
            for item in value:
                if type(item) is not dict:
                    raise _Unsupported(key)
                _write_complex(out, start, end, sub, item)
        elif type(value) is dict:
            _write_complex(out, start, end, sub, value)
        elif type(value) is list and len(sub.fields) == 1 and sub.fields[0][5]:
            # An Array: its one repeated member holds the list.
            _write_complex(out, start, end, sub, {sub.fields[0][0]: value})
        else:
            raise _Unsupported(key)


def _write_complex(out: list, start: str, end: str, plan: _Plan, values: dict) -> None:
    if plan.attributes:
        written = []
        for key in plan.attributes:
            value = values.get(key)
            if value is None:
                continue
            if type(value) is not int:
                raise _Unsupported(key)
            written.append(f' {key}="{value}"')
        start = start[:-1] + "".join(written) + ">"
    at = len(out)
    out.append(start)
    _write(out, plan, values)
    if len(out) == at + 1:
        out[at] = start[:-1] + "/>"  # no members: lxml writes an empty element
    else:
        out.append(end)


class DirectResponses:
    """Protocol mixin (before Spyne's Soap11/Soap12 in the bases): the service
    methods return an :class:`Envelope`; a successful call's response is written
    here, anything else by Spyne."""

    #: False sends every response through Spyne's own serializer (the reference).
    direct_responses = True

    def serialize(self, ctx, message):
        out = ctx.out_object
        if (message is self.RESPONSE and ctx.out_error is None and out is not None
                and len(out) == 1 and isinstance(out[0], Envelope)):
            envelope = out[0]
            if self.direct_responses and ctx.out_header is None:
                try:
                    data = self._direct_response(ctx.descriptor, envelope)
                except (_Unsupported, ValueError, TypeError):
                    data = None  # Spyne's serializer below decides what happens
                if data is not None:
                    self.event_manager.fire_event("before_serialize", ctx)
                    ctx.out_document, ctx.out_string = None, [data]
                    self.event_manager.fire_event("after_serialize", ctx)
                    return None
            ctx.out_object = [to_spyne(ctx.descriptor.name, envelope)]
        return super().serialize(ctx, message)

    def create_out_string(self, ctx, charset=None):
        if ctx.out_document is None and ctx.out_string is not None:
            return  # written by serialize above
        super().create_out_string(ctx, charset)

    def _direct_response(self, descriptor, envelope) -> bytes | None:
        plans = self.__dict__.setdefault("_direct_plans", {})
        entry = plans.get(descriptor.name)
        if entry is None:
            entry = plans[descriptor.name] = self._plan_operation(descriptor)
        if entry is False:
            return None
        head, tail, plan = entry
        out = [head]
        _write(out, plan, {"error": int(envelope.error), "message": envelope.message,
                           "result": envelope.result})
        out.append(tail)
        return "".join(out).encode()

    def _plan_operation(self, descriptor):
        """(head, tail, plan) of one operation's response, or False when Spyne has
        to write it. Head and tail are what Soap11.serialize and create_out_string
        make of the envelope around the result's members; lxml writes them here."""
        message = descriptor.out_message
        attrs = self.get_cls_attrs(message)
        if (descriptor.body_style is not BODY_STYLE_WRAPPED or attrs.sub_name is not None
                or attrs.sub_ns is not None or len(message._type_info) != 1
                or self.polymorphic or self.pretty_print
                or (self.encoding or "").upper().replace("-", "") != "UTF8"):
            return False
        try:
            message_plan = _compile(self, message)
        except _Unsupported:
            return False
        (_key, result_tag, kind, _required, repeated, plan), = message_plan.fields
        if kind is not _COMPLEX or repeated or plan.keys != {"error", "message", "result"}:
            return False
        # The skeleton: Envelope, Body, response and result elements, as Spyne builds
        # them, with one element per member name to learn the prefixes lxml uses.
        envelope_ns = self.ns_soap_env
        document = etree.Element(f"{{{envelope_ns}}}Envelope", nsmap=self.app.interface.nsmap)
        body = etree.SubElement(document, f"{{{envelope_ns}}}Body")
        response = etree.SubElement(
            body, f"{{{message.get_namespace()}}}{message.get_type_name()}")
        result = etree.SubElement(response, result_tag)
        members = {tag: etree.SubElement(result, tag) for tag in dict.fromkeys(plan.tags())}
        if self.cleanup_namespaces:
            etree.cleanup_namespaces(document)
        names = {}
        for tag, element in members.items():
            if not element.prefix:
                return False  # unqualified or in a default namespace: left to Spyne
            names[tag] = f"{element.prefix}:{etree.QName(tag).localname}"
            result.remove(element)
        result.text = _MARK
        text = etree.tostring(document, encoding=self.encoding,
                              xml_declaration=self.xml_declaration).decode()
        head, tail = text.split(_MARK)
        return head, tail, _resolve(plan, names)
