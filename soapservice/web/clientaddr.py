"""The client's address behind trusted reverse proxies (``SOAPSERVICE_TRUSTED_PROXIES``).

Behind a proxy every request comes from the proxy's address: the login throttle would
count every client as one (55 bad logins refused everyone) and the logs would name the
proxy. A request whose peer is in one of the trusted networks is taken to come from the
address the proxies name: ``Forwarded`` (RFC 7239) ``for=`` if present, else
``X-Forwarded-For``, read from the right (each proxy appends the address it saw) to the
first address that is not itself a trusted proxy. Anything the client wrote further left
is ignored; from any other peer the headers are ignored entirely, since anyone can send
them.
"""

from __future__ import annotations

import ipaddress
import re

_FOR = re.compile(r'(?i)(?:^|;)\s*for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)')


def parse_networks(cidrs) -> tuple:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _ip(text: str):
    text = text.strip().strip('"').strip()
    if text.startswith("["):  # "[2001:db8::1]:4711"
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # "192.0.2.60:4711"
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return ip.ipv4_mapped if getattr(ip, "ipv4_mapped", None) else ip


def _forwarded_hops(headers) -> list[str]:
    forwarded = headers.getRawHeaders(b"forwarded")
    if forwarded:
        hops = []
        for element in b",".join(forwarded).decode("latin-1").split(","):
            match = _FOR.search(element)
            hops.append(match.group(1) if match else "")
        return hops
    xff = headers.getRawHeaders(b"x-forwarded-for")
    if xff:
        return [hop.strip() for hop in b",".join(xff).decode("latin-1").split(",")]
    return []


def client_address(peer: str, headers, trusted: tuple) -> str:
    """The address to count and log the request under."""
    if not trusted:
        return peer
    ip = _ip(peer)
    if ip is None or not any(ip in net for net in trusted):
        return peer
    client = peer
    for hop in reversed(_forwarded_hops(headers)):
        hop_ip = _ip(hop)
        if hop_ip is None:
            break  # "unknown", "_hidden", garbage: the last proxy is all we know
        client = str(hop_ip)
        if not any(hop_ip in net for net in trusted):
            break
    return client
