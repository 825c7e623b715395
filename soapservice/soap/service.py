"""The four operations as a Spyne service: validate nothing here, translate only.

The core (:class:`soapservice.api.WebhookAPI`) is reached through ``ctx.udc``, set by
the application builder, so one service class serves every endpoint. Each method returns
the core's :class:`~soapservice.api.Envelope` as it is: the protocol classes of
``soap/apps.py`` write the response from it (``soap/responses.py``), or hand it to
Spyne's serializer as Spyne objects (:func:`to_spyne`). Served with plain Spyne
protocols, this service would not work.
"""

import re

from spyne import ServiceBase, rpc

from soapservice.soap import types as t


def _client_address(ctx) -> str:
    req = getattr(ctx.transport, "req", None) or {}
    return req.get("REMOTE_ADDR", "-") if isinstance(req, dict) else "-"


# Characters XML 1.0 cannot carry. Spyne answers a string holding one with HTTP 200 and
# an empty Envelope; stored text that did not come through this API (a receiver's
# error message in lastError, say) must not make an account's listing unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(value):
    if isinstance(value, str):
        return _NOT_XML.sub("\ufffd", value)
    if isinstance(value, dict):
        return {k: _xml_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_xml_safe(v) for v in value]
    return value


# Operation -> its Spyne result class and the class of the webhook(s) in it.
_RESULT_TYPES = {
    "CreateWebHook": (t.CreateWebHookResult, t.WebHook),
    "GetWebHooks": (t.GetWebHooksResult, t.WebHook),
    "ActivateWebHook": (t.ActivateWebHookResult, t.ActivatedWebHook),
    "DeleteWebHookById": (t.DeleteWebHookByIdResult, None),
}


def to_spyne(operation: str, envelope):
    """``envelope`` as the Spyne object Spyne's own serializer writes."""
    return _to_spyne(envelope, *_RESULT_TYPES[operation])


def _to_spyne(envelope, result_cls, item=None):
    result = _xml_safe(envelope.result)
    if result is not None and item is not None:
        result = [item(**r) for r in result] if isinstance(result, list) else item(**result)
    return result_cls(error=int(envelope.error), message=_xml_safe(envelope.message),
                      result=result)


def _returns(operation: str) -> dict:
    """One mandatory ``<OpResult>`` holding error, message and result (SPEC §1); .NET
    generators unwrap only when the message part is named "parameters"."""
    result = getattr(t, operation + "Result").customize(min_occurs=1, nillable=False)
    return {"_returns": result, "_out_variable_name": operation + "Result",
            "_wsdl_part_name": "parameters"}


class WebHookService(ServiceBase):
    @rpc(t.Required, t.Required, t.Required, t.Required, t.Required,
         _args=("username", "password", "app", "event", "url"),
         **_returns("CreateWebHook"))
    def CreateWebHook(ctx, username, password, app, event, url):
        return ctx.udc.create_webhook(username, password, app, event, url,
                                      address=_client_address(ctx))

    @rpc(t.Required, t.Required, t.Optional, t.Optional,
         _args=("username", "password", "app", "event"),
         **_returns("GetWebHooks"))
    def GetWebHooks(ctx, username, password, app, event):
        return ctx.udc.get_webhooks(username, password, app, event,
                                    address=_client_address(ctx))

    @rpc(t.Required, t.Required, t.RequiredInt, t.OptionalInt,
         _args=("username", "password", "webhookId", "replayEvents"),
         **_returns("ActivateWebHook"))
    def ActivateWebHook(ctx, username, password, webhookId, replayEvents):
        return ctx.udc.activate_webhook(username, password, webhookId, replayEvents,
                                        address=_client_address(ctx))

    @rpc(t.Required, t.Required, t.RequiredInt,
         _args=("username", "password", "webhookId"),
         **_returns("DeleteWebHookById"))
    def DeleteWebHookById(ctx, username, password, webhookId):
        return ctx.udc.delete_webhook(username, password, webhookId,
                                      address=_client_address(ctx))


# Operation name -> WebhookAPI method. Parameter names are the API's keyword names.
OPERATIONS = {
    "CreateWebHook": "create_webhook",
    "GetWebHooks": "get_webhooks",
    "ActivateWebHook": "activate_webhook",
    "DeleteWebHookById": "delete_webhook",
}


def parameter_names(operation: str) -> list[str]:
    """The operation's parameters in WSDL order, read from the Spyne definition."""
    descriptor = WebHookService.public_methods[operation]
    return list(descriptor.in_message._type_info.keys())


def parameter_types(operation: str) -> list[tuple[str, object]]:
    descriptor = WebHookService.public_methods[operation]
    return list(descriptor.in_message._type_info.items())
