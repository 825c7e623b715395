"""The ``soapservice`` command: serve, worker, account, wsdl, emit, notifications,
deliveries."""

from __future__ import annotations

import argparse
import getpass
import logging
import signal
import sys

from soapservice import __version__
from soapservice.config import ConfigError, load_settings


def _settings():
    try:
        return load_settings()
    except ConfigError as exc:
        raise SystemExit(f"soapservice: configuration error: {exc}") from None


def _open_store(settings):
    from soapservice import store
    store.open_store(settings.database_url, synchronous=settings.sqlite_synchronous)


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
    reactor, top = _start(settings, web=True)
    port = top.web._port.getHost().port
    print(f"soapservice {__version__} listening on http://{settings.host}:{port}/ "
          f"(WSDL: {settings.base_url}/soap?wsdl, store: {_redacted(settings.database_url)})"
          + ("" if settings.delivery_enabled else ", delivery off"), flush=True)
    from soapservice.store import accounts
    if not accounts.all_accounts():
        print("no accounts yet: add one with `soapservice account add USER` "
              "(or `make account NAME=name`)", flush=True)
    # What startup built lives as long as the process: keep it out of the cyclic GC's
    # full collections. Spyne calls gc.collect() after a request at most once a second;
    # over the startup objects that took a third of the SOAP server's time (py-spy).
    import gc
    gc.freeze()
    return _run_until_signal(reactor, top)


def cmd_worker(args) -> int:
    """The delivery loop alone: any number of workers (and ``serve --no-delivery``
    processes) share one PostgreSQL store."""
    settings = _settings().replace(delivery_enabled=True)
    if args.metrics_port is not None:
        settings = settings.replace(metrics_port=args.metrics_port)
    reactor, top = _start(settings, web=False)
    metrics = ""
    if top.metrics is not None:
        metrics = (f", metrics on http://{settings.host}:"
                   f"{top.metrics._port.getHost().port}/metrics")
    print(f"soapservice {__version__} worker {top.delivery.owner} delivering from "
          f"{_redacted(settings.database_url)}{metrics}", flush=True)
    if settings.database_url.startswith("sqlite"):
        print("note: on SQLite one delivering process is the rule; use PostgreSQL for "
              "several workers", flush=True)
    return _run_until_signal(reactor, top)


def _start(settings, *, web: bool):
    """Log to standard output (Twisted's log through ``logging``), build the service
    (``serve`` with the web, ``worker`` without) and start it: (reactor, service)."""
    from twisted.internet import reactor
    from twisted.python import log as twisted_log

    from soapservice.server import make_service

    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    twisted_log.PythonLoggingObserver("twisted").start()
    try:
        top = make_service(settings, reactor, web=web)
    except ConfigError as exc:
        raise SystemExit(f"soapservice: configuration error: {exc}") from None
    top.startService()
    return reactor, top


def _redacted(url: str) -> str:
    """The store URL without a password."""
    import urllib.parse
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


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
    _open_store(settings)
    from soapservice import auth
    from soapservice.store import accounts
    if args.action == "add":
        if accounts.find(args.user) is not None:
            raise SystemExit(f"soapservice: account {args.user!r} exists")
        if not args.user or len(args.user) > 255:
            raise SystemExit("soapservice: user name must be 1 to 255 characters")
        accounts.add(args.user, auth.hash_password(_read_password()), args.email)
        print(f"account {args.user} added")
    elif args.action == "passwd":
        if accounts.find(args.user) is None:
            raise SystemExit(f"soapservice: no account {args.user!r}")
        accounts.set_password(args.user, auth.hash_password(_read_password()))
        print(f"password of {args.user} changed")
    elif args.action == "remove":
        if not accounts.remove(args.user):
            raise SystemExit(f"soapservice: no account {args.user!r}")
        print(f"account {args.user} removed")
    else:
        for account in accounts.all_accounts():
            print(f"{account.username}\t{account.email or '-'}")
    return 0


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
    _open_store(settings)
    try:
        event_id, queued = emit(args.account, args.event, data,
                                window_sec=settings.buffer_window_sec)
    except IngestError as exc:
        raise SystemExit(f"soapservice: {exc}") from None
    print(f"event {event_id} queued for {queued} webhook(s)")
    return 0


def _when(value) -> str:
    import datetime
    if value is None:
        return "-"
    return datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_notifications(args) -> int:
    settings = _settings()
    _open_store(settings)
    from soapservice import notify
    for n in notify.notifications(args.account):
        print(f"{_when(n.created_at)}  {n.account.username}  webhook {n.webhook_id}  "
              f"{n.failure_count} failures, {n.buffered_events} buffered  "
              f"last error: {n.last_error}\n    {n.reason}\n    reactivate: {n.link}")
    return 0


def cmd_deliveries(args) -> int:
    settings = _settings()
    _open_store(settings)
    from soapservice.store import outbox
    for a in outbox.recent_attempts(args.account, args.webhook, args.limit):
        outcome = str(a.status) if a.status is not None else a.error
        print(f"{_when(a.at)}  webhook {a.webhook_id}  delivery {a.delivery_id}  "
              f"{outcome}  {a.duration_ms:.0f} ms  {a.webhook.url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soapservice", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API and the delivery loop")
    serve.add_argument("--port", type=int, help="override SOAPSERVICE_PORT")
    serve.add_argument("--no-delivery", action="store_true", help="API only, no delivery loop")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run only the delivery loop (several may "
                            "share a PostgreSQL store)")
    worker.add_argument("--metrics-port", type=int,
                        help="serve /metrics here (override SOAPSERVICE_METRICS_PORT)")
    worker.set_defaults(func=cmd_worker)

    account = sub.add_parser("account", help="manage accounts")
    acc = account.add_subparsers(dest="action", required=True)
    add = acc.add_parser("add", help="add an account (password from prompt or stdin)")
    add.add_argument("user")
    add.add_argument("--email")
    for name in ("passwd", "remove"):
        acc.add_parser(name).add_argument("user")
    acc.add_parser("list")
    account.set_defaults(func=cmd_account)

    wsdl = sub.add_parser("wsdl", help="print the served WSDL")
    wsdl.add_argument("--soap12", action="store_true", help="the SOAP 1.2 WSDL (/soap12)")
    wsdl.add_argument("--base-url", help="address named in the WSDL (default: "
                      "SOAPSERVICE_PUBLIC_URL, else http://HOST:PORT)")
    wsdl.add_argument("--legacy", action="store_true",
                      help="the rpc/encoded WSDL of /webservice/webservice/soap3")
    wsdl.set_defaults(func=cmd_wsdl)

    emit = sub.add_parser("emit", help="store an event for delivery")
    emit.add_argument("--account", required=True)
    emit.add_argument("event")
    emit.add_argument("json", help="the event data as a JSON object, or - for stdin")
    emit.set_defaults(func=cmd_emit)

    notes = sub.add_parser("notifications", help="list deactivation notifications")
    notes.add_argument("--account")
    notes.set_defaults(func=cmd_notifications)

    deliveries = sub.add_parser("deliveries", help="recent delivery attempts")
    deliveries.add_argument("--account", required=True)
    deliveries.add_argument("--webhook", type=int)
    deliveries.add_argument("--limit", type=int, default=50)
    deliveries.set_defaults(func=cmd_deliveries)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
