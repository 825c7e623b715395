"""One way for a resource to answer from a Deferred (klein does the same once).

The answer is written when the Deferred fires, unless the client has gone meanwhile
(``notifyFinish()`` says so; writing then would raise). A failure the resource expects
is rendered by its ``expected`` handler; any other failure, and an exception while
rendering, is logged once with a reference that the answer carries too, so no failure
is printed to stderr or swallowed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import server

from soapservice.errors import log_internal_error

log = logging.getLogger(__name__)


def plain_internal(request, reference: str) -> bytes:
    request.setResponseCode(500)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return f"internal error (reference {reference})\n".encode()


def respond(request, d: defer.Deferred, render: Callable[[object], bytes], *,
            what: str, expected: Callable[[Failure], bytes | None] | None = None,
            internal: Callable[[object, str], bytes] = plain_internal) -> object:
    """Answer ``request`` with ``render(result)`` once ``d`` fires; returns NOT_DONE_YET.

    ``expected(failure)``: the answer for a failure that is part of the contract (or
    None: not one of those); ``internal(request, reference)``: the answer for the rest,
    after logging it as ``<what>: internal error, reference <ref>``."""
    gone: list[bool] = []
    request.notifyFinish().addCallbacks(lambda _: None, lambda _: gone.append(True))

    def failed(failure: Failure) -> bytes:
        if expected is not None:
            body = expected(failure)
            if body is not None:
                return body
        reference = log_internal_error(log, what, failure)
        return internal(request, reference)

    def write(body: bytes) -> None:
        if gone:
            return
        request.write(body)
        request.finish()

    d.addCallback(render).addErrback(failed).addCallback(write)
    d.addErrback(lambda failure: log_internal_error(log, f"{what} (answering)", failure))
    return server.NOT_DONE_YET
