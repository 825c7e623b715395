"""Login throttling against a real server, as the penetration test ran it: guesses at one
account from 40 addresses, from rotating IPv6 addresses of one /64 and from behind a
reverse proxy (SOAPSERVICE_TRUSTED_PROXIES), and a flood of concurrent wrong passwords
from rotating addresses while the account's owner keeps calling."""

import http.client
import threading
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import PASSWORD, Server
from tests.support.server import server_fixture
from tests.test_bruteforce_e2e import SOAP_CALL


@server_fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("flood"),
                 {"SOAPSERVICE_TRUSTED_PROXIES": "127.0.0.1/32"})
    for name in ("alice", "bob", "carol", "dave"):
        srv.add_account(name)
    yield srv.start()
    srv.stop()


def call(srv, user, password, source="127.0.0.1", forwarded=None, timeout=10) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout,
                                      source_address=(source, 0))
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    try:
        conn.request("POST", "/soap", SOAP_CALL.format(user=user, password=password), headers)
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    return int(body.split("<tns:error>")[1].split("<")[0])


def test_guesses_from_40_addresses_are_throttled_the_owner_is_not(server):
    assert call(server, "alice", PASSWORD, source="127.0.0.9") == 0  # the owner's place
    answers = [call(server, "alice", f"guess-{i}", source=f"127.0.1.{i % 40 + 1}")
               for i in range(200)]
    assert answers.count(1) <= 25 and answers.count(8) >= 175, answers.count(1)
    # Before, each address had 5 free guesses: all 200 were checked (answer 1).
    assert call(server, "alice", PASSWORD, source="127.0.0.9") == 0
    assert call(server, "alice", PASSWORD, source="127.0.1.200") == 8  # strangers wait
    assert call(server, "bob", PASSWORD, source="127.0.1.3") == 0


def test_behind_a_trusted_proxy_each_client_counts_apart(server):
    # Through the proxy (127.0.0.1, trusted): one client guessing at bob ...
    assert [call(server, "bob", f"g{i}", forwarded="203.0.113.7") for i in range(6)] == [1] * 6
    assert call(server, "bob", PASSWORD, forwarded="203.0.113.7") == 8
    # ... does not lock out another client behind the same proxy.
    assert call(server, "bob", PASSWORD, forwarded="203.0.113.8") == 0
    # A client naming an address of its own: the proxy's appended hop counts.
    assert call(server, "bob", PASSWORD, forwarded="198.51.100.1, 203.0.113.7") == 8
    # Rotating IPv6 addresses of one /64 count as one client.
    answers = [call(server, "carol", f"g{i}", forwarded=f"2001:db8:5:6::{i + 1:x}")
               for i in range(7)]
    assert answers == [1] * 6 + [8]
    assert call(server, "carol", PASSWORD, forwarded="2001:db8:5:7::1") == 0
    # From a peer that is not a trusted proxy the header is ignored.
    answers = [call(server, "dave", f"g{i}", source="127.0.0.3", forwarded=f"192.0.2.{i}")
               for i in range(7)]
    assert answers == [1] * 6 + [8]
    log = server.log()
    assert "authentication failed for user 'bob' from 203.0.113.7" in log
    assert '"203.0.113.8" - -' in log  # the access log names the client, not the proxy


def test_a_flood_of_wrong_passwords_does_not_starve_the_owner(server):
    assert call(server, "dave", PASSWORD, source="127.0.0.10") == 0  # cached, known
    stop = threading.Event()
    flood_answers = []

    def guess(worker):
        i = 0
        while not stop.is_set():
            i += 1
            # Rotating addresses and names: no throttle key ever fills up.
            source = f"127.0.{2 + worker % 4}.{(worker * 7 + i) % 250 + 1}"
            flood_answers.append(call(server, f"nobody{worker}-{i}", "x", source=source,
                                      timeout=30))

    with ThreadPoolExecutor(48) as pool:
        floods = [pool.submit(guess, w) for w in range(48)]
        try:
            # Before, the owner's call waited 5.9 s behind 48 scrypt checks.
            owner = [call(server, "dave", PASSWORD, source="127.0.0.10", timeout=5)
                     for _ in range(10)]
        finally:
            stop.set()
        for flood in floods:
            flood.result()
    assert owner == [0] * 10
    assert set(flood_answers) <= {1, 8} and flood_answers.count(8) > 0
    assert "too many password checks at once" in server.log()
