"""``soapservice listen``: a local webhook receiver for trying the service out (as
``stripe listen`` is for Stripe's). It prints every delivery (event, ``webhook-id``,
whether the Standard Webhooks signature verifies and why not, the body) and answers
200, or the status chosen with ``--status`` to watch retries and deactivation."""

from __future__ import annotations

import json
import sys
import time

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from twisted.web import resource, server


def check_signature(secrets: list[str], body: bytes, headers: dict[str, str]) -> str:
    """What the signature says, in words: verified with one of ``secrets``, or why not."""
    if "webhook-signature" not in headers:
        return "no webhook-signature header"
    if not secrets:
        return "signature not checked (no --secret)"
    reasons = []
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
        except WebhookVerificationError as exc:
            reasons.append(str(exc) or type(exc).__name__)
        except Exception as exc:  # a malformed secret or header
            reasons.append(f"{type(exc).__name__}: {exc}")
        else:
            return "signature verified"
    return "signature NOT verified: " + "; ".join(dict.fromkeys(reasons))


def describe(method: str, path: str, headers: dict[str, str], body: bytes,
             signature: str, status: int) -> str:
    """One delivery as ``listen`` prints it: a summary line, then the body."""
    event = headers.get("x-soapservice-event", "-")
    msg_id = headers.get("webhook-id", "-")
    stamp = time.strftime("%H:%M:%S")
    try:
        text = json.dumps(json.loads(body), ensure_ascii=False)
    except ValueError:
        text = body.decode("utf-8", "replace")
    if len(text) > 2000:
        text = text[:2000] + " ..."
    return (f"{stamp}  {event}  webhook-id {msg_id}  {method} {path}  {signature}  "
            f"-> {status}\n    {text}")


class Receiver(resource.Resource):
    isLeaf = True

    def __init__(self, secrets: list[str], status: int, out=None):
        super().__init__()
        self.secrets, self.status, self.out = secrets, status, out or sys.stdout

    def render(self, request):
        body = request.content.read()
        headers = {k.decode("latin-1").lower(): v[-1].decode("latin-1")
                   for k, v in request.requestHeaders.getAllRawHeaders()}
        signature = check_signature(self.secrets, body, headers)
        print(describe(request.method.decode("latin-1"), request.uri.decode("latin-1"),
                       headers, body, signature, self.status), file=self.out, flush=True)
        request.setResponseCode(self.status)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"ok\n" if 200 <= self.status < 300 else b"refused by soapservice listen\n"


class QuietSite(server.Site):
    """No access log: the receiver prints each delivery itself."""

    noisy = False

    def log(self, request):
        pass


def run(host: str, port: int, secrets: list[str], status: int) -> int:
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    site = QuietSite(Receiver(secrets, status))
    try:
        listening = reactor.listenTCP(port, site, interface=host)
    except CannotListenError as exc:
        reason = getattr(exc.socketError, "strerror", None) or str(exc.socketError)
        raise SystemExit(f"soapservice listen: cannot listen on {host}:{port}: "
                         f"{reason.lower()}") from None
    bound = listening.getHost().port
    url_host = f"[{host}]" if ":" in host else host
    checking = (f"checking signatures with {len(secrets)} secret(s)" if secrets
                else "not checking signatures (no --secret)")
    print(f"soapservice listen: receiving webhooks on http://{url_host}:{bound}/ (any path), "
          f"answering {status}, {checking}; Ctrl-C stops", flush=True)
    reactor.run()
    return 0
