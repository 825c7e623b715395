"""``/healthz``: 200 when the store answers, 503 otherwise."""

from twisted.internet.threads import deferToThreadPool
from twisted.web import resource, server

from soapservice import store


class Health(resource.Resource):
    isLeaf = True

    def __init__(self, reactor, pool):
        super().__init__()
        self.reactor, self.pool = reactor, pool

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        d = deferToThreadPool(self.reactor, self.pool, store.ping)

        def answer(ok, code, text):
            if not request._disconnected:
                request.setResponseCode(code)
                request.write(text)
                request.finish()

        d.addCallbacks(lambda _: answer(True, 200, b"ok\n"),
                       lambda _: answer(False, 503, b"store unreachable\n"))
        return server.NOT_DONE_YET
