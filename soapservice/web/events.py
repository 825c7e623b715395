"""``POST /events``: ingest over HTTP with a bearer token; 202 once the event is durable."""

from __future__ import annotations

import hmac
import json

from twisted.web import resource, server

from soapservice.ingest import MAX_EVENT_BYTES, IngestError

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
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
            return _answer(request, 400, {"error": f"body is not JSON: {reason}"})
        d = self.ingestor.submit(account, event, data)  # 202 after its group commit

        def stored(result):
            event_id, queued = result
            body = _answer(request, 202, {"id": event_id, "queued": queued})
            if not request._disconnected:
                request.write(body)
                request.finish()

        def refused(failure):
            if failure.check(IngestError):
                body = _answer(request, 400, {"error": str(failure.value)})
            else:
                body = _answer(request, 503, {"error": "event not stored; try again"})
                failure.printTraceback()
            if not request._disconnected:
                request.write(body)
                request.finish()

        d.addCallbacks(stored, refused)
        return server.NOT_DONE_YET

    def render_GET(self, request):
        request.setHeader(b"allow", b"POST")
        return _answer(request, 405, {"error": "use POST"})
