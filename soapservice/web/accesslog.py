"""The access log without secrets: query-string values are replaced by ``***``.

``/json/<op>`` accepts its parameters, the password among them, in the query string
(like the original's JSON API); twisted.web's combined log format would write them
into every access-log line. Parameter names stay, values go (``?wsdl`` is kept). The
token of a reactivation link (``/reactivate/<token>``) is replaced the same way.
"""

from urllib.parse import parse_qsl, quote

from twisted.web.http import combinedLogFormatter

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


class _RedactedRequest:
    def __init__(self, request):
        self._request = request
        self.uri = redact_uri(request.uri)

    def __getattr__(self, name):
        return getattr(self._request, name)


def redacted_log_formatter(timestamp, request) -> str:
    return combinedLogFormatter(timestamp, _RedactedRequest(request))
