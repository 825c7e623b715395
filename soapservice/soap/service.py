"""The operations as a Spyne service, generated from the registry
(:mod:`soapservice.operations`): validate nothing here, translate only.

The core (:class:`soapservice.api.WebhookAPI`) is reached through ``ctx.udc``, set by
the application builder, so one service class serves every endpoint. Each method returns
the core's :class:`~soapservice.api.Envelope` as it is: the protocol classes of
``soap/apps.py`` write the response from it (``soap/responses.py``), or hand it to
Spyne's serializer as Spyne objects (:func:`to_spyne`). Served with plain Spyne
protocols, this service would not work.
"""


from spyne import ServiceBase, rpc

from soapservice import operations as ops
from soapservice.soap import types as t
from soapservice.xmltext import xml_safe


def _client_address(ctx) -> str:
    req = getattr(ctx.transport, "req", None) or {}
    return req.get("REMOTE_ADDR", "-") if isinstance(req, dict) else "-"


POSITIONAL_HINT = (" (positional callers, such as PHP SoapClient calling $client->{op}($user, "
                   "$password, ...), belong on /webservice/webservice/soap3, the endpoint of "
                   "the legacy platform's calling convention; /soap takes named parameters)")


def _answer(ctx, operation: str, envelope):
    """The core's envelope; a call that named none of the operation's parameters
    (``param0``, ``param1``... of PHP's positional calls) learns where it belongs
    instead of only that ``username`` is missing."""
    if (envelope.error == 2 and envelope.message.endswith(": username")
            and not _names_any_parameter(ctx, operation)):
        envelope.message += POSITIONAL_HINT.format(op=operation)
    return envelope


def _names_any_parameter(ctx, operation: str) -> bool:
    element = getattr(ctx, "in_body_doc", None)
    if element is None:
        return True
    names = set(ops.parameter_names(operation))
    return any(isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] in names
               for child in element)


# Characters XML 1.0 cannot carry. Spyne answers a string holding one with HTTP 200 and
# an empty Envelope; stored text that did not come through this API (a receiver's
# error message in lastError, say) must not make an account's listing unreadable.


def _xml_safe(value):
    if isinstance(value, str):
        return xml_safe(value)
    if isinstance(value, dict):
        return {k: _xml_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_xml_safe(v) for v in value]
    return value


def _spyne_value(kind, value):
    """A plain result value (dicts, lists, scalars) as Spyne objects of ``kind``."""
    if value is None or not isinstance(kind, ops.Record):
        return value
    if isinstance(value, list):
        return [_spyne_value(kind, v) for v in value]
    fields = {f.name: f.type for f in kind.fields}
    return t.RECORDS[kind.name](**{k: _spyne_value(fields.get(k), v)
                                   for k, v in value.items()})


def to_spyne(operation: str, envelope):
    """``envelope`` as the Spyne object Spyne's own serializer writes."""
    op = ops.get(operation)
    return t.RESULTS[operation](error=int(envelope.error),
                                message=_xml_safe(envelope.message),
                                result=_spyne_value(op.result.type,
                                                    _xml_safe(envelope.result)))


def _method(op: ops.Operation):
    """The Spyne method of ``op``: one mandatory ``<OpResult>`` holding error, message
    and result (SPEC §1); .NET generators unwrap only when the message part is named
    "parameters"."""

    def call(ctx, *args):
        envelope = getattr(ctx.udc, op.function)(*args, address=_client_address(ctx))
        return _answer(ctx, op.name, envelope)

    call.__name__ = call.__qualname__ = op.name
    return rpc(*(t.parameter_type(p) for p in op.params),
               _args=tuple(op.parameter_names),
               _returns=t.RESULTS[op.name].customize(min_occurs=1, nillable=False),
               _out_variable_name=op.result_name, _wsdl_part_name="parameters")(call)


WebHookService = type("WebHookService", (ServiceBase,),
                      {op.name: _method(op) for op in ops.OPERATIONS})
