"""Refuse oversized request bodies before they are read (SPEC §5).

twisted.web buffers a whole body before any resource sees it, so the limit is enforced
in the Request itself: from ``Content-Length`` as soon as the headers are in, and for
chunked bodies as soon as the received bytes pass the limit.

Compressed request bodies (``Content-Encoding: gzip`` or ``deflate``: PHP's SoapClient
sends them with ``'compression' => SOAP_COMPRESSION_GZIP | level``) are inflated here,
for every endpoint, and the same limit applies to the inflated size: inflation stops
one byte past it, so a small "zip bomb" costs nothing.
"""

import io
import zlib

from twisted.web import server

# Paths whose bodies the service never needs; everything else gets the SOAP limit.
_TOO_LARGE = (b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\n"
              b"Connection: close\r\nContent-Length: %d\r\n\r\n%s")
_ANSWER = (b"HTTP/1.1 %s\r\nContent-Type: text/plain\r\n"
           b"Connection: close\r\nContent-Length: %d\r\n\r\n%s")
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


def limited_request_factory(max_body_bytes: int):
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
            super().requestReceived(command, path, version)

        def _answer(self, status: bytes, message: bytes):
            self._refused = True
            transport = self.channel.transport
            transport.write(_ANSWER % (status, len(message), message))
            transport.loseConnection()

        def _refuse(self):
            self._refused = True
            # twisted.web sends "100 Continue" after gotLength: not after our 413.
            self.requestHeaders.removeHeader(b"expect")
            message = b"request body larger than %d bytes\n" % max_body_bytes
            transport = self.channel.transport
            transport.write(_TOO_LARGE % (len(message), message))
            transport.loseConnection()

    return LimitedRequest
