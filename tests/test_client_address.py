"""The client address behind trusted proxies (SOAPSERVICE_TRUSTED_PROXIES): forwarding
headers are read only from those peers, from the right, up to the first address that is
not a trusted proxy; a client cannot pick its own address."""

import pytest
from twisted.web.http_headers import Headers

from soapservice.web.clientaddr import client_address, parse_networks

TRUSTED = parse_networks(["10.0.0.0/8", "2001:db8:ffff::/48"])


def addr(peer, **headers):
    return client_address(peer, Headers({k.replace("_", "-").encode(): [v.encode()]
                                         for k, v in headers.items()}), TRUSTED)


@pytest.mark.parametrize("peer, headers, expected", [
    ("10.0.0.5", {"x_forwarded_for": "203.0.113.7"}, "203.0.113.7"),
    # The client wrote a left part of its own: the proxy's appended hop wins.
    ("10.0.0.5", {"x_forwarded_for": "127.0.0.1, 198.51.100.1, 203.0.113.7"}, "203.0.113.7"),
    # Two trusted proxies in a row: the first untrusted hop from the right.
    ("10.0.0.5", {"x_forwarded_for": "198.51.100.1, 203.0.113.7, 10.1.1.1"}, "203.0.113.7"),
    ("10.0.0.5", {"forwarded": 'for=192.0.2.60;proto=http;by=10.0.0.5'}, "192.0.2.60"),
    ("10.0.0.5", {"forwarded": 'for="[2001:db8::1]:4711", for=10.2.2.2'}, "2001:db8::1"),
    ("10.0.0.5", {"forwarded": "for=192.0.2.60:8080"}, "192.0.2.60"),
    # Forwarded takes precedence over X-Forwarded-For.
    ("10.0.0.5", {"forwarded": "for=192.0.2.60", "x_forwarded_for": "203.0.113.7"},
     "192.0.2.60"),
    # Unknown or obfuscated: the last proxy is all that is known.
    ("10.0.0.5", {"forwarded": "for=unknown"}, "10.0.0.5"),
    ("10.0.0.5", {"x_forwarded_for": "garbage, 10.9.9.9"}, "10.9.9.9"),
    ("10.0.0.5", {}, "10.0.0.5"),
    ("2001:db8:ffff::1", {"x_forwarded_for": "::ffff:203.0.113.8"}, "203.0.113.8"),
    # Not a trusted peer: its headers count for nothing.
    ("203.0.113.66", {"x_forwarded_for": "198.51.100.1"}, "203.0.113.66"),
    ("203.0.113.66", {"forwarded": "for=198.51.100.1"}, "203.0.113.66"),
])
def test_client_address(peer, headers, expected):
    assert addr(peer, **headers) == expected


def test_without_trusted_proxies_headers_are_ignored():
    headers = Headers({b"x-forwarded-for": [b"198.51.100.1"]})
    assert client_address("10.0.0.5", headers, ()) == "10.0.0.5"
