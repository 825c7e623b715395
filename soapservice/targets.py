"""Which webhook targets may be contacted (SSRF guard). Pure checks plus one resolver.

A URL is refused when its host is, or resolves to, an address in :data:`DENIED`
(loopback, private, link-local, unique-local, multicast, documentation, cloud metadata,
...). IPv4 written in odd forms (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) is read the
way C's ``inet_aton`` and so every HTTP client reads it. IPv4-mapped, IPv4-compatible,
6to4 and NAT64 IPv6 addresses are judged by the IPv4 inside them as well.

Two moments use it: :meth:`TargetPolicy.check_url` when a webhook is created, and
:meth:`TargetPolicy.resolve_checked` when a delivery connects: that one resolves the name
once, checks every address and returns the checked addresses, so the sender connects to
an address that was checked (no second lookup a rebinding name could answer differently).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

DENIED = tuple(ipaddress.ip_network(n) for n in (
    # IPv4: "this network", private, shared (CGNAT), loopback, link-local (cloud
    # metadata 169.254.169.254), IETF, documentation, 6to4 relay, benchmarking,
    # multicast, reserved, broadcast.
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "255.255.255.255/32",
    # IPv6: unspecified, loopback and the deprecated IPv4-compatible block (::/96 holds
    # both), IPv4-mapped, IPv4-translated, NAT64 (well-known and local-use), discard,
    # IETF (Teredo, ORCHID, ...), documentation, site-local, unique-local, link-local,
    # multicast.
    "::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48",
    "100::/64", "2001::/23", "2001:db8::/32", "fec0::/10", "fc00::/7", "fe80::/10",
    "ff00::/8",
))

MAX_URL_LENGTH = 2048

Resolver = Callable[[str, int], Iterable[str]]


class TargetRefused(ValueError):
    """The URL may not be used as a webhook target; the message says why."""


class Unresolvable(TargetRefused):
    """The host name does not resolve (now): nothing to check, nothing to connect to."""


class TargetPolicy:
    """The SSRF policy: the deny list, minus what the operator opened.

    ``allow_private`` (``SOAPSERVICE_ALLOW_PRIVATE_TARGETS=1``) lifts the guard entirely;
    ``allowed_cidrs`` (``SOAPSERVICE_ALLOWED_TARGET_CIDRS``) opens single ranges and
    leaves the rest of the deny list in force. ``resolver(host, port)`` returns address
    strings (default: the system resolver; tests inject their own).
    """

    def __init__(self, allow_private: bool = False, allowed_cidrs: Iterable[str] = (),
                 resolver: Resolver | None = None):
        self.allow_private = allow_private
        self.allowed = tuple(ipaddress.ip_network(c, strict=False) for c in allowed_cidrs)
        self.resolver = resolver or resolve_host

    def address_allowed(self, address: str) -> bool:
        if self.allow_private:
            return True
        try:
            ip = ipaddress.ip_address(str(address).split("%", 1)[0])
        except ValueError:
            return False
        embedded = _embedded_ipv4(ip)
        candidates = [c for c in (ip, embedded) if c is not None]
        if any(c in net for c in candidates for net in self.allowed):
            return True
        return not any(c in net for c in candidates for net in DENIED)

    def resolve_checked(self, host: str, port: int, resolve: Resolver | None = None,
                        ) -> list[str]:
        """Resolve ``host`` once and return its addresses, all of them checked.

        Raises :class:`TargetRefused` when the name does not resolve, resolves to
        nothing, or any of its addresses is forbidden (one bad address refuses the
        name: a client may pick any of them). Connect only to the returned addresses.
        With ``allow_private`` nothing is refused, but the addresses are still returned.
        """
        literal = literal_address(host)
        if literal is not None:
            addresses = [literal]
        elif not self.allow_private and _is_localhost_name(host):
            raise TargetRefused(f"host {host!r} is a loopback name")
        else:
            try:
                addresses = list(dict.fromkeys(
                    str(a) for a in (resolve or self.resolver)(host, port)))
            except (OSError, UnicodeError, ValueError):
                raise Unresolvable(f"host {host!r} does not resolve") from None
            if not addresses:
                raise Unresolvable(f"host {host!r} does not resolve")
        for address in addresses:
            if not self.address_allowed(address):
                raise TargetRefused(f"host {host!r} is a refused address ({address})")
        return addresses

    def check_url(self, url: str, resolve: Resolver | None = None) -> str:
        """Validate ``url``; resolve its host and refuse a forbidden address.

        Returns the URL to store: as given when it can be sent as it is, else its
        :func:`normalise_url` form (IDNA host, percent-encoded path). Raises
        :class:`TargetRefused`.
        """
        if needs_normalising(url):
            url = normalise_url(url)
        host, port = parse_target(url)
        if not self.allow_private:
            self.resolve_checked(host, port, resolve)
        return url


def parse_target(url: str) -> tuple[str, int]:
    """Syntax checks: http(s), a host, a sane length. Returns (ASCII host, port)."""
    if not isinstance(url, str) or not url:
        raise TargetRefused("URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise TargetRefused("URL contains spaces or control characters")
    if "\\" in url:
        # Not valid in a URL; browsers read it as "/", Python as part of the user name:
        # two readings of one URL are how guards get bypassed.
        raise TargetRefused("URL contains a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"URL is malformed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused("URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("URL must not contain credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise TargetRefused("URL has no host")
    if port == 0:
        raise TargetRefused("URL has port 0")
    if ":" not in host:  # a name (or IPv4): the ASCII form every resolver sees
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise TargetRefused(f"URL has a malformed host ({host!r})") from None
    return host, port or (443 if scheme == "https" else 80)


# What may stay as it is in a path, query or fragment (RFC 3986 pchar and "/?"; "%"
# so that existing escapes are kept); everything else is percent-encoded as UTF-8,
# as WHATWG's URL parser does.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


def needs_normalising(url: str) -> bool:
    """True when ``url`` cannot go on the wire as written (non-ASCII, or characters
    RFC 3986 never allows unescaped)."""
    return isinstance(url, str) and (not url.isascii() or any(c in url for c in _UNSAFE))


_UNSAFE = '"<>^`{|}'


def normalise_url(url: str) -> str:
    """The form of ``url`` that can be sent: the host in IDNA (``bücher.test`` ->
    ``xn--bcher-kva.test``), lower-case scheme and host, non-ASCII and other unsafe
    characters of path and query percent-encoded as UTF-8, no fragment (it is never
    sent). Raises :class:`TargetRefused` when it cannot be written that way."""
    from urllib.parse import quote, urlunsplit
    host, port = parse_target(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    shown = f"[{host}]" if ":" in host else host
    if parts.port is not None and port != (443 if scheme == "https" else 80):
        shown = f"{shown}:{port}"
    try:
        path = quote(parts.path, safe=_PATH_SAFE) or "/"
        query = quote(parts.query, safe=_QUERY_SAFE)
    except UnicodeError:
        raise TargetRefused("URL path cannot be written as UTF-8") from None
    normal = urlunsplit((scheme, shown, path, query, ""))
    if len(normal) > MAX_URL_LENGTH:
        raise TargetRefused(f"URL is longer than {MAX_URL_LENGTH} characters once encoded")
    return normal


def literal_address(host: str) -> str | None:
    """The IP address a host written as a number stands for, else None."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host and all(part and part.isascii() and (part.isdigit() or part.lower().startswith(
            "0x")) for part in host.split(".")):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    return None


def resolve_host(host: str, port: int) -> list[str]:
    """The system resolver: every address of ``host`` (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _is_localhost_name(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address
                   ) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4)."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    value = int(ip)
    if value >> 32 == 0 or ip in ipaddress.ip_network("64:ff9b::/96") or (
            value >> 32) == 0xFFFF0000:  # compatible, NAT64, translated (::ffff:0:a.b.c.d)
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None
