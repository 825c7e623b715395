"""The access log without secrets: only the service's own names appear as sent.

``/json/<op>`` takes its parameters, the password among them, in the query string (like
the original's JSON API), reactivation links carry a signed token in their path, and a
client may put anything anywhere: a password typed into a path, a query name without
``=``, a link in the ``Referer``. twisted.web's combined log format would write all of it.
Here a path segment stays only if it is a name of this service (an endpoint, an
operation, a shipped static file), a query part only if it is a parameter name (its
value always goes): everything else is ``***``. The ``Referer`` is redacted the same
way (scheme and host stay). ``?wsdl`` is kept.
"""

import logging
import os
import re
import sys
from urllib.parse import unquote_to_bytes

from twisted.web.http import _escape

from soapservice import operations
from soapservice.config import ConfigError

HIDDEN = b"***"

# Names of the web tree's resources (web/root.py and the parts it mounts). A route
# added elsewhere shows as *** until its name is added here: the safe default.
PATH_NAMES = {"soap", "soap12", "json", "webservice", "soap3", "demo", "static", "healthz",
              "metrics", "events", "reactivate", "portal", "favicon.ico", "robots.txt"}
PATH_NAMES |= {op.name for op in operations.OPERATIONS}
_STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
PATH_NAMES |= set(os.listdir(_STATIC)) if os.path.isdir(_STATIC) else set()
QUERY_NAMES = {"wsdl"} | {p.name for op in operations.OPERATIONS for p in op.params}

_PATH_WORDS = {name.lower().encode() for name in PATH_NAMES}
_QUERY_WORDS = {name.lower().encode() for name in QUERY_NAMES}
_KEPT: dict[bytes, bytes] = {}  # paths seen, redacted: most requests name a few


def _word(raw: bytes, words) -> bool:
    return unquote_to_bytes(raw).lower() in words


def redact_uri(uri: bytes) -> bytes:
    kept = _KEPT.get(uri)
    if kept is not None:
        return kept
    path, sep, query = uri.partition(b"?")
    segments = [seg if not seg or _word(seg, _PATH_WORDS) else HIDDEN
                for seg in path.split(b"/")]
    out = b"/".join(segments)
    if sep:
        parts = []
        for part in query.split(b"&"):
            name, eq, _value = part.partition(b"=")
            if not _word(name, _QUERY_WORDS):
                parts.append(HIDDEN)
            elif eq:
                parts.append(name + b"=" + HIDDEN)
            else:
                parts.append(name)
        out += b"?" + b"&".join(parts)
    if not sep and len(uri) <= 256 and len(_KEPT) < 4096:  # no credentials kept here
        _KEPT[uri] = out
    return out


_URL = re.compile(rb"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)([^#]*)")


def redact_referrer(value: bytes) -> bytes:
    """A URL with its path and query redacted as :func:`redact_uri` does."""
    match = _URL.match(value)
    if match is None:
        return HIDDEN
    return match.group(1) + (redact_uri(match.group(2)) if match.group(2) else b"")


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
    the URI and the Referer redacted, built in a few string operations:
    twisted's formatter took ~100 µs per request under load (py-spy)."""
    uri = redact_uri(request.uri)
    headers = request.requestHeaders
    referrer = headers.getRawHeaders(b"referer")
    if referrer:
        referrer = [redact_referrer(referrer[-1])]
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
