"""The operator commands of ``soapservice``: ``webhooks``, ``activate``, ``queue``,
``deliveries``, ``erase``, ``export``, ``audit``. They act on the store directly, across every
account, so they need the store's address (the configuration), never a customer's
password. Exit codes: 0 done, 1 refused or not found (the message says why, on
standard error), 2 bad usage.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time

from soapservice.cli_store import _open_store, _settings

EXIT_OK, EXIT_FAILED = 0, 1


def _fail(message: str) -> SystemExit:
    print(f"soapservice: {message}", file=sys.stderr)
    return SystemExit(EXIT_FAILED)


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(value: float | None) -> str | None:
    from soapservice.store.operator import _time
    return _time(value)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _table(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def _json_out(value) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _opened(args):
    """Open the store of the configuration (``--config``, the environment)."""
    settings = _settings()
    # Commands that only read never create a store (cli_store._open_store).
    _open_store(settings, create=args.command not in ("webhooks", "queue",
                                                          "deliveries", "export"))
    return settings


# -- webhooks ---------------------------------------------------------------------------
def cmd_webhooks(args) -> int:
    _opened(args)
    from soapservice.store import operator
    try:
        rows = operator.list_webhooks(args.account, args.inactive, args.failing)
    except operator.UnknownAccount:
        raise _fail(f"no account {args.account!r}") from None
    if args.json:
        _json_out([{
            "id": r.hook.id, "account": r.account, "app": r.hook.app, "event": r.hook.event,
            "url": r.hook.url, "state": r.state, "active": bool(r.hook.active),
            "failureCount": r.hook.failure_count, "bufferedEvents": r.buffered,
            "heldEvents": r.held, "droppedEvents": r.hook.dropped_events,
            "deactivatedAt": _iso(r.hook.deactivated_at),
            "lastSuccessAt": _iso(r.hook.last_success_at),
            "lastFailureAt": _iso(r.hook.last_failure_at), "lastError": r.hook.last_error,
        } for r in rows])
        return EXIT_OK
    if not rows:
        print("no webhooks")
        return EXIT_OK
    print(_table(["ID", "ACCOUNT", "EVENT", "STATE", "FAILURES", "BUFFERED", "HELD",
                  "DROPPED", "SINCE", "URL", "LAST ERROR"],
                 [[r.hook.id, r.account, r.hook.event, r.state, r.hook.failure_count,
                   r.buffered, r.held, r.hook.dropped_events,
                   _when(r.hook.deactivated_at if not r.hook.active
                         else r.hook.last_failure_at if r.hook.failure_count else None),
                   r.hook.url, (r.hook.last_error or "-")[:60]] for r in rows]))
    return EXIT_OK


# -- activate ---------------------------------------------------------------------------
def cmd_activate(args) -> int:
    _opened(args)
    from soapservice.store import operator
    try:
        row = operator.find_webhook(args.id)
    except operator.UnknownWebhook:
        raise _fail(f"no webhook {args.id}") from None
    if row.hook.active:
        print(f"webhook {args.id} ({row.account}, {row.hook.url}) is already active")
        return EXIT_OK
    if row.buffered and not (args.replay or args.discard):
        raise _fail(f"webhook {args.id} has {row.buffered} buffered events: say --replay "
                    "to send them or --discard to drop them")
    try:
        hook, replayed = operator.activate(args.id, replay=args.replay)
    except operator.UnknownWebhook:
        raise _fail(f"no webhook {args.id}") from None
    if args.replay:
        print(f"webhook {hook.id} ({row.account}, {hook.url}) active; "
              f"{replayed} buffered events queued for replay")
    else:
        print(f"webhook {hook.id} ({row.account}, {hook.url}) active; "
              f"{row.buffered} buffered events discarded")
    return EXIT_OK


# -- queue ------------------------------------------------------------------------------
def cmd_queue(args) -> int:
    _opened(args)
    from soapservice.store import operator
    rows = operator.queue(time.time())
    if args.json:
        _json_out([r.as_dict() for r in rows])
        return EXIT_OK
    if not rows:
        print("no accounts")
        return EXIT_OK
    print(_table(["ACCOUNT", "DUE", "IN FLIGHT", "RETRYING", "HELD", "BUFFERED",
                  "OLDEST DUE"],
                 [[r.account, r.due, r.in_flight, r.retrying, r.held, r.buffered,
                   _age(r.oldest_due_age_sec)] for r in rows]))
    return EXIT_OK


# -- deliveries -------------------------------------------------------------------------
def cmd_deliveries(args) -> int:
    _opened(args)
    from soapservice.store import operator
    if args.limit < 1 or args.limit > 10000:
        raise _fail("--limit must be between 1 and 10000")
    try:
        attempts = operator.recent_attempts(args.account, args.webhook, args.limit)
    except operator.UnknownAccount:
        raise _fail(f"no account {args.account!r}") from None
    if args.json:
        _json_out([{
            "at": _iso(a.at), "account": a.username, "webhookId": a.webhook_id,
            "url": a.url, "deliveryId": a.delivery_id, "eventId": a.event_id,
            "status": a.status, "error": a.error, "durationMs": a.duration_ms,
            "responseSnippet": a.response_snippet,
        } for a in attempts])
        return EXIT_OK
    for a in attempts:
        outcome = str(a.status) if a.status is not None else (a.error or "-")
        event = a.event_id if a.event_id is not None else "-"
        print(f"{_when(a.at)}  {a.username}  webhook {a.webhook_id}  delivery "
              f"{a.delivery_id}  event {event}  {outcome}  {a.duration_ms:.0f} ms  {a.url}")
        text = a.response_snippet
        if text:
            print("    " + " ".join(text.split())[:200])
    return EXIT_OK


# -- erase ------------------------------------------------------------------------------
def cmd_erase(args) -> int:
    _opened(args)
    from soapservice.store import operator
    if not args.subscriber.strip():
        raise _fail("--subscriber must not be empty")
    if not args.yes:
        if not sys.stdin.isatty():
            raise _fail("erase deletes data for good: add --yes to confirm "
                        "(standard input is not a terminal)")
        answer = input(f"Erase every stored event of subscriber {args.subscriber!r} of "
                       f"account {args.account!r}? Type yes: ")
        if answer.strip().lower() != "yes":
            raise _fail("not confirmed; nothing erased")
    try:
        erased = operator.erase_subscriber(args.account, args.subscriber)
    except operator.UnknownAccount:
        raise _fail(f"no account {args.account!r}") from None
    if args.json:
        _json_out(erased.as_dict())
    else:
        print(f"erased subscriber {args.subscriber} of {args.account}: {erased.events} "
              f"events, {erased.deliveries} deliveries ({erased.buffered} buffered), "
              f"{erased.attempts} attempts")
    return EXIT_OK


# -- export -----------------------------------------------------------------------------
def cmd_export(args) -> int:
    _opened(args)
    from soapservice.store import operator
    out = sys.stdout
    try:
        for record in operator.export_account(args.account, args.subscriber):
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
    except operator.UnknownAccount:
        raise _fail(f"no account {args.account!r}") from None
    out.flush()
    return EXIT_OK


# -- audit ------------------------------------------------------------------------------
def cmd_audit(args) -> int:
    _opened(args)
    from soapservice.store import operator_events
    if args.limit < 1 or args.limit > 100000:
        raise _fail("--limit must be between 1 and 100000")
    if args.kind is not None and args.kind not in operator_events.KINDS:
        raise _fail(f"unknown kind {args.kind!r}; known: {', '.join(operator_events.KINDS)}")
    rows = operator_events.audit(args.account, args.webhook, args.kind, args.limit)
    if args.json:
        for row in rows:
            sys.stdout.write(row.data + "\n")
        return EXIT_OK
    for row in rows:
        data = json.loads(row.data)["data"]
        extra = ", ".join(f"{k}={v}" for k, v in data.items()
                          if k not in ("account", "webhookId", "url", "app", "event"))
        print(f"{_when(row.at)}  {row.kind:<22}  {row.account_name}  webhook "
              f"{row.webhook_id}  {row.url}" + (f"  {extra}" if extra else ""))
    return EXIT_OK


# -- the parser -------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def add_commands(sub, parents=()) -> None:
    """Register the operator commands on the ``soapservice`` sub-parsers."""
    hooks = sub.add_parser(
        "webhooks", parents=parents, help="list webhooks of every account (operator)",
        description="List the webhooks of every account (or one) with their health: state "
        "(active, failing, inactive), consecutive failures, buffered, held and dropped "
        "events, last error.")
    hooks.add_argument("--account", help="only this account's webhooks")
    hooks.add_argument("--inactive", action="store_true", help="only inactive webhooks")
    hooks.add_argument("--failing", action="store_true",
                       help="only webhooks in trouble: failing or inactive")
    hooks.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    hooks.set_defaults(func=cmd_webhooks)

    activate = sub.add_parser(
        "activate", parents=parents, help="reactivate a webhook (operator)",
        description="Reactivate webhook ID of any account (ActivateWebHook without the "
        "customer's password). When it has buffered events, say what to do with them.")
    activate.add_argument("id", type=_positive_int, help="the webhook id")
    choice = activate.add_mutually_exclusive_group()
    choice.add_argument("--replay", action="store_true",
                        help="send the buffered events, oldest first")
    choice.add_argument("--discard", action="store_true", help="drop the buffered events")
    activate.set_defaults(func=cmd_activate)

    queue = sub.add_parser(
        "queue", parents=parents, help="the delivery queue per account (operator)",
        description="Per account: deliveries due now, in flight, waiting for a retry, "
        "held behind an earlier event of the same subscriber, buffered, and how long the "
        "oldest due one has waited.")
    queue.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    queue.set_defaults(func=cmd_queue)

    deliveries = sub.add_parser(
        "deliveries", parents=parents, help="recent delivery attempts (operator)",
        description="The newest delivery attempts, with event id, status or error, "
        "duration and the start of the receiver's answer.")
    deliveries.add_argument("--account", help="only this account")
    deliveries.add_argument("--webhook", type=_positive_int, help="only this webhook")
    deliveries.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    deliveries.add_argument("--json", action="store_true", help="a JSON array")
    deliveries.set_defaults(func=cmd_deliveries)

    erase = sub.add_parser(
        "erase", parents=parents, help="erase a subscriber's stored data (GDPR Art. 17)",
        description="Delete every stored event of one subscriber (the events' "
        "subscriber_id) of one account, with their deliveries, buffered copies and "
        "attempts, in one transaction; prints the counts. Events arriving later are "
        "not affected.")
    erase.add_argument("--account", required=True)
    erase.add_argument("--subscriber", required=True, help="the subscriber_id")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    erase.add_argument("--json", action="store_true", help="print the counts as JSON")
    erase.set_defaults(func=cmd_erase)

    export = sub.add_parser(
        "export", parents=parents, help="export an account's data as JSON lines",
        description="Everything stored for an account, one JSON object per line with a "
        "\"type\": account, webhook (no secrets), event (with its data), delivery, "
        "attempt, audit (operator events), notification. With --subscriber: only that "
        "subscriber's events.")
    export.add_argument("--account", required=True)
    export.add_argument("--subscriber", help="only this subscriber's events (GDPR Art. 15)")
    export.set_defaults(func=cmd_export)

    audit = sub.add_parser(
        "audit", parents=parents, help="the audit trail: operator events, newest first",
        description="Operator events (webhook.created, .deleted, .secret_rotated, "
        ".failing, .deactivated, .reactivated, .recovered, .dropping) as stored when they "
        "happened, newest first; --json prints each as sent to the operator's URL.")
    audit.add_argument("--account", help="only this account's")
    audit.add_argument("--webhook", type=_positive_int, help="only this webhook's")
    audit.add_argument("--kind", help="only this kind, e.g. webhook.deactivated")
    audit.add_argument("--limit", type=int, default=100, help="how many (default 100)")
    audit.add_argument("--json", action="store_true", help="JSON lines")
    audit.set_defaults(func=cmd_audit)
