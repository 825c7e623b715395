"""Signed, expiring portal links (soapservice.portal_links) on a fixed clock: what they
name, expiry to the second, and that no change to the token, another key or a
reactivation token is taken for a valid link."""

from __future__ import annotations

import pytest

from soapservice import notify, portal_links

KEY = bytes(range(32))
NOW = 2_000_000_000.0


def test_names_account_and_webhook_until_it_expires():
    link = portal_links.make_link(KEY, "https://hooks.example/", 3, 42, NOW + 60)
    assert link.startswith("https://hooks.example/portal/link/")
    token = portal_links.token_of(link)
    assert portal_links.verify(KEY, token, NOW) == portal_links.PortalLink(3, 42, int(NOW + 60))
    assert portal_links.verify(KEY, token, NOW + 60).webhook_id == 42
    with pytest.raises(portal_links.LinkError) as late:
        portal_links.verify(KEY, token, NOW + 61)
    assert late.value.expired


@pytest.mark.parametrize("change", ["payload", "mac", "dots", "empty", "long", "unicode"])
def test_tampered_tokens_are_refused(change):
    token = portal_links.make_token(KEY, 3, 42, NOW + 60)
    payload, mac = token.split(".")
    other = portal_links.make_token(KEY, 4, 42, NOW + 60).split(".")[0]
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    bad = {"payload": f"{other}.{mac}", "mac": f"{payload}.{flipped}",
           "dots": f"{payload}.{mac}.x", "empty": "", "long": "a" * 600 + "." + mac,
           "unicode": f"{payload}é.{mac}"}[change]
    with pytest.raises(portal_links.LinkError) as refused:
        portal_links.verify(KEY, bad, NOW)
    assert not refused.value.expired


def test_other_key_and_reactivation_tokens_are_refused():
    token = portal_links.make_token(KEY, 3, 42, NOW + 60)
    with pytest.raises(portal_links.LinkError):
        portal_links.verify(bytes(32), token, NOW)
    reactivation = notify.make_token(KEY, 42, 1, NOW + 60)
    with pytest.raises(portal_links.LinkError):
        portal_links.verify(KEY, reactivation, NOW)
    with pytest.raises(notify.TokenError):
        notify.read_token(KEY, token, NOW)


def test_a_validly_signed_payload_of_the_wrong_shape_is_refused():
    payload = portal_links._b64(b'["3", 42, 2000000060]')
    token = f"{payload}.{portal_links._mac(KEY, payload)}"
    with pytest.raises(portal_links.LinkError):
        portal_links.verify(KEY, token, NOW)
