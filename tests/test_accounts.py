"""`soapservice account ...` as an operator uses it, against the store of a running
server; credentials never in clear; the cache of good checks; throttling (error 8)."""

import itertools
import sqlite3

import pytest
import requests

from soapservice import auth
from tests.conftest import PASSWORD, Server, soapservice
from tests.support.doubles import SettableTime
from tests.support.server import server_fixture

NEW_PASSWORD = "Tr0ub4dor&3 but longer"


@server_fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("accounts"))
    server.add_account("alice")
    server.start()
    yield server
    server.stop()


def get_webhooks(srv, user, password):
    return requests.post(srv.url + "/json/GetWebHooks",
                         data={"username": user, "password": password}, timeout=30).json()


def cli(srv, *args, password=None, check=True):
    return soapservice("account", *args, env=srv.env,
                       input=None if password is None else password + "\n", check=check)


def test_add_list_passwd_remove(srv):
    added = cli(srv, "add", "carol", "--email", "carol@example.com", password=PASSWORD)
    assert added.stdout.strip() == "account carol added"
    assert PASSWORD not in added.stdout + added.stderr
    assert get_webhooks(srv, "carol", PASSWORD)["error"] == 0

    listed = cli(srv, "list").stdout.splitlines()
    assert "alice\t-" in listed and "carol\tcarol@example.com" in listed
    assert not [line for line in listed if "scrypt" in line]

    duplicate = cli(srv, "add", "carol", password="other", check=False)
    assert duplicate.returncode != 0 and "exists" in duplicate.stderr
    assert get_webhooks(srv, "carol", PASSWORD)["error"] == 0  # unchanged

    # The old password was just used (and cached): after passwd it fails at once.
    changed = cli(srv, "passwd", "carol", password=NEW_PASSWORD)
    assert changed.stdout.strip() == "password of carol changed"
    assert get_webhooks(srv, "carol", PASSWORD)["error"] == 1
    assert get_webhooks(srv, "carol", NEW_PASSWORD)["error"] == 0

    created = requests.post(srv.url + "/json/CreateWebHook", timeout=30, data={
        "username": "carol", "password": NEW_PASSWORD, "app": "crm",
        "event": "optin_finalized", "url": "http://127.0.0.1:9/h"}).json()
    assert created["error"] == 0
    removed = cli(srv, "remove", "carol", "--yes")
    assert removed.stdout.strip() == "account carol removed"
    assert get_webhooks(srv, "carol", NEW_PASSWORD)["error"] == 1
    assert "carol" not in cli(srv, "list").stdout
    with sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True) as db:  # its webhooks too
        assert db.execute("SELECT COUNT(*) FROM webhook WHERE id = ?",
                          (created["result"]["id"],)).fetchone() == (0,)
    for action in ("remove", "passwd"):
        missing = cli(srv, action, "carol", password="x", check=False)
        assert missing.returncode != 0 and "no account 'carol'" in missing.stderr


def test_empty_password_refused(srv):
    empty = cli(srv, "add", "dave", password="", check=False)
    assert empty.returncode != 0 and "empty password" in empty.stderr
    assert "dave" not in cli(srv, "list").stdout


def test_password_never_in_clear(srv):
    """Not in the database files (WAL included) nor in the server log, after good calls,
    bad calls and a malformed request that carries it."""
    cli(srv, "add", "erin", password=NEW_PASSWORD)
    assert get_webhooks(srv, "erin", NEW_PASSWORD)["error"] == 0
    assert get_webhooks(srv, "erin", NEW_PASSWORD + "x")["error"] == 1
    requests.post(srv.url + "/soap", data=(
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f'<GetWebHooks><username>erin</username><password>{NEW_PASSWORD}</password>'),
        headers={"Content-Type": "text/xml"}, timeout=30)
    stored = b"".join(p.read_bytes() for p in srv.db_path.parent.glob(srv.db_path.name + "*"))
    assert b"erin" in stored and b"scrypt$" in stored
    for secret in (NEW_PASSWORD, PASSWORD):
        assert secret.encode() not in stored
        assert secret not in srv.log()
    assert "authentication failed for user 'erin'" in srv.log()


def test_failed_logins_are_throttled_with_error_8(srv):
    cli(srv, "add", "frank", password=PASSWORD)
    answers = []
    for _ in range(12):  # 5 free failures, then a block of 1 s, 2 s, 4 s, ...
        answers.append(get_webhooks(srv, "frank", "guess")["error"])
        if answers[-1] == 8:
            break
    assert answers[:5] == [1] * 5 and answers[-1] == 8
    blocked = get_webhooks(srv, "frank", PASSWORD)
    assert blocked["error"] == 8 and "Too many failed logins" in blocked["message"]
    # Another user from the same address is not locked out.
    assert get_webhooks(srv, "alice", PASSWORD)["error"] == 0


# -- the credential cache and the throttle, in process with injected clocks -----------

class Account:
    def __init__(self, password, name="alice"):
        self.username, self.password_hash = name, auth.hash_password(password, n=2**10)




@pytest.fixture
def kdf_calls(monkeypatch):
    calls = []
    real = auth.verify_password

    def counting(password, stored):
        calls.append(password)
        return real(password, stored)

    monkeypatch.setattr(auth, "verify_password", counting)
    return calls


def test_credential_cache_skips_the_kdf_on_repeat_calls(kdf_calls):
    clock = SettableTime()
    accounts = {"alice": Account(PASSWORD)}
    checker = auth.Authenticator(accounts.get, cache_sec=60, clock=clock)
    assert checker.check("alice", PASSWORD) is accounts["alice"]
    assert len(kdf_calls) == 1
    for _ in range(5):  # the fast path
        assert checker.check("alice", PASSWORD) is accounts["alice"]
    assert len(kdf_calls) == 1
    assert checker.check("alice", "wrong") is None  # a wrong password is never cached
    assert checker.check("alice", "wrong") is None
    assert len(kdf_calls) == 3
    clock.now += 61  # expired: the KDF again
    assert checker.check("alice", PASSWORD) is accounts["alice"]
    assert len(kdf_calls) == 4
    accounts["alice"] = Account(NEW_PASSWORD)  # passwd: the cached entry stops matching
    assert checker.check("alice", PASSWORD) is None
    assert checker.check("alice", NEW_PASSWORD) is accounts["alice"]
    del accounts["alice"]  # removed: no cache hit either, and a dummy hash is checked
    assert checker.check("alice", NEW_PASSWORD) is None
    assert kdf_calls[-1] == NEW_PASSWORD


def test_unknown_user_costs_a_kdf_too(kdf_calls):
    checker = auth.Authenticator({}.get)
    assert checker.check("nobody", "x") is None
    assert kdf_calls == ["x"]


def test_throttle_grows_and_expires_per_user_and_address():
    clock = SettableTime()
    throttle = auth.Throttle(clock=clock, free=5, base=1.0, cap=8.0)
    for _ in range(5):
        throttle.failed("alice", "10.0.0.1")
    assert not throttle.blocked("alice", "10.0.0.1")
    delays = []
    for _ in range(6):
        throttle.failed("alice", "10.0.0.1")
        start = clock.now
        for clock.now in itertools.count(start, 0.5):
            if not throttle.blocked("alice", "10.0.0.1"):
                break
        delays.append(clock.now - start)
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # growing, capped
    throttle.failed("alice", "10.0.0.1")
    assert throttle.blocked("alice", "10.0.0.1")
    assert not throttle.blocked("alice", "10.0.0.2")  # the user from elsewhere
    assert not throttle.blocked("bob", "10.0.0.1")  # another user from here
    clock.now += 8
    throttle.succeeded("alice", "10.0.0.1")
    throttle.failed("alice", "10.0.0.1")
    assert not throttle.blocked("alice", "10.0.0.1")  # a success starts over
