"""``/metrics``: the process's Prometheus metrics, rendered in the thread pool (the
store gauges query the database)."""

from twisted.web import resource

from soapservice import metrics
from soapservice.services import Runner
from soapservice.web.respond import respond


class Metrics(resource.Resource):
    isLeaf = True

    def __init__(self, reactor, pool):
        super().__init__()
        self.reactor, self.pool = reactor, pool
        self.run = Runner(reactor, pool)  # blocking work off the reactor

    def render_GET(self, request):
        def answer(result):
            body, content_type = result
            request.setHeader(b"content-type", content_type.encode())
            return body

        return respond(request, self.run(metrics.render),
                       answer, what="metrics")
