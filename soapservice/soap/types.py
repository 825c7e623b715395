"""Spyne types of the WSDL, shaped for stub generators (SPEC §1).

Required values are ``min_occurs=1`` without ``nillable``; optional ones are
``min_occurs=0`` without ``nillable`` (JAX-WS then makes plain fields, not
``JAXBElement``). Integers are ``xs:int``/``xs:long``, never ``xs:integer``. Fields keep
their declared order.
"""

from spyne import Array, Boolean, ComplexModel, DateTime, Integer32, Unicode

NAMESPACE = "urn:soapservice:webhooks:1"

Required = Unicode(min_occurs=1, nillable=False)
Optional = Unicode(min_occurs=0, nillable=False)
RequiredInt = Integer32(min_occurs=1, nillable=False)
OptionalInt = Integer32(min_occurs=0, nillable=False)
Int = Integer32(min_occurs=1, nillable=False)
Bool = Boolean(min_occurs=1, nillable=False)
When = DateTime(min_occurs=0, nillable=False)
Text = Unicode(min_occurs=0, nillable=False)


class _Typed(ComplexModel):
    __namespace__ = NAMESPACE

    class Attributes(ComplexModel.Attributes):
        declare_order = "declared"


class WebHook(_Typed):
    _type_info = [
        ("id", Int),
        ("app", Unicode(min_occurs=1, nillable=False)),
        ("event", Unicode(min_occurs=1, nillable=False)),
        ("url", Unicode(min_occurs=1, nillable=False)),
        ("active", Bool),
        ("created", DateTime(min_occurs=1, nillable=False)),
        ("deactivatedAt", When),
        ("failureCount", Int),
        ("bufferedEvents", Int),
        ("droppedEvents", Int),
        ("lastSuccessAt", When),
        ("lastFailureAt", When),
        ("lastError", Text),
        ("secret", Unicode(min_occurs=1, nillable=False)),
    ]


class ActivatedWebHook(_Typed):
    _type_info = [*WebHook._type_info.items(), ("replayedEvents", Int)]


WebHookList = Array(WebHook.customize(nillable=False), min_occurs=0, nillable=False).customize(
    type_name="WebHookList")


_ERROR = ("error", Int)
_MESSAGE = ("message", Unicode(min_occurs=1, nillable=False))


class CreateWebHookResult(_Typed):
    _type_info = [_ERROR, _MESSAGE, ("result", WebHook.customize(min_occurs=0, nillable=False))]


class GetWebHooksResult(_Typed):
    _type_info = [_ERROR, _MESSAGE, ("result", WebHookList)]


class ActivateWebHookResult(_Typed):
    _type_info = [_ERROR, _MESSAGE,
                  ("result", ActivatedWebHook.customize(min_occurs=0, nillable=False))]


class DeleteWebHookByIdResult(_Typed):
    _type_info = [_ERROR, _MESSAGE, ("result", Integer32(min_occurs=0, nillable=False))]
