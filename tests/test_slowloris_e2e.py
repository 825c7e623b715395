"""Slowloris against a real server whose descriptor limit is 1,024: 1,100 connections
that send a byte a second and never finish their request (reconnecting whenever the
server drops one). Legitimate calls are answered meanwhile, and the server's
descriptors stay under its limit."""

import os
import resource
import select
import socket
import threading

import requests

from tests.conftest import PASSWORD, Server
from tests.support.server import server_fixture
from tests.test_bruteforce_e2e import SOAP_CALL

ATTACKERS = 1_100


def limit_descriptors():
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


class Slowloris(threading.Thread):
    def __init__(self, port, count):
        super().__init__(daemon=True)
        self.port, self.count = port, count
        self.stop = threading.Event()
        self.socks: set[socket.socket] = set()
        self.opened = 0

    def _open(self):
        sock = socket.socket()
        sock.settimeout(0.2)
        try:
            sock.connect(("127.0.0.1", self.port))
            sock.send(b"POST /soap HTTP/1.1\r\nHost: x\r\nX-a: ")
        except OSError:
            sock.close()
            return
        sock.setblocking(False)
        self.socks.add(sock)
        self.opened += 1

    def _drop(self, sock):
        self.socks.discard(sock)
        sock.close()

    def run(self):
        while not self.stop.is_set():
            while len(self.socks) < self.count and not self.stop.is_set():
                self._open()
            for sock in list(self.socks):
                try:
                    sock.send(b"a")
                except OSError:
                    self._drop(sock)
            poller = select.poll()
            by_fd = {sock.fileno(): sock for sock in self.socks}
            for fd in by_fd:
                poller.register(fd, select.POLLIN)
            for fd, _event in poller.poll(0):  # answered (408/503) or closed by the server
                self._drop(by_fd[fd])
            self.stop.wait(1.0)
        for sock in list(self.socks):
            self._drop(sock)


@server_fixture
def server(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < ATTACKERS + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    srv = Server(tmp_path)
    srv.preexec_fn = limit_descriptors
    srv.add_account("alice")
    yield srv.start()
    srv.stop()


def test_legitimate_calls_are_answered_during_slowloris(server):
    attack = Slowloris(server.port, ATTACKERS)
    attack.start()
    try:
        while attack.opened < ATTACKERS:  # the whole crowd is in before the calls
            attack.stop.wait(0.1)
        answers = []
        for _ in range(15):
            try:
                answer = requests.post(
                    server.url + "/soap", timeout=10,
                    data=SOAP_CALL.format(user="alice", password=PASSWORD),
                    headers={"Content-Type": "text/xml; charset=utf-8"})
                answers.append("<tns:error>0</tns:error>" in answer.text)
            except requests.RequestException:
                answers.append(False)
        descriptors = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
    finally:
        attack.stop.set()
        attack.join()
    assert answers == [True] * 15
    assert descriptors < 1024
    log = server.log()
    assert "Too many open files" not in log and "EMFILE" not in log
    assert "inbound connections:" in log  # the drops are reported, briefly
    assert requests.get(server.url + "/healthz", timeout=30).status_code == 200
