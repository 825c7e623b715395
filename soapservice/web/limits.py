"""Refuse oversized request bodies before they are read (SPEC §5).

twisted.web buffers a whole body before any resource sees it, so the limit is enforced
in the Request itself: from ``Content-Length`` as soon as the headers are in, and for
chunked bodies as soon as the received bytes pass the limit.
"""

from twisted.web import server

# Paths whose bodies the service never needs; everything else gets the SOAP limit.
_TOO_LARGE = (b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\n"
              b"Connection: close\r\nContent-Length: %d\r\n\r\n%s")


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
            super().requestReceived(command, path, version)

        def _refuse(self):
            self._refused = True
            # twisted.web sends "100 Continue" after gotLength: not after our 413.
            self.requestHeaders.removeHeader(b"expect")
            message = b"request body larger than %d bytes\n" % max_body_bytes
            transport = self.channel.transport
            transport.write(_TOO_LARGE % (len(message), message))
            transport.loseConnection()

    return LimitedRequest
