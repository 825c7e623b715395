"""``POST /events``: ingest over HTTP with a bearer token; 202 once the event is durable."""

from __future__ import annotations

import hmac
import json

from twisted.web import resource

from soapservice import outage
from soapservice.ingest import MAX_EVENT_BYTES, MAX_EVENT_DEPTH, IdempotencyConflict, IngestError
from soapservice.web.respond import respond

MAX_REQUEST_BYTES = MAX_EVENT_BYTES + 4096


def _answer(request, code: int, payload: dict) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(payload).encode()


class Events(resource.Resource):
    isLeaf = True

    def __init__(self, ingestor, token: str | None, reactor, pool):
        super().__init__()
        self.ingestor, self.token = ingestor, token
        self.reactor, self.pool = reactor, pool

    def render_POST(self, request):
        if not self.token:
            return _answer(request, 404, {"error": "POST /events is off: set "
                                                   "SOAPSERVICE_INGEST_TOKEN to enable it"})
        given = (request.getHeader("authorization") or "").encode()
        if not hmac.compare_digest(given, b"Bearer " + self.token.encode()):
            request.setHeader(b"www-authenticate", b"Bearer")
            return _answer(request, 401, {"error": "missing or wrong bearer token"})
        raw = request.content.read(MAX_REQUEST_BYTES + 1)
        if len(raw) > MAX_REQUEST_BYTES:
            return _answer(request, 413, {"error": "event larger than 256 KiB"})
        try:
            message = json.loads(raw)
            if not isinstance(message, dict):
                raise ValueError("expected a JSON object")
            account, event, data = message.get("account"), message.get("event"), \
                message.get("data")
        except RecursionError:
            # deeper than the parser's stack (the limit differs between Pythons): the
            # same answer as data deeper than the ingest limit
            return _answer(request, 400, {"error": "event data nests deeper than "
                                                   f"{MAX_EVENT_DEPTH} levels"})
        except ValueError as exc:
            return _answer(request, 400, {"error": f"body is not JSON: {exc}"})
        key = request.getHeader("idempotency-key")
        # 202 after its group commit (an event with an idempotency key: its own commit)
        d = self.ingestor.submit(account, event, data, idempotency_key=key)

        def stored(result):
            outage.STORE.recovered()
            event_id, queued = result
            if getattr(result, "duplicate", False):
                return _answer(request, 200, {"id": event_id, "queued": queued,
                                              "duplicate": True})
            return _answer(request, 202, {"id": event_id, "queued": queued})

        def refused(failure):
            if failure.check(IdempotencyConflict):
                return _answer(request, 409, {"error": str(failure.value)})
            if failure.check(IngestError):
                return _answer(request, 400, {"error": str(failure.value)})
            return None

        def not_stored(request, reference):
            request.setHeader(b"retry-after", b"5")
            return _answer(request, 503, {"error": "event not stored; try again",
                                          "reference": reference})

        return respond(request, d, stored, what="POST /events", expected=refused,
                       internal=not_stored)

    def render_GET(self, request):
        request.setHeader(b"allow", b"POST")
        return _answer(request, 405, {"error": "use POST"})
