"""Brute force and secrets against the running server: failed logins throttled per
user+address (error 8), the real user from another address still gets in, every
failure logged without the password, and no password in the log or the DB in clear."""

import http.client
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import requests

from tests.conftest import PASSWORD, Server
from tests.support.server import server_fixture

SOAP_CALL = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:w="urn:soapservice:webhooks:1"><soap:Body><w:GetWebHooks>'
    "<w:username>{user}</w:username><w:password>{password}</w:password>"
    "</w:GetWebHooks></soap:Body></soap:Envelope>")


@server_fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("brute"))
    srv.add_account("alice")
    srv.add_account("bob")
    srv.start()
    yield srv
    srv.stop()


def soap_error(srv, user, password, source="127.0.0.1") -> int:
    """GetWebHooks over SOAP from ``source`` (another loopback address stands for
    another client); returns the envelope's error code."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request("POST", "/soap", SOAP_CALL.format(user=user, password=password),
                     {"Content-Type": "text/xml; charset=utf-8"})
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    assert "<tns:error>" in body, body
    return int(body.split("<tns:error>")[1].split("<")[0])


def json_error(srv, user, password, source="127.0.0.1") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request("GET", "/json/GetWebHooks?" + urlencode(
            {"username": user, "password": password}))
        return json.loads(conn.getresponse().read())["error"]
    finally:
        conn.close()


def test_guessing_is_throttled_and_the_real_user_elsewhere_is_not(server):
    guesses = [f"Guess-{i}-Xy7" for i in range(6)]
    assert [soap_error(server, "alice", g) for g in guesses] == [1] * 6
    # Throttled now: even the right password from the attacker's address gets error 8,
    # and so does the JSON API (one throttle for every protocol).
    assert soap_error(server, "alice", PASSWORD) == 8
    assert json_error(server, "alice", PASSWORD) == 8
    # The real user from another address is not locked out.
    assert soap_error(server, "alice", PASSWORD, source="127.0.0.2") == 0
    assert json_error(server, "alice", PASSWORD, source="127.0.0.2") == 0
    # Another account from the attacker's address is not locked out either.
    assert soap_error(server, "bob", PASSWORD) == 0
    log = server.log()
    assert log.count("authentication failed for user 'alice' from 127.0.0.1") == 6
    assert "throttled" in log
    for guess in guesses:
        assert guess not in log


def test_a_burst_of_parallel_guesses_is_throttled_too(server):
    # 40 guesses at once from one address: only the checks already running or waiting
    # for a slot when the 6th failure is counted get through (2 run at once, 4 wait).
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(
            lambda i: soap_error(server, "bob", f"burst-{i}", source="127.0.0.5"),
            range(40)))
    assert set(answers) <= {1, 8}
    assert answers.count(1) <= 5 + 6, answers
    # Logins that found no password-check slot free were refused (8) unchecked: they
    # are no failures. Six checked failures or more and the pair is throttled.
    throttled = answers.count(1) > 5
    assert soap_error(server, "bob", PASSWORD, source="127.0.0.5") == (8 if throttled else 0)


def test_unknown_user_throttled_like_a_known_one(server):
    answers = [soap_error(server, "mallory", "x", source="127.0.0.3") for _ in range(7)]
    assert answers == [1] * 6 + [8]


def test_passwords_never_in_the_log_nor_the_db_in_clear(server):
    # Successful calls over SOAP and over JSON with the password in the query string.
    assert soap_error(server, "alice", PASSWORD, source="127.0.0.4") == 0
    assert json_error(server, "bob", PASSWORD, source="127.0.0.4") == 0
    answer = requests.post(server.url + "/json/CreateWebHook", data={
        "username": "bob", "password": PASSWORD, "app": "crm",
        "event": "optin_finalized", "url": "http://127.0.0.1:9/h"}).json()
    assert answer["error"] == 0
    log = server.log()
    assert "GET /json/GetWebHooks?username=***&password=*** " in log
    assert PASSWORD not in log
    assert PASSWORD.replace(" ", "+") not in log and PASSWORD.replace(" ", "%20") not in log
    # The webhook secret is handed to its owner, never written to the log.
    assert answer["result"]["secret"] not in log
    dump = "\n".join(sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True).iterdump())
    assert PASSWORD not in dump
    hashes = [row[0] for row in sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True)
              .execute("SELECT password_hash FROM account")]
    assert len(hashes) == 2 and all(h.startswith("scrypt$") for h in hashes)
    assert hashes[0] != hashes[1]  # salted: same password, different hashes
