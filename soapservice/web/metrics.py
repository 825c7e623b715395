"""``/metrics``: the process's Prometheus metrics, rendered in the thread pool (the
store gauges query the database)."""

from twisted.internet.threads import deferToThreadPool
from twisted.web import resource, server

from soapservice import metrics


class Metrics(resource.Resource):
    isLeaf = True

    def __init__(self, reactor, pool):
        super().__init__()
        self.reactor, self.pool = reactor, pool

    def render_GET(self, request):
        d = deferToThreadPool(self.reactor, self.pool, metrics.render)

        def answer(result):
            if request._disconnected:
                return
            body, content_type = result
            request.setHeader(b"content-type", content_type.encode())
            request.write(body)
            request.finish()

        def failed(failure):
            if not request._disconnected:
                request.setResponseCode(500)
                request.write(b"metrics unavailable\n")
                request.finish()

        d.addCallbacks(answer, failed)
        return server.NOT_DONE_YET
