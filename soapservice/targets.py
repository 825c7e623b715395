"""Which webhook targets may be contacted (SSRF guard). Pure checks plus one resolver.

A URL is refused when its host is, or resolves to, an address in :data:`DENIED`
(loopback, private, link-local, unique-local, multicast, documentation, cloud metadata,
...). IPv4 written in odd forms (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) is read the
way C's ``inet_aton`` and so every HTTP client reads it. IPv4-mapped and NAT64 IPv6
addresses are judged by the IPv4 inside them.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

DENIED = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "fc00::/7", "fe80::/10",
    "ff00::/8", "2001:db8::/32", "100::/64", "2001::/23",
))

MAX_URL_LENGTH = 2048


class TargetRefused(ValueError):
    """The URL may not be used as a webhook target; the message says why."""


class TargetPolicy:
    def __init__(self, allow_private: bool = False, allowed_cidrs=()):
        self.allow_private = allow_private
        self.allowed = tuple(ipaddress.ip_network(c, strict=False) for c in allowed_cidrs)

    def address_allowed(self, address: str) -> bool:
        if self.allow_private:
            return True
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if any(ip in net for net in self.allowed):
            return True
        embedded = _embedded_ipv4(ip)
        if embedded is not None and any(embedded in net for net in self.allowed):
            return True
        for candidate in (ip, embedded):
            if candidate is not None and any(
                    candidate.version == net.version and candidate in net for net in DENIED):
                return False
        return True

    def check_url(self, url: str, resolve=None) -> str:
        """Validate ``url``; resolve its host and refuse a forbidden address.

        Returns the URL. Raises :class:`TargetRefused`. ``resolve(host, port)`` returns
        a list of address strings (default: the system resolver).
        """
        host, port = parse_target(url)
        if self.allow_private:
            return url
        literal = literal_address(host)
        if literal is not None:
            addresses = [literal]
        elif host == "localhost" or host.endswith(".localhost"):
            raise TargetRefused(f"host {host!r} is a loopback name")
        else:
            try:
                addresses = (resolve or resolve_host)(host, port)
            except OSError:
                raise TargetRefused(f"host {host!r} does not resolve") from None
        for address in addresses:
            if not self.address_allowed(address):
                raise TargetRefused(f"host {host!r} is a refused address ({address})")
        return url


def parse_target(url: str) -> tuple[str, int]:
    """Syntax checks: http(s), a host, a sane length. Returns (host, port)."""
    if not isinstance(url, str) or not url:
        raise TargetRefused("URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise TargetRefused("URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"URL is malformed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused("URL must start with http:// or https://")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise TargetRefused("URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("URL must not contain credentials")
    return host, port or (443 if scheme == "https" else 80)


def literal_address(host: str) -> str | None:
    """The IP address a host written as a number stands for, else None."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if all(part and (part.isdigit() or part.lower().startswith("0x")) for part in
           host.split(".")):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None


def resolve_host(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _embedded_ipv4(ip):
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None
