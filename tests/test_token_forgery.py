"""The reactivation token (SPEC §4) cannot be forged: tampered, re-signed with another
key, truncated, re-encoded or expired tokens are refused. (Replay after reactivation is
checked where the link is served: the token names one deactivation of the webhook.)"""

import base64
import hashlib
import hmac
import json

import pytest

from soapservice.notify import TokenError, make_token, read_token

KEY = b"k" * 32
NOW = 1_800_000_000.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(key, payload: str) -> str:
    return b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def test_round_trip():
    token = make_token(KEY, 42, 3, NOW + 60)
    assert read_token(KEY, token, NOW) == (42, 3)
    assert "/" not in token and "+" not in token  # safe in a URL path


@pytest.mark.parametrize("forge", [
    # another webhook, same MAC
    lambda t: b64(json.dumps([43, 3, int(NOW + 60)], separators=(",", ":")).encode())
    + "." + t.split(".")[1],
    # a later expiry, same MAC
    lambda t: b64(json.dumps([42, 3, int(NOW + 10**6)], separators=(",", ":")).encode())
    + "." + t.split(".")[1],
    # re-signed with a guessed key
    lambda t: t.split(".")[0] + "." + sign(b"guess", t.split(".")[0]),
    lambda t: t.split(".")[0] + "." + sign(b"", t.split(".")[0]),
    # MAC cut short, emptied, removed, doubled, case-flipped
    lambda t: t[:-1], lambda t: t.split(".")[0] + ".", lambda t: t.split(".")[0],
    lambda t: t + "." + t.split(".")[1], lambda t: t.swapcase(),
    # padding or standard base64 spelled differently
    lambda t: t.split(".")[0] + "==." + t.split(".")[1],
    lambda t: "", lambda t: ".", lambda t: "..", lambda t: "x" * 10_000,
    lambda t: "\u00e9." + t.split(".")[1],
])
def test_forged_tokens_refused(forge):
    token = make_token(KEY, 42, 3, NOW + 60)
    forged = forge(token)
    assert forged != token
    with pytest.raises(TokenError) as refused:
        read_token(KEY, forged, NOW)
    assert not refused.value.expired


def test_token_for_another_key_refused():
    with pytest.raises(TokenError):
        read_token(KEY, make_token(b"other-server-key" * 2, 42, 3, NOW + 60), NOW)


def test_expired_token_refused_and_says_so():
    token = make_token(KEY, 42, 3, NOW - 1)
    with pytest.raises(TokenError) as refused:
        read_token(KEY, token, NOW)
    assert refused.value.expired


@pytest.mark.parametrize("value", [
    [42, 3], {"a": 1}, "x", [None, 3, NOW + 60],
    [42, 3, "never"],
])
def test_a_signed_payload_of_the_wrong_shape_is_refused(value):
    # Only the server can sign, but a future format change must not crash old readers.
    payload = b64(json.dumps(value).encode())
    with pytest.raises(TokenError):
        read_token(KEY, payload + "." + sign(KEY, payload), NOW)
