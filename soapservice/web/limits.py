"""Refuse oversized request bodies before they are read (SPEC §5).

twisted.web buffers a whole body before any resource sees it, so the limit is enforced
in the Request itself: from ``Content-Length`` as soon as the headers are in, and for
chunked bodies as soon as the received bytes pass the limit.

Compressed request bodies (``Content-Encoding: gzip`` or ``deflate``: PHP's SoapClient
sends them with ``'compression' => SOAP_COMPRESSION_GZIP | level``) are inflated here,
for every endpoint, and the same limit applies to the inflated size: inflation stops
one byte past it, so a small "zip bomb" costs nothing.

Bodies that twisted.web or the JSON API parse on the reactor thread (form bodies on every
path, JSON at ``/json/<op>``) have a smaller limit and forms a field count limit: 1 MiB
of ``&`` took 0.6 s of the reactor to split (every other client waited); 64 KiB in at
most 256 fields takes a few milliseconds. Counting separators is a ``bytes.count``.
"""

import io
import logging
import re
import traceback
import uuid
import zlib

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.web import server

from soapservice.web.clientaddr import client_address

# Paths whose bodies the service never needs; everything else gets the SOAP limit.
_TOO_LARGE = (b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\n"
              b"Connection: close\r\nContent-Length: %d\r\n\r\n%s")
_ANSWER = (b"HTTP/1.1 %s\r\nContent-Type: text/plain\r\n"
           b"Connection: close\r\nContent-Length: %d\r\n\r\n%s")
log = logging.getLogger(__name__)
_QUOTED = re.compile(r"""'[^']*'?|"[^"]*"?""")

MAX_FORM_FIELDS = 256
# The JSON API parses its JSON bodies on the reactor thread too.
_JSON_API = (b"/json/", b"/webservice/webservice/json/")
# zlib window bits: gzip framing, zlib framing (RFC 1950 "deflate"), raw deflate.
_WBITS = {b"gzip": (31,), b"x-gzip": (31,), b"deflate": (15, -15)}


class _Refused(Exception):
    def __init__(self, status: bytes, message: bytes):
        super().__init__(message)
        self.status, self.message = status, message


def inflate(body: bytes, encoding: bytes, max_bytes: int) -> bytes:
    """``body`` decoded from ``encoding``, or :class:`_Refused` (413, 400 or 415)."""
    if encoding not in _WBITS:
        raise _Refused(b"415 Unsupported Media Type",
                       b"unsupported Content-Encoding %s (gzip or deflate)\n" % encoding[:40])
    for wbits in _WBITS[encoding]:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, max_bytes + 1)
        except zlib.error:
            continue
        if len(out) > max_bytes or inflater.unconsumed_tail:
            raise _Refused(b"413 Payload Too Large", b"request body larger than %d bytes "
                           b"once decompressed\n" % max_bytes)
        if inflater.eof:
            return out
    raise _Refused(b"400 Bad Request", b"request body is not valid %s data\n" % encoding)


def form_refusal(body: bytes, ctype: bytes, path: bytes, max_form_bytes: int):
    """Why a POST body that would be parsed on the reactor thread is refused, or None."""
    form = b"form" in ctype.lower()
    if not form and not path.startswith(_JSON_API):
        return None
    if len(body) > max_form_bytes:
        return _Refused(b"413 Payload Too Large",
                        b"%s body larger than %d bytes\n"
                        % (b"form" if form else b"JSON API", max_form_bytes))
    if form:
        if b"multipart" in ctype.lower():
            boundary = ctype.partition(b"boundary=")[2].split(b";")[0].strip(b' "')
            fields = body.count(b"--" + boundary) - 1 if boundary else 0
        else:  # twisted.web splits on both
            fields = body.count(b"&") + body.count(b";") + 1
        if fields > MAX_FORM_FIELDS:
            return _Refused(b"400 Bad Request",
                            b"form with more than %d fields\n" % MAX_FORM_FIELDS)
    return None


def limited_request_factory(max_body_bytes: int, max_form_bytes: int = 64 * 1024,
                            trusted_proxies: tuple = ()):
    """``trusted_proxies``: networks (``ipaddress``) whose forwarding headers name the
    client (web/clientaddr.py); the request's client address is then that one."""
    class LimitedRequest(server.Request):
        _received = 0
        _refused = False

        def gotLength(self, length):
            if length is not None and length > max_body_bytes:
                self._refuse()
                return
            super().gotLength(length)

        def handleContentChunk(self, data):
            if self._refused:
                return
            self._received += len(data)
            if self._received > max_body_bytes:
                self._refuse()
                return
            super().handleContentChunk(data)

        def requestReceived(self, command, path, version):
            if self._refused:
                return
            self.method, self.uri, self.clientproto = command, path, version
            if trusted_proxies:
                self._forwarded_client()
            encoding = (self.requestHeaders.getRawHeaders(b"content-encoding") or [b""])[-1]
            encoding = encoding.strip().lower()
            if encoding not in (b"", b"identity"):
                self.content.seek(0)
                try:
                    body = inflate(self.content.read(), encoding, max_body_bytes)
                except _Refused as refused:
                    self._answer(refused.status, refused.message)
                    return
                self.content = io.BytesIO(body)
                self.content.seek(0, io.SEEK_END)  # twisted takes the length from tell()
                self.requestHeaders.removeHeader(b"content-encoding")
                self.requestHeaders.setRawHeaders(b"content-length", [b"%d" % len(body)])
            # twisted.web parses every POST's Content-Type with the email package to see
            # whether it is a form (a fifth of the reactor thread's time per POST /events
            # under load, py-spy): only a type that can be a form is worth that parse.
            ctype = self.requestHeaders.getRawHeaders(b"content-type")
            if not ctype or b"form" not in ctype[0].lower():
                self._parsePOSTFormSubmission = False
            if command == b"POST":
                position = self.content.tell()
                self.content.seek(0)
                refused = form_refusal(self.content.read(max_form_bytes + 1),
                                       ctype[0] if ctype else b"", path, max_form_bytes)
                self.content.seek(position)
                if refused is not None:
                    self._answer(refused.status, refused.message)
                    return
            super().requestReceived(command, path, version)

        def processingFailed(self, reason):
            """A resource raised: 500 with a reference and one log line naming the
            exception and where it was raised (twisted logs a CRITICAL traceback and
            answers "Processing Failed", for every such request). Quoted values in the
            message, which may be the client's, are left out."""
            reference = uuid.uuid4().hex[:12]
            where = ""
            frames = traceback.extract_tb(reason.getTracebackObject()) \
                if reason.getTracebackObject() is not None else []
            if frames:
                where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}"
            message = _QUOTED.sub("'***'", str(reason.value))[:200]
            log.error("internal error answering %s, reference %s: %s: %s%s",
                      self.method.decode("latin-1", "replace")[:10], reference,
                      reason.type.__name__, message, where)
            body = b"internal error (reference %s)\n" % reference.encode()
            self.setResponseCode(500)
            self.setHeader(b"content-type", b"text/plain; charset=utf-8")
            self.setHeader(b"content-length", b"%d" % len(body))
            self.write(body)
            self.finish()
            return reason

        def _forwarded_client(self):
            peer = getattr(self.client, "host", None)
            if peer is None:
                return
            host = client_address(peer, self.requestHeaders, trusted_proxies)
            if host != peer:
                kind = IPv6Address if ":" in host else IPv4Address
                self.client = kind("TCP", host, 0)

        def _answer(self, status: bytes, message: bytes):
            self._refused = True
            transport = self.channel.transport
            answer = _ANSWER % (status, len(message), message)
            transport.write(answer)
            self._log_refusal(status, len(message))
            transport.loseConnection()

        def _log_refusal(self, status: bytes, length: int):
            """The access-log line of an answer written straight to the transport."""
            channel, site = self.channel, getattr(self.channel, "site", None)
            if site is None:
                return
            # Before requestReceived these are twisted's class-level placeholders.
            for name, source in (("method", "_command"), ("uri", "_path"),
                                 ("clientproto", "_version")):
                if name not in vars(self):
                    setattr(self, name, getattr(channel, source, b"-"))
            self.code, self.sentLength = int(status[:3]), length
            try:
                site.log(self)
            except Exception:  # a log line never costs the answer
                log.debug("access log of a refused request failed", exc_info=True)

        def _refuse(self):
            self._refused = True
            # twisted.web sends "100 Continue" after gotLength: not after our 413.
            self.requestHeaders.removeHeader(b"expect")
            message = b"request body larger than %d bytes\n" % max_body_bytes
            transport = self.channel.transport
            transport.write(_TOO_LARGE % (len(message), message))
            self._log_refusal(b"413", len(message))
            transport.loseConnection()

    return LimitedRequest
