"""``/healthz``: 200 when the store answers and can write, 503 with the reason otherwise
(a full disk answers reads: a ``SELECT 1`` alone said 200 while nothing could be stored).
"""

from twisted.web import resource

from soapservice.services import Runner
from soapservice.store import health
from soapservice.web.respond import respond


class Health(resource.Resource):
    isLeaf = True

    def __init__(self, reactor, pool, check: health.WriteCheck | None = None):
        super().__init__()
        self.run = Runner(reactor, pool)  # blocking work off the reactor
        self.check = check or health.CHECK

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")

        def answer(result):
            healthy, text = result
            if not healthy:
                request.setResponseCode(503)
            return text.encode("utf-8", "replace") + b"\n"

        def unreachable(failure):
            request.setResponseCode(503)
            return b"store unreachable\n"

        return respond(request, self.run(self.check.check), answer, what="health",
                       expected=unreachable)
