"""Spyne types of the WSDL, built from the operation registry and shaped for stub
generators (SPEC §1).

Required values are ``min_occurs=1`` without ``nillable``; optional ones are
``min_occurs=0`` without ``nillable`` (JAX-WS then makes plain fields, not
``JAXBElement``). Integers are ``xs:int``/``xs:long``, never ``xs:integer``. Fields keep
their declared order. Each operation's answer is one ``<Operation>Result`` type holding
``error``, ``message`` and the operation's ``result``.
"""

from spyne import (
    Array,
    Boolean,
    ComplexModel,
    DateTime,
    Integer32,
    Integer64,
    Unicode,
    XmlAttribute,
)
from spyne.util.odict import odict

from soapservice import operations as ops

NAMESPACE = ops.NAMESPACE

_SCALARS = {ops.STRING: Unicode, ops.INT: Integer32, ops.LONG: Integer64,
            ops.BOOLEAN: Boolean, ops.DATETIME: DateTime}


class _Typed(ComplexModel):
    __namespace__ = NAMESPACE

    class Attributes(ComplexModel.Attributes):
        declare_order = "declared"


def _occurs(required: bool) -> dict:
    return {"min_occurs": 1 if required else 0, "nillable": False}


def parameter_type(param: ops.Param):
    return _SCALARS[param.type](**_occurs(param.required))


def _typed(name: str, members: list) -> type:
    # Spyne looks for a ``class`` statement of that name unless given an odict.
    return type(name, (_Typed,), odict([("__module__", __name__), ("_type_info", members)]))


RECORDS: dict[str, type] = {}


def _record(record: ops.Record) -> type:
    cls = RECORDS.get(record.name)
    if cls is None:
        cls = _typed(record.name, [(f.name, field_type(f)) for f in record.fields])
        RECORDS[record.name] = cls
    return cls


def field_type(field: ops.Field):
    if field.attribute:
        return XmlAttribute(_SCALARS[field.type])
    if isinstance(field.type, ops.Record):
        base = _record(field.type)
        if field.many:
            return Array(base.customize(nillable=False), **_occurs(field.required)
                         ).customize(type_name=field.list_name)
        return base.customize(**_occurs(field.required))
    return _SCALARS[field.type](**_occurs(field.required))


_ERROR = ("error", Integer32(min_occurs=1, nillable=False))
_MESSAGE = ("message", Unicode(min_occurs=1, nillable=False))

RESULTS: dict[str, type] = {
    op.name: _typed(op.result_name, [_ERROR, _MESSAGE, ("result", field_type(op.result))])
    for op in ops.OPERATIONS
}
