"""Hostile receivers against a real ``soapservice serve``: an answer whose body never
comes, a header flood, unsendable URLs. Each asserts the bound a user relies on: the
attempt fails with its own words within the delivery timeout, the connection is closed
(descriptors do not pile up), memory stays flat, other deliveries go out on time."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time

import pytest
import requests
import zeep

from tests.conftest import PASSWORD
from tests.support.receiver import Receiver

FAST = {"SOAPSERVICE_RETRY_SCHEDULE": "0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2",
        "SOAPSERVICE_DELIVERY_TIMEOUT": "1"}
TOKEN = {"Authorization": "Bearer test-ingest-token"}


class Hostile:
    """A receiver on 127.0.0.1 that reads each request's head and then misbehaves:
    ``hang_body`` answers ``200`` headers announcing a body and never sends it;
    ``flood`` streams header lines for up to ``flood_sec``. It counts connections
    accepted and closed by the peer, and bytes sent."""

    def __init__(self, mode, flood_sec=5.0):
        self.mode, self.flood_sec = mode, flood_sec
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.accepted = self.closed = self.sent = 0
        self.lock = threading.Lock()
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(10)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            if self.mode == "hang_body":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                with self.lock:
                    self.sent += 1
                if conn.recv(1) == b"":  # blocks until the sender closes
                    with self.lock:
                        self.closed += 1
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                line = b"x-flood: " + b"a" * 1000 + b"\r\n"
                deadline = time.monotonic() + self.flood_sec
                while time.monotonic() < deadline:
                    conn.sendall(line * 16)
                    with self.lock:
                        self.sent += len(line) * 16
        except OSError:
            with self.lock:
                self.closed += 1
        finally:
            conn.close()

    def stop(self):
        self.running = False
        self.sock.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(pid):
    import os
    return len(os.listdir(f"/proc/{pid}/fd"))


def post_event(srv, event="optin_finalized", data=None):
    answer = requests.post(srv.url + "/events", headers=TOKEN, json={
        "account": "alice", "event": event, "data": data or {"subscriber_id": 1}})
    assert answer.status_code == 202, answer.text
    return answer.json()


def hooks(srv):
    return {h.id: h for h in zeep.Client(srv.url + "/soap?wsdl").service.GetWebHooks(
        "alice", PASSWORD).result.WebHook}


def wait(condition, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.server
def test_answer_without_its_body_fails_as_a_timeout_and_its_connection_is_closed(
        make_server):
    hostile = Hostile("hang_body")
    try:
        srv = make_server(FAST)
        client = zeep.Client(srv.url + "/soap?wsdl").service
        hook = client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                    hostile.url).result
        for subscriber in range(20):
            post_event(srv, data={"subscriber_id": subscriber})
        state = wait(lambda: (h := hooks(srv)[hook.id]).failureCount >= 3 and h,
                     "three failed attempts")
        assert state.lastError == "timeout after 1 s"
        assert state.lastSuccessAt is None  # an unfinished answer is never a success
        # Every connection the sender gave up is closed on its side, within a timeout.
        wait(lambda: hostile.closed >= hostile.sent - 8, "the sender to close")
        # Descriptors stay bounded: at most the webhook's 8 attempts in flight.
        assert open_fds(srv.proc.pid) < 100
        assert hostile.accepted >= 3
    finally:
        hostile.stop()


@pytest.mark.server
def test_header_flood_is_cut_off_and_memory_stays_flat(make_server):
    hostile = Hostile("flood", flood_sec=3.0)
    try:
        srv = make_server(FAST)
        before = rss_kib(srv.proc.pid)
        client = zeep.Client(srv.url + "/soap?wsdl").service
        hook = client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                    hostile.url).result
        for subscriber in range(8):
            post_event(srv, data={"subscriber_id": subscriber})
        state = wait(lambda: (h := hooks(srv)[hook.id]).failureCount >= 2 and h,
                     "two failed attempts")
        assert state.lastError == "answer headers larger than 16 KiB (connection closed)"
        assert rss_kib(srv.proc.pid) - before < 100 * 1024
        # The sender stopped reading long before the flood ended (3 s at loopback speed
        # is gigabytes): the peer saw the connection close.
        wait(lambda: hostile.closed >= 1, "the flood's connection to be closed")
    finally:
        hostile.stop()


@pytest.mark.server
def test_non_ascii_urls_are_normalised_and_an_unsendable_one_fails_alone(make_server):
    with Receiver() as receiver:
        # (a delivery timeout no loaded machine reaches: the good webhook never fails)
        srv = make_server({**FAST, "SOAPSERVICE_DELIVERY_TIMEOUT": "60"})
        client = zeep.Client(srv.url + "/soap?wsdl").service
        made = client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                    receiver.url + "/grüße?q=ü")
        assert made.error == 0, made.message
        assert made.result.url == receiver.url + "/gr%C3%BC%C3%9Fe?q=%C3%BC"
        assert client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                    "http://a..b/").error == 4
        poisoned = client.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                        receiver.url + "/poison").result
        # A URL stored before creation normalised them, and one no client can send.
        with sqlite3.connect(srv.db_path) as db:
            db.execute("UPDATE webhook SET url = ? WHERE id = ?",
                       ("http://[::1/x", poisoned.id))
        for subscriber in range(5):
            post_event(srv, data={"subscriber_id": subscriber})
        receiver.wait_for(lambda: len(receiver.requests) >= 5,
                          what="the good webhook's deliveries")
        assert {r["path"] for r in receiver.requests} == {"/gr%C3%BC%C3%9Fe?q=%C3%BC"}
        state = wait(lambda: (h := hooks(srv)[poisoned.id]).failureCount >= 1 and h,
                     "the poisoned webhook's failure")
        assert state.lastError.startswith("URL cannot be sent")
        # It failed alone: the good webhook's five went out once each, none failed
        # (a batch broken by the poisoned URL would have failed or resent them).
        good = hooks(srv)[made.result.id]
        assert (good.failureCount, good.lastFailureAt) == (0, None)
        assert len(receiver.requests) == 5
