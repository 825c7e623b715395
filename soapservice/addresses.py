"""The service's own address as links and WSDLs name it: IPv6 in brackets, never a
wildcard (``0.0.0.0``, ``::``), and, for a wildcard host without a public URL, the
address each request came in on (its ``Host`` header)."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable

WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})

# host[:port] as a Host header may carry it: a name, an IPv4 address or [IPv6].
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?"
                   r"|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def is_wildcard(host: str) -> bool:
    return host.strip() in WILDCARDS


def bracket(host: str) -> str:
    """``host`` as the host part of a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def loopback_for(host: str) -> str:
    """Where this machine reaches a server listening on ``host``."""
    if is_wildcard(host):
        return "[::1]" if ":" in host else "127.0.0.1"
    return bracket(host)


def base_from_host(host_header: str | bytes | None, fallback: str,
                   scheme: str = "http") -> str:
    """``scheme://<Host>`` when the header is a well-formed host[:port], else
    ``fallback`` (a forged or garbled header never reaches a document)."""
    if isinstance(host_header, bytes):
        host_header = host_header.decode("latin-1")
    if host_header and len(host_header) <= 261 and _HOST.fullmatch(host_header):
        return f"{scheme}://{host_header.lower()}"
    return fallback


class PerAddress:
    """Documents built for an address, the last ``size`` kept (a client sending a new
    Host each time costs a build, never unbounded memory). Thread-safe: the builder
    may mutate shared state (Spyne's interface document), so builds run one at a time."""

    def __init__(self, build: Callable[[str], bytes], size: int = 32):
        self.build, self.size = build, size
        self._documents: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, address: str) -> bytes:
        with self._lock:
            document = self._documents.get(address)
            if document is None:
                document = self._documents[address] = self.build(address)
                while len(self._documents) > self.size:
                    self._documents.popitem(last=False)
            else:
                self._documents.move_to_end(address)
            return document
