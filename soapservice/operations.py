"""Every operation of the API, in one list that knows no protocol.

Each entry names the operation, its parameters (type, required or not, the values it
may take), the type of the envelope's ``result``, the error codes it can answer and
the :class:`soapservice.api.WebhookAPI` method that does the work. SOAP 1.1/1.2 (the
Spyne service and its types, soap/), the JSON mirror (web/jsonapi.py), the legacy
rpc/encoded endpoint (legacy/) and the demo page (web/demo.py) are all derived from
it: a new operation is one entry here plus its core method.

Types are plain names: the scalars below, or a :class:`Record` of this module. Order
is wire order (WSDL sequences, positional legacy parts): never reorder an entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from soapservice.errors import EVENTS, Error

# The target namespace of every WSDL and of the operations' elements.
NAMESPACE = "urn:soapservice:webhooks:1"

STRING, INT, LONG, BOOLEAN, DATETIME = "string", "int", "long", "boolean", "dateTime"
SCALARS = (STRING, INT, LONG, BOOLEAN, DATETIME)


@dataclass(frozen=True)
class Field:
    """A member of a record (or an operation's ``result``): ``type`` is a scalar name or
    a :class:`Record`; ``many`` makes it a list, named ``list_name`` where the protocol
    names list types (the WSDL's ``WebHookList``)."""

    name: str
    type: str | Record
    required: bool = True
    many: bool = False
    list_name: str | None = None
    # An XML attribute in SOAP (an optional one): a client holding an older WSDL
    # ignores it, where a new element would fail zeep's strict parsing.
    attribute: bool = False


@dataclass(frozen=True)
class Record:
    name: str
    fields: tuple[Field, ...]

    def extended(self, name: str, *fields: Field) -> Record:
        return Record(name, self.fields + fields)


@dataclass(frozen=True)
class Param:
    name: str
    type: str = STRING
    required: bool = True
    choices: tuple[str, ...] | None = None
    hint: str = ""
    secret: bool = False


@dataclass(frozen=True)
class Operation:
    name: str
    function: str                  # the WebhookAPI method (keyword names = param names)
    params: tuple[Param, ...]      # username and password first
    result: Field
    errors: tuple[Error, ...]
    summary: str

    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def result_name(self) -> str:
        """The typed value holding error, message and result (``CreateWebHookResult``)."""
        return self.name + "Result"


WEBHOOK = Record("WebHook", (
    Field("id", INT),
    Field("app", STRING),
    Field("event", STRING),
    Field("url", STRING),
    Field("active", BOOLEAN),
    Field("created", DATETIME),
    Field("deactivatedAt", DATETIME, required=False),
    Field("failureCount", INT),
    Field("bufferedEvents", INT),
    Field("droppedEvents", INT),
    Field("lastSuccessAt", DATETIME, required=False),
    Field("lastFailureAt", DATETIME, required=False),
    Field("lastError", STRING, required=False),
    Field("secret", STRING),
    # Pending deliveries waiting behind an earlier undelivered (buffered) event of the
    # same subscriber to the same URL (SPEC §7); added after the legacy contract.
    Field("heldEvents", INT, required=False, attribute=True),
))

ACTIVATED_WEBHOOK = WEBHOOK.extended("ActivatedWebHook", Field("replayedEvents", INT))

ATTEMPT = Record("Attempt", (
    Field("at", DATETIME),
    Field("status", INT, required=False),
    Field("error", STRING, required=False),
    Field("durationMs", INT),
    Field("responseSnippet", STRING, required=False),
))

DELIVERY = Record("Delivery", (
    Field("id", LONG),
    Field("messageId", STRING),
    Field("eventId", LONG),
    Field("event", STRING),
    Field("subscriberId", STRING, required=False),
    Field("state", STRING),
    Field("created", DATETIME),
    Field("attemptCount", INT),
    Field("nextAttemptAt", DATETIME, required=False),
    Field("deliveredAt", DATETIME, required=False),
    Field("lastStatus", INT, required=False),
    Field("lastError", STRING, required=False),
    Field("attempts", ATTEMPT, required=False, many=True, list_name="AttemptList"),
))

TEST_RESULT = Record("TestResult", (
    Field("status", INT, required=False),
    Field("durationMs", INT),
    Field("error", STRING, required=False),
    Field("messageId", STRING),
))

DELIVERY_STATES = ("pending", "delivered", "failed", "buffered", "held")

_CREDENTIALS = (Param("username"), Param("password", secret=True))
_AUTH_ERRORS = (Error.OK, Error.AUTH_FAILED, Error.MISSING_PARAMETER, Error.THROTTLED,
                Error.INTERNAL)
_WEBHOOK_ID = Param("webhookId", INT)


def _operation(name: str, function: str, params: tuple[Param, ...], result: Field,
               errors: tuple[Error, ...], summary: str) -> Operation:
    return Operation(name, function, _CREDENTIALS + params, result,
                     tuple(sorted(set(_AUTH_ERRORS + errors))), summary)


OPERATIONS: tuple[Operation, ...] = (
    _operation(
        "CreateWebHook", "create_webhook",
        (Param("app", hint="your application's name"),
         Param("event", choices=EVENTS),
         Param("url", hint="http or https")),
        Field("result", WEBHOOK, required=False),
        (Error.UNKNOWN_EVENT, Error.INVALID_URL, Error.INVALID_VALUE, Error.LIMIT_REACHED),
        "Register a URL that receives one event of one app."),
    _operation(
        "GetWebHooks", "get_webhooks",
        (Param("app", required=False, hint="your application's name"),
         Param("event", required=False, choices=EVENTS)),
        Field("result", WEBHOOK, required=False, many=True, list_name="WebHookList"),
        (Error.UNKNOWN_EVENT,),
        "List the account's webhooks, optionally filtered by app and event."),
    _operation(
        "ActivateWebHook", "activate_webhook",
        (_WEBHOOK_ID,
         Param("replayEvents", INT, required=False, choices=("0", "1"),
               hint="1 sends the buffered events, 0 discards them")),
        Field("result", ACTIVATED_WEBHOOK, required=False),
        (Error.NOT_FOUND, Error.INVALID_VALUE),
        "Reactivate a webhook; replayEvents=1 also sends its buffered events, "
        "0 discards them."),
    _operation(
        "DeleteWebHookById", "delete_webhook",
        (_WEBHOOK_ID,),
        Field("result", INT, required=False),
        (Error.NOT_FOUND, Error.INVALID_VALUE),
        "Delete a webhook and its undelivered events."),
    _operation(
        "GetWebHookDeliveries", "get_webhook_deliveries",
        (_WEBHOOK_ID,
         Param("state", required=False, choices=DELIVERY_STATES),
         Param("limit", INT, required=False, hint="default 50, at most 500"),
         Param("beforeId", LONG, required=False,
               hint="only deliveries older than this id (the last id of a page)")),
        Field("result", DELIVERY, required=False, many=True, list_name="DeliveryList"),
        (Error.NOT_FOUND, Error.INVALID_VALUE),
        "The webhook's deliveries, newest first, each with its latest attempts "
        "(status, error, duration, the start of the receiver's answer)."),
    _operation(
        "ResendWebHookEvents", "resend_webhook_events",
        (_WEBHOOK_ID,
         Param("eventId", LONG, required=False, hint="only this event"),
         Param("since", DATETIME, required=False,
               hint="events from this time (default: 14 days before until)"),
         Param("until", DATETIME, required=False, hint="events up to this time (default: now)")),
        Field("result", INT, required=False),
        (Error.NOT_FOUND, Error.INVALID_VALUE),
        "Send the webhook's delivered or failed events again (same webhook-id), in event "
        "order, after what is still queued for each subscriber; the number queued."),
    _operation(
        "TestWebHook", "test_webhook",
        (_WEBHOOK_ID,),
        Field("result", TEST_RESULT, required=False),
        (Error.NOT_FOUND, Error.INVALID_VALUE),
        "Send one signed sample of the webhook's event now (header x-soapservice-test: "
        "1) and see what the receiver answered; counts nothing against the webhook."),
    _operation(
        "RotateWebHookSecret", "rotate_webhook_secret",
        (_WEBHOOK_ID,
         Param("graceSeconds", INT, required=False,
               hint="default 86400, at most 604800; the old secret signs too until then")),
        Field("result", WEBHOOK, required=False),
        (Error.NOT_FOUND, Error.INVALID_VALUE),
        "Give the webhook a new signing secret; during the grace period deliveries "
        "carry signatures with both."),
)

BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS}


def get(name: str) -> Operation:
    return BY_NAME[name]


def parameter_names(name: str) -> list[str]:
    """The operation's parameters in wire order (username and password first)."""
    return BY_NAME[name].parameter_names


def records() -> list[Record]:
    """Every record the operations' results use, each once, in first-use order."""
    seen: dict[str, Record] = {}

    def visit(kind):
        if isinstance(kind, Record) and kind.name not in seen:
            seen[kind.name] = kind
            for field in kind.fields:
                visit(field.type)

    for op in OPERATIONS:
        visit(op.result.type)
    return list(seen.values())
