"""The ``soapservice`` command: serve, worker, account, wsdl, emit, notifications, and
the operator commands (webhooks, activate, queue, deliveries, erase, export)."""

from __future__ import annotations

import argparse
import getpass
import logging
import signal
import sys

from soapservice import __version__
from soapservice.cli_store import _config_file, _open_store, _redacted, _settings, open_checked
from soapservice.config import ConfigError


def _read_password(prompt_twice: bool = True) -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if prompt_twice and getpass.getpass("Repeat password: ") != password:
            raise SystemExit("soapservice: passwords do not match")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise SystemExit("soapservice: empty password refused")
    return password


def cmd_serve(args) -> int:
    settings = _settings()
    if args.no_delivery:
        settings = settings.replace(delivery_enabled=False)
    if args.port is not None:
        settings = settings.replace(port=args.port)
    reactor, app = _start(settings, web=True)
    settings = app.settings  # with the bound port (SOAPSERVICE_PORT=0)
    from soapservice.addresses import is_wildcard, loopback_for
    port = app.web.address.port
    where = f"http://{loopback_for(settings.host)}:{port}/"
    if is_wildcard(settings.host):
        where += f" (every address of this machine, port {port})"
    wsdl = ("/soap?wsdl of the address each request comes in on"
            if settings.address_from_request else f"{settings.base_url}/soap?wsdl")
    _say(settings, f"soapservice {__version__} listening on {where} "
         f"(WSDL: {wsdl}, store: {_redacted(settings.database_url)})"
         + ("" if settings.delivery_enabled else ", delivery off"))
    if settings.address_from_request:
        _say(settings, f"warning: SOAPSERVICE_HOST={settings.host} listens on every "
             "address and SOAPSERVICE_PUBLIC_URL is not set: links in notifications "
             f"(reactivation) name {settings.base_url}; set SOAPSERVICE_PUBLIC_URL to the "
             "address customers reach")
    from soapservice.store import accounts
    if not accounts.all_accounts():
        _say(settings, "no accounts yet: add one with `soapservice account add USER` "
             "(or `make account NAME=name`)")
    # What startup built lives as long as the process: keep it out of the cyclic GC's
    # full collections. Spyne calls gc.collect() after a request at most once a second;
    # over the startup objects that took a third of the SOAP server's time (py-spy).
    import gc
    gc.freeze()
    return _run_until_signal(reactor, app.service)


def cmd_worker(args) -> int:
    """The delivery loop alone: any number of workers (and ``serve --no-delivery``
    processes) share one PostgreSQL store."""
    settings = _settings().replace(delivery_enabled=True)
    if args.metrics_port is not None:
        settings = settings.replace(metrics_port=args.metrics_port)
    reactor, app = _start(settings, web=False)
    metrics = ""
    if app.metrics is not None:
        from soapservice.addresses import loopback_for
        metrics = (f", metrics on http://{loopback_for(settings.host)}:"
                   f"{app.metrics.address.port}/metrics")
    _say(settings, f"soapservice {__version__} worker {app.delivery.owner} delivering "
         f"from {_redacted(settings.database_url)}{metrics}")
    if settings.database_url.startswith("sqlite"):
        _say(settings, "note: on SQLite one delivering process is the rule; use "
             "PostgreSQL for several workers")
    return _run_until_signal(reactor, app.service)


def _say(settings, text: str) -> None:
    """A start-up line: printed, or logged when the log is JSON (one object a line)."""
    if settings.log_format == "json":
        logging.getLogger("soapservice").info(text)
    else:
        print(text, flush=True)


def _start(settings, *, web: bool):
    """Log to standard output (Twisted's log through ``logging``), build the service
    (``serve`` with the web, ``worker`` without) and start it: (reactor, app)."""
    from twisted.internet import reactor

    from soapservice import logs
    from soapservice.server import make_app

    logs.configure(settings.log_level, settings.log_format)
    from twisted.internet.error import CannotListenError
    # A store that cannot be opened: one line, before anything.
    _name, store = open_checked(settings)
    try:
        app = make_app(settings, reactor, store=store, web=web)
        # Bind the ports first, before any thread or the delivery loop starts: a port in
        # use then ends the process at once, with nothing to undo.
        app.service.privilegedStartService()
    except ConfigError as exc:
        raise SystemExit(f"soapservice: configuration error: {exc}") from None
    except CannotListenError as exc:
        reason = getattr(exc.socketError, "strerror", None) or str(exc.socketError)
        raise SystemExit(f"soapservice: cannot listen on {host_port(exc.interface, exc.port)}"
                         f": {reason.lower()}") from None
    app.service.startService()
    return reactor, app


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _run_until_signal(reactor, top) -> int:
    """Run until SIGTERM or SIGINT, then stop cleanly: stop taking requests, finish the
    attempts in flight, give back every lease (the services' stopService runs before
    the reactor stops), exit 0. A second signal while stopping changes nothing."""
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    stopping = []

    def stop_once():
        if not stopping:
            stopping.append(True)
            reactor.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: reactor.callFromThread(stop_once))
    reactor.run(installSignalHandlers=False)
    return 0


def cmd_account(args) -> int:
    settings = _settings()
    name = _open_store(settings, create=args.action == "add")
    from soapservice import auth
    from soapservice.store import accounts
    if (getattr(args, "user", None) or "").startswith(accounts.SYSTEM_PREFIX):
        raise SystemExit(f"soapservice: account names starting with "
                         f"{accounts.SYSTEM_PREFIX!r} are reserved")
    if args.action == "add":
        if accounts.find(args.user) is not None:
            raise SystemExit(f"soapservice: account {args.user!r} exists")
        if not args.user or len(args.user) > 255:
            raise SystemExit("soapservice: user name must be 1 to 255 characters")
        accounts.add(args.user, auth.hash_password(_read_password()), args.email)
        print(f"account {args.user} added")
    elif args.action == "passwd":
        if accounts.find(args.user) is None:
            raise SystemExit(f"soapservice: no account {args.user!r} in {name}")
        accounts.set_password(args.user, auth.hash_password(_read_password()))
        print(f"password of {args.user} changed")
    elif args.action == "remove":
        account = accounts.find(args.user)
        if account is None:
            raise SystemExit(f"soapservice: no account {args.user!r} in {name}")
        if not args.yes:
            _confirm(f"Remove account {args.user} and its {_webhook_count(account)} "
                     "webhook(s) with their undelivered events?")
        if not accounts.remove(args.user):
            raise SystemExit(f"soapservice: no account {args.user!r} in {name}")
        print(f"account {args.user} removed")
    else:
        for account in accounts.all_accounts():
            print(f"{account.username}\t{account.email or '-'}")
    return 0


def _webhook_count(account) -> int:
    from soapservice.store import webhooks
    return webhooks.count(account.id)


def _confirm(question: str) -> None:
    """Ask on the terminal; without one (a script), refuse: ``--yes`` says it."""
    if not sys.stdin.isatty():
        raise SystemExit(f"soapservice: {question} Not confirmed: add --yes to do it "
                         "without asking")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise SystemExit("soapservice: nothing removed")


def cmd_wsdl(args) -> int:
    settings = _settings()
    base = (args.base_url or settings.base_url).rstrip("/")
    if args.legacy:
        from soapservice.legacy.wsdl import PATH, legacy_wsdl
        sys.stdout.buffer.write(legacy_wsdl(base + PATH))
        return 0
    from soapservice.api import WebhookAPI
    from soapservice.soap.apps import wsdl_document
    path = "soap12" if args.soap12 else "soap"
    document = wsdl_document(WebhookAPI(settings), "1.2" if args.soap12 else "1.1",
                             f"{base}/{path}")
    sys.stdout.buffer.write(document)
    return 0


def cmd_emit(args) -> int:
    import json

    from soapservice.ingest import IngestError, emit
    settings = _settings()
    raw = sys.stdin.read() if args.json == "-" else args.json
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise SystemExit(f"soapservice: event data is not JSON: {exc}") from None
    name = _open_store(settings)
    try:
        stored = emit(args.account, args.event, data, window_sec=settings.buffer_window_sec,
                      idempotency_key=args.idempotency_key)
    except IngestError as exc:
        raise SystemExit(f"soapservice: {exc} in {name}") from None
    event_id, queued = stored
    if stored.duplicate:
        print(f"event {event_id} already stored under this idempotency key "
              f"(queued for {queued} webhook(s)); nothing stored")
    else:
        print(f"event {event_id} queued for {queued} webhook(s)")
    return 0


def _when(value) -> str:
    import datetime
    if value is None:
        return "-"
    return datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_notifications(args) -> int:
    import time

    settings = _settings()
    name = _open_store(settings, create=False)
    from soapservice.store import accounts, notifications
    if args.account is not None and accounts.find(args.account) is None:
        raise SystemExit(f"soapservice: no account {args.account!r} in {name}")
    now = time.time()
    for n in notifications.listing(args.account):
        print(f"{_when(n.created_at)}  {n.account.username}  webhook {n.webhook_id}  "
              f"{n.failure_count} failures, {n.buffered_events} buffered  "
              f"last error: {n.last_error}\n    {n.reason}\n    reactivate: {n.link}  "
              f"({link_status(n.link, now)})")
    return 0


def link_status(link: str, now: float) -> str:
    """Whether a notification's reactivation link still works, in the words of the page
    that opening it would show."""
    from soapservice import reactivation
    try:
        reactivation.view(link.rsplit("/", 1)[-1], now)
    except reactivation.LinkRefused as refused:
        return f"spent: {refused.title[0].lower()}{refused.title[1:]}"
    return "usable"


def _status(raw: str) -> int:
    try:
        status = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an HTTP status") from None
    if not 200 <= status <= 599:
        raise argparse.ArgumentTypeError(f"{status} is not an HTTP status of 200 to 599")
    return status


def cmd_listen(args) -> int:
    from soapservice.listen import run
    return run(args.host, args.port, args.secret, args.status)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soapservice", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    config = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a nested parser's default must not overwrite a value given before it.
    config.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="a TOML configuration file (keys: the SOAPSERVICE_* names "
                        "in lower case without the prefix; the environment overrides it; "
                        "default: $SOAPSERVICE_CONFIG)")
    parents = [config]

    serve = sub.add_parser("serve", parents=parents,
                           help="run the API and the delivery loop")
    serve.add_argument("--port", type=int, help="override SOAPSERVICE_PORT")
    serve.add_argument("--no-delivery", action="store_true", help="API only, no delivery loop")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", parents=parents, help="run only the delivery loop "
                            "(several may share a PostgreSQL store)")
    worker.add_argument("--metrics-port", type=int,
                        help="serve /metrics here (override SOAPSERVICE_METRICS_PORT)")
    worker.set_defaults(func=cmd_worker)

    account = sub.add_parser("account", parents=parents, help="manage accounts")
    acc = account.add_subparsers(dest="action", required=True)
    add = acc.add_parser("add", parents=parents,
                         help="add an account (password from prompt or stdin)")
    add.add_argument("user")
    add.add_argument("--email")
    acc.add_parser("passwd", parents=parents).add_argument("user")
    remove = acc.add_parser("remove", parents=parents,
                            help="remove an account with its webhooks (asks first)")
    remove.add_argument("user")
    remove.add_argument("--yes", action="store_true", help="do not ask")
    acc.add_parser("list", parents=parents)
    account.set_defaults(func=cmd_account)

    wsdl = sub.add_parser("wsdl", parents=parents, help="print the served WSDL")
    wsdl.add_argument("--soap12", action="store_true", help="the SOAP 1.2 WSDL (/soap12)")
    wsdl.add_argument("--base-url", help="address named in the WSDL (default: "
                      "SOAPSERVICE_PUBLIC_URL, else http://HOST:PORT)")
    wsdl.add_argument("--legacy", action="store_true",
                      help="the rpc/encoded WSDL of /webservice/webservice/soap3")
    wsdl.set_defaults(func=cmd_wsdl)

    emit = sub.add_parser("emit", parents=parents, help="store an event for delivery")
    emit.add_argument("--account", required=True)
    emit.add_argument("event")
    emit.add_argument("json", help="the event data as a JSON object, or - for stdin")
    emit.add_argument("--idempotency-key", metavar="K",
                      help="store the event once per key and account within 24 hours")
    emit.set_defaults(func=cmd_emit)

    notes = sub.add_parser("notifications", parents=parents,
                           help="list deactivation notifications")
    notes.add_argument("--account")
    notes.set_defaults(func=cmd_notifications)

    listen = sub.add_parser("listen", help="run a local webhook receiver that prints "
                            "each delivery (for trying the service out)")
    listen.add_argument("--port", type=int, default=9000, help="default 9000")
    listen.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    listen.add_argument("--secret", action="append", default=[], metavar="WHSEC",
                        help="verify signatures with this webhook secret (whsec_...; "
                        "may be given several times)")
    listen.add_argument("--status", type=_status, default=200,
                        help="answer this HTTP status (default 200; e.g. 500 or 410 to "
                        "watch retries and deactivation)")
    listen.set_defaults(func=cmd_listen)

    from soapservice import cli_operator
    cli_operator.add_commands(sub, parents)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _config_file[0] = getattr(args, "config", None)
    return args.func(args)
