"""The bare baselines: what this machine does with nothing but the parts of the stack.

- ``agent``: a Twisted ``Agent`` loop with a persistent ``HTTPConnectionPool`` POSTing
  the same JSON (with the same header names) to the same receiver, ``concurrency``
  requests in flight; prints its elapsed time when all are answered.
- ``soap``: a Spyne application with one no-op operation, served the way soapservice
  serves its SOAP endpoint (``WsgiApplication`` in a ``WSGIResource`` on twisted.web,
  thread pool of the same size); prints its port.
- ``ingest``: a twisted.web resource answering ``POST /events`` with 202 after reading
  and parsing the body, storing nothing; prints its port.

    python -m bench.bare agent PORT COUNT CONCURRENCY BODY
    python -m bench.bare soap|ingest
"""

from __future__ import annotations

import json
import sys
import time


def agent(port: int, count: int, concurrency: int, body: str) -> None:
    from twisted.internet import defer, reactor, task
    from twisted.web.client import Agent, HTTPConnectionPool, readBody
    from twisted.web.http_headers import Headers

    from soapservice.sender import _BytesProducer

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = concurrency
    client = Agent(reactor, pool=pool)
    url = f"http://127.0.0.1:{port}/bare".encode()
    headers = {b"content-type": [b"application/json"], b"user-agent": [b"bare/1"],
               b"webhook-id": [b"msg_1"], b"webhook-timestamp": [b"1700000000"],
               b"webhook-signature": [b"v1,c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2ln"],
               b"x-soapservice-event": [b"bench"], b"x-soapservice-app": [b"bench"]}
    bodies = iter(range(count))
    failures = []

    @defer.inlineCallbacks
    def worker():
        for k in bodies:
            data = body.replace("{k}", str(k)).encode()
            try:
                response = yield client.request(b"POST", url, Headers(headers),
                                                _BytesProducer(data))
                yield readBody(response)
            except Exception as exc:  # counted, not fatal: the receiver counts arrivals
                failures.append(repr(exc))

    @defer.inlineCallbacks
    def run():
        import resource
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        yield defer.DeferredList([worker() for _ in range(concurrency)])
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (usage.ru_utime + usage.ru_stime) - (before.ru_utime + before.ru_stime)
        print(json.dumps({"elapsed": time.perf_counter() - started,
                          "failures": len(failures), "cpu_seconds": cpu}), flush=True)
        yield pool.closeCachedConnections()

    task.react(lambda _reactor: run())


def soap() -> None:
    import soapservice.compat  # noqa: F401  (before Spyne: it needs it on Python 3.12+)
    # isort: split
    from spyne import Application, ServiceBase, Unicode, rpc
    from spyne.protocol.soap import Soap11
    from spyne.server.wsgi import WsgiApplication
    from twisted.internet import reactor
    from twisted.python.threadpool import ThreadPool
    from twisted.web import resource, server
    from twisted.web.wsgi import WSGIResource

    class Bare(ServiceBase):
        @rpc(Unicode, Unicode, _returns=Unicode)
        def Noop(ctx, username, password):
            return "OK"

    app = Application([Bare], tns="urn:bench:bare", name="Bare",
                      in_protocol=Soap11(validator=None), out_protocol=Soap11())
    pool = ThreadPool(minthreads=2, maxthreads=16, name="bare-soap")
    reactor.callWhenRunning(pool.start)
    reactor.addSystemEventTrigger("before", "shutdown", pool.stop)
    root = resource.Resource()
    root.putChild(b"soap", WSGIResource(reactor, pool, WsgiApplication(app)))
    _serve(reactor, server.Site(root))


def ingest() -> None:
    from twisted.internet import reactor
    from twisted.web import resource, server

    class Events(resource.Resource):
        isLeaf = True

        def render_POST(self, request):
            message = json.loads(request.content.read())
            request.setResponseCode(202)
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({"id": 0, "queued": len(message)}).encode()

    root = resource.Resource()
    root.putChild(b"events", Events())
    _serve(reactor, server.Site(root))


def _serve(reactor, site) -> None:
    port = reactor.listenTCP(0, site, interface="127.0.0.1", backlog=1024)
    print(port.getHost().port, flush=True)
    reactor.run()


SOAP_NOOP = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
             'xmlns:b="urn:bench:bare"><soap:Body><b:Noop><b:username>alice</b:username>'
             '<b:password>{password}</b:password></b:Noop></soap:Body></soap:Envelope>')


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "agent":
        agent(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif kind == "soap":
        soap()
    else:
        ingest()
