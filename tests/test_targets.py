"""The SSRF policy (SPEC §5) as a table: every denied range, the spellings that bypass
naive checks, names that resolve to a forbidden address, and the delivery-time
``resolve_checked`` that returns the addresses to connect to."""

import ipaddress

import pytest

from soapservice.config import ConfigError, load_settings
from soapservice.targets import DENIED, TargetPolicy, TargetRefused, parse_target

GUARD = TargetPolicy()


def no_dns(host, port):
    raise AssertionError(f"unexpected DNS lookup of {host!r}")


def fixed(answers):
    """A resolver answering from a table; records every lookup."""
    calls = []

    def resolve(host, port):
        calls.append((host, port))
        if host not in answers:
            raise OSError("NXDOMAIN")
        return answers[host]
    resolve.calls = calls
    return resolve


# One address inside each range the issue lists (first, last and a middle one where the
# range is big), plus the ranges the guard adds on top.
DENIED_ADDRESSES = [
    "0.0.0.0", "0.255.255.255", "10.0.0.1", "10.255.255.255", "100.64.0.1",
    "100.127.255.254", "127.0.0.1", "127.255.255.254", "169.254.169.254", "169.254.0.1",
    "172.16.0.1", "172.31.255.255", "192.0.0.8", "192.0.2.1", "192.168.0.1",
    "192.168.255.255", "198.18.0.1", "198.19.255.255", "198.51.100.7", "203.0.113.9",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "254.255.255.255", "255.255.255.255",
    "::", "::1", "::ffff:127.0.0.1", "::ffff:8.8.8.8", "::ffff:169.254.169.254",
    "64:ff9b::7f00:1", "64:ff9b::808:808", "fc00::1", "fd12:3456::1", "fe80::1",
    "febf::1", "ff02::1", "ff05::2", "2001:db8::1", "2001:db8:ffff::1",
    # beyond the list: IPv4-compatible, IPv4-translated, local-use NAT64,
    # discard, Teredo, site-local, 6to4 relay anycast
    "::127.0.0.1", "::a9fe:a9fe", "::ffff:0:7f00:1", "64:ff9b:1::1", "100::1",
    "2001::1", "fec0::1", "192.88.99.1",
]

ALLOWED_ADDRESSES = [
    "8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.0",
    "172.15.255.255", "172.32.0.0", "192.0.1.1", "192.169.0.1", "198.17.255.255",
    "198.20.0.0", "223.255.255.255", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e",
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize("address", DENIED_ADDRESSES)
def test_denied_address(address):
    assert not GUARD.address_allowed(address)
    with pytest.raises(TargetRefused):
        GUARD.check_url(f"http://{_bracket(address)}/hook", no_dns)


@pytest.mark.parametrize("address", ALLOWED_ADDRESSES)
def test_public_address_allowed(address):
    assert GUARD.address_allowed(address)
    url = f"https://{_bracket(address)}:8443/hook"
    assert GUARD.check_url(url, no_dns) == url


def test_every_denied_range_has_a_row():
    covered = {net for net in DENIED for a in DENIED_ADDRESSES
               if ipaddress.ip_address(a) in net}
    assert covered == set(DENIED)


@pytest.mark.parametrize("url, address", [
    ("http://2130706433/", "127.0.0.1"),
    ("http://0x7f.1/", "127.0.0.1"),
    ("http://0x7F000001/", "127.0.0.1"),
    ("http://0177.0.0.1/", "127.0.0.1"),
    ("http://0177.1/", "127.0.0.1"),
    ("http://127.1/", "127.0.0.1"),
    ("http://127.0.0.1./", "127.0.0.1"),
    ("http://0/", "0.0.0.0"),
    ("http://0.0.0.0:8080/", "0.0.0.0"),
    ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1"),
    ("http://[::ffff:7f00:1]/", "::ffff:7f00:1"),
    ("http://[::1]/", "::1"),
    ("http://[::]/", "::"),
    ("http://[0:0:0:0:0:0:0:1]:80/", "::1"),
    ("http://[fe80::1%25eth0]/", "fe80::1%25eth0"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
    ("http://2852039166/", "169.254.169.254"),
    ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe"),
    ("http://\uff11\uff12\uff17.0.0.1/", "127.0.0.1"),  # fullwidth digits, NFKC to 127
])
def test_bypass_spellings_refused_without_dns(url, address):
    with pytest.raises(TargetRefused, match="refused address"):
        GUARD.check_url(url, no_dns)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "localhost.", "a.localhost",
                                  "x.y.LocalHost"])
def test_localhost_names_refused_without_dns(host):
    with pytest.raises(TargetRefused, match="loopback"):
        GUARD.check_url(f"http://{host}:8080/", no_dns)


@pytest.mark.parametrize("answer", [
    ["127.0.0.1"], ["10.1.2.3"], ["169.254.169.254"], ["::1"], ["::ffff:10.0.0.1"],
    ["fd00::5"], ["0.0.0.0"],
])
def test_name_resolving_to_forbidden_address(answer):
    resolve = fixed({"evil.example": answer})
    with pytest.raises(TargetRefused, match="refused address"):
        GUARD.check_url("http://evil.example/hook", resolve)
    assert resolve.calls == [("evil.example", 80)]


@pytest.mark.parametrize("answer", [
    ["93.184.216.34", "127.0.0.1"],
    ["127.0.0.1", "93.184.216.34"],
    ["2606:2800:220:1::1", "93.184.216.34", "::1"],
])
def test_one_forbidden_address_among_several_refuses_the_name(answer):
    with pytest.raises(TargetRefused):
        GUARD.check_url("https://multi.example/", fixed({"multi.example": answer}))


def test_public_name_allowed_and_resolved_once():
    resolve = fixed({"hooks.example.com": ["93.184.216.34", "2606:2800:220:1::1"]})
    assert GUARD.check_url("https://Hooks.Example.COM./x", resolve) == (
        "https://Hooks.Example.COM./x")
    assert resolve.calls == [("hooks.example.com", 443)]


@pytest.mark.parametrize("url", [
    "http://nxdomain.example/",
    "http://" + "a" * 64 + ".example/",  # label too long: the IDNA codec refuses it
    "http://a..b.example/",
])
def test_unresolvable_or_malformed_name_refused(url):
    with pytest.raises(TargetRefused):
        GUARD.check_url(url, fixed({}))


def test_empty_answer_refused():
    with pytest.raises(TargetRefused, match="does not resolve"):
        GUARD.check_url("http://empty.example/", fixed({"empty.example": []}))


@pytest.mark.parametrize("url, why", [
    ("", "empty"), ("ftp://93.184.216.34/", "http"), ("javascript:alert(1)", "http"),
    ("http:///x", "no host"), ("http://user:pw@93.184.216.34/", "credentials"),
    ("http://93.184.216.34:99999/", "malformed"), ("http://93.184.216.34:0/", "port 0"),
    ("http://93.184.216.34/a b", "spaces"), ("http://93.184.216.34/\x00", "control"),
    ("http://evil.example\\@127.0.0.1/", "backslash"),
    ("http://[::1/", "malformed"), ("http://x/" + "a" * 2100, "longer"),
])
def test_malformed_urls_refused(url, why):
    with pytest.raises(TargetRefused, match=why):
        GUARD.check_url(url, no_dns)


def test_allow_private_lifts_the_guard_without_dns():
    policy = TargetPolicy(allow_private=True)
    for url in ("http://127.0.0.1:9/", "http://localhost/", "http://[::1]/",
                "http://169.254.169.254/"):
        assert policy.check_url(url, no_dns) == url
    with pytest.raises(TargetRefused):
        policy.check_url("ftp://127.0.0.1/", no_dns)  # syntax still checked


def test_allowed_cidr_opens_only_that_range():
    policy = TargetPolicy(allowed_cidrs=["127.0.0.1/32", "10.5.0.0/16"])
    assert policy.check_url("http://127.0.0.1:8080/", no_dns)
    assert policy.check_url("http://[::ffff:127.0.0.1]/", no_dns)
    assert policy.check_url("http://10.5.9.9/", no_dns)
    for url in ("http://127.0.0.2/", "http://10.6.0.1/", "http://[::1]/",
                "http://169.254.169.254/"):
        with pytest.raises(TargetRefused):
            policy.check_url(url, no_dns)
    # A name with an allowed and a forbidden address stays refused.
    with pytest.raises(TargetRefused):
        policy.check_url("http://mixed.example/", fixed({"mixed.example": [
            "127.0.0.1", "192.168.1.1"]}))
    # localhost is a name: only its resolved addresses could be opened, not the name.
    with pytest.raises(TargetRefused):
        policy.check_url("http://localhost/", no_dns)


def test_resolve_checked_returns_the_checked_addresses():
    resolve = fixed({"hooks.example.com": ["93.184.216.34", "2606:2800:220:1::1",
                                           "93.184.216.34"]})
    policy = TargetPolicy(resolver=resolve)
    assert policy.resolve_checked("hooks.example.com", 443) == [
        "93.184.216.34", "2606:2800:220:1::1"]
    assert resolve.calls == [("hooks.example.com", 443)]
    assert policy.resolve_checked("93.184.216.34", 80) == ["93.184.216.34"]
    assert policy.resolve_checked("1558071330", 80, no_dns) == ["92.222.72.34"]


def test_resolve_checked_refuses_a_rebinding_answer():
    # A name that answers public first and loopback next: each call resolves once and
    # checks what it got, so the second (delivery-time) check refuses.
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    policy = TargetPolicy(resolver=lambda host, port: next(answers))
    assert policy.resolve_checked("rebind.example", 80) == ["93.184.216.34"]
    with pytest.raises(TargetRefused, match="127.0.0.1"):
        policy.resolve_checked("rebind.example", 80)


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "::ffff:127.0.0.1", "::1",
                                  "169.254.169.254", "localhost", "a.localhost"])
def test_resolve_checked_refuses_literals_and_localhost(host):
    with pytest.raises(TargetRefused):
        TargetPolicy(resolver=no_dns).resolve_checked(host, 80)


def test_resolve_checked_with_allow_private_still_returns_addresses():
    policy = TargetPolicy(allow_private=True,
                          resolver=fixed({"localhost": ["127.0.0.1", "::1"]}))
    assert policy.resolve_checked("localhost", 80) == ["127.0.0.1", "::1"]
    assert policy.resolve_checked("0x7f.1", 80) == ["127.0.0.1"]


def test_resolve_checked_with_system_resolver_on_localhost_name():
    # The real resolver, for a name every machine has: refused (name and address).
    with pytest.raises(TargetRefused):
        TargetPolicy().resolve_checked("localhost", 80)
    assert TargetPolicy(allowed_cidrs=["127.0.0.0/8", "::1/128"]).resolve_checked(
        "127.0.0.1", 80) == ["127.0.0.1"]


def test_parse_target_normalises_host():
    assert parse_target("HTTPS://Bücher.Example./x") == ("xn--bcher-kva.example", 443)
    assert parse_target("http://[::1]:8080/") == ("::1", 8080)


def test_allowed_cidrs_setting_is_validated():
    settings = load_settings({"SOAPSERVICE_ALLOWED_TARGET_CIDRS": " 127.0.0.1/32, ::1 "})
    assert settings.allowed_target_cidrs == ("127.0.0.1/32", "::1")
    with pytest.raises(ConfigError, match="SOAPSERVICE_ALLOWED_TARGET_CIDRS"):
        load_settings({"SOAPSERVICE_ALLOWED_TARGET_CIDRS": "127.0.0.1/33"})


def _bracket(address):
    return f"[{address}]" if ":" in address else address
