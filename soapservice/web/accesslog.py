"""The access log without secrets: query-string values are replaced by ``***``.

``/json/<op>`` accepts its parameters, the password among them, in the query string
(like the original's JSON API); twisted.web's combined log format would write them
into every access-log line. Parameter names stay, values go (``?wsdl`` is kept). The
token of a reactivation link (``/reactivate/<token>``) is replaced the same way.
"""

import logging
import re
import sys
from urllib.parse import parse_qsl, quote

from twisted.web.http import _escape

from soapservice.config import ConfigError

# Paths whose last part is a credential (the signed reactivation token).
_TOKEN_PATHS = (b"/reactivate/",)


def redact_uri(uri: bytes) -> bytes:
    path, sep, query = uri.partition(b"?")
    for prefix in _TOKEN_PATHS:
        if path.startswith(prefix) and len(path) > len(prefix):
            path = prefix + b"***"
            uri = path + sep + query
    if not sep or query.lower() == b"wsdl":
        return uri
    names = [quote(name, safe="")[:40] for name, _ in parse_qsl(
        query.decode("latin-1"), keep_blank_values=True)]
    return path + b"?" + "&".join(f"{n}=***" for n in names).encode() if names else path + b"?***"


# Bytes that may stand in a log line as they are: printable ASCII but the quote and the
# backslash (twisted's escaping turns anything else into a backslash escape).
_PLAIN = re.compile(rb"[ !#-\[\]-~]*")


def _field(value: bytes | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        value = value.encode("utf-8", "backslashreplace")
    if _PLAIN.fullmatch(value):
        return value.decode("ascii")
    return _escape(value)


def access_line(timestamp: str, request) -> str:
    """The Combined Log Format line twisted.web writes (same fields, same escaping),
    query values and reactivation tokens redacted, built in a few string operations:
    twisted's formatter took ~100 µs per request under load (py-spy)."""
    uri = request.uri
    if b"?" in uri or uri.startswith(_TOKEN_PATHS):
        uri = redact_uri(uri)
    headers = request.requestHeaders
    referrer = headers.getRawHeaders(b"referer")
    agent = headers.getRawHeaders(b"user-agent")
    host = getattr(request.getClientAddress(), "host", None)
    return (f'"{_field(host)}" - - {timestamp} '
            f'"{_field(request.method)} {_field(uri)} {_field(request.clientproto)}" '
            f'{request.code} {request.sentLength or "-"} '
            f'"{_field(referrer[-1] if referrer else None)}" '
            f'"{_field(agent[-1] if agent else None)}"\n')


class AccessLog:
    """The access log, written once per reactor turn.

    A line per request through ``logging`` cost ~120 µs of the reactor thread under
    load (a record, a formatter, a write and a flush each: py-spy), as much again as
    twisted's formatter; here the lines of one turn of the reactor (many, under load:
    a group commit answers a batch at once) go out in one write, before the next turn
    sends their answers. ``target``: ``-`` for standard output, a path to append to,
    or ``off``.
    """

    def __init__(self, target: str, reactor):
        self.reactor = reactor
        self._lines: list[str] = []
        self._stream = None
        self.enabled = target.strip().lower() not in ("off", "none", "0", "")
        if self.enabled and target.strip() != "-":
            try:
                self._stream = open(target, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
            except OSError as exc:
                raise ConfigError(f"SOAPSERVICE_ACCESS_LOG={target!r}: {exc.strerror}"
                                  ) from None

    def log(self, timestamp: str, request) -> None:
        if not self.enabled:
            return
        if not self._lines:
            self.reactor.callLater(0, self.flush)
        self._lines.append(access_line(timestamp, request))

    def flush(self) -> None:
        if not self._lines:
            return
        text, self._lines = "".join(self._lines), []
        stream = self._stream or sys.stdout
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError) as exc:  # a full disk, a closed stdout: not fatal
            logging.getLogger(__name__).warning("access log not written: %s", exc)

    def close(self) -> None:
        self.flush()
        self.enabled = False
        if self._stream is not None:
            self._stream.close()
            self._stream = None
