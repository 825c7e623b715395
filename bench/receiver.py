"""The webhook receiver of every scenario, in its own process (Twisted, one thread).

It answers ``POST`` with 200 at once and records, per request, the arrival time, the
path and the event's ``k`` (a number the load puts in each event's data), so both the
bare loop and soapservice are timed by the same clock at the same place. Paths under
``/hang/`` are held open forever (a URL that never answers); under ``/fail/`` they are
answered 500; under ``/flaky/P/`` 500 with probability P % (at random), else 200.
Failures are counted (``failed``), not recorded. Control, as JSON:
``GET /stats`` (count, failed, first and last arrival), ``GET /arrivals`` (the records),
``GET /wait?count=N`` (answers once N requests arrived: no polling), ``POST /reset``,
``POST /hold`` (webhook requests wait unanswered from now on) and ``POST /release``
(they are answered, and recorded as arriving then: a meter started in between sees
every delivery).
Prints its port on the first line of stdout.

    python -m bench.receiver
"""

from __future__ import annotations

import json
import random
import re
import sys
import time

_K = re.compile(rb'"k":(\d+)')


def main():
    from twisted.internet import reactor
    from twisted.web import resource, server

    state = {"count": 0, "failed": 0, "first": None, "last": None, "arrivals": [],
             "hanging": [], "held": None}
    flaky: dict[bytes, float] = {}
    waiting: list = []  # (count, request): GET /wait?count=N answered once N arrived

    def _rate(path: bytes) -> float:
        """/flaky/P/...: P % as a probability (cached per path)."""
        if path not in flaky:
            flaky[path] = float(path.split(b"/")[2]) / 100
        return flaky[path]

    def answer_waiting():
        for item in list(waiting):
            count, request = item
            if state["count"] >= count:
                waiting.remove(item)
                if not request._disconnected:
                    request.write(b"{}")
                    request.finish()

    def answer(request) -> bytes:
        """Answer one webhook request (500 on /fail/ and a flaky miss) and record it."""
        now = time.time()
        path = request.path
        if path.startswith(b"/fail/") or (path.startswith(b"/flaky/")
                                          and random.random() < _rate(path)):
            request.content.read()
            state["failed"] += 1
            request.setResponseCode(500)
            return b"failing on purpose"
        body = request.content.read()
        match = _K.search(body)
        state["count"] += 1
        if state["first"] is None:
            state["first"] = now
        state["last"] = now
        state["arrivals"].append((now, path.decode(), int(match.group(1)) if match
                                  else None))
        if waiting:
            answer_waiting()
        return b"ok"

    class Receiver(resource.Resource):
        isLeaf = True

        def render_POST(self, request):
            path = request.path
            if path == b"/reset":
                state.update(count=0, failed=0, first=None, last=None, arrivals=[])
                return b"{}"
            if path == b"/hold":
                state["held"] = state["held"] or []
                return b"{}"
            if path == b"/release":
                held, state["held"] = state["held"] or [], None
                for waiting_request in held:
                    if not waiting_request._disconnected:
                        waiting_request.write(answer(waiting_request))
                        waiting_request.finish()
                return b"{}"
            if path.startswith(b"/hang/"):
                state["hanging"].append(request)
                return server.NOT_DONE_YET
            if state["held"] is not None:
                state["held"].append(request)
                return server.NOT_DONE_YET
            return answer(request)

        def render_GET(self, request):
            request.setHeader(b"content-type", b"application/json")
            if request.path == b"/wait":
                waiting.append((int(request.args[b"count"][0]), request))
                answer_waiting()
                return server.NOT_DONE_YET
            if request.path == b"/arrivals":
                return json.dumps(state["arrivals"]).encode()
            return json.dumps({k: state[k] for k in ("count", "failed", "first", "last")}
                              ).encode()

    site = server.Site(Receiver())
    site.log = lambda request: None  # no access log: it would cost as much as the answer
    port = reactor.listenTCP(0, site, interface="127.0.0.1", backlog=1024)
    print(port.getHost().port, flush=True)
    reactor.run()


if __name__ == "__main__":
    sys.exit(main())
