"""Each failure kind has its own words and label (what lastError, the deliveries list,
the log and the mail show), and delivery's descriptors fit the process's limit."""

from __future__ import annotations

import pytest
from OpenSSL import SSL
from twisted.internet import defer, error
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web._newclient import RequestTransmissionFailed
from twisted.web.client import ResponseFailed, ResponseNeverReceived

from soapservice.sender import HeadersTooLarge, _Pool, classify, descriptor_budget
from soapservice.targets import TargetRefused, Unresolvable


@pytest.mark.parametrize("failure, kind, words", [
    (defer.TimeoutError(10.0, "Deferred"), "timeout", "timeout after 10 s"),
    (defer.CancelledError(), "timeout", "timeout after 10 s"),
    (error.ConnectingCancelledError(None), "timeout", "timeout after 10 s"),
    (error.ConnectionRefusedError(), "refused", "connection refused"),
    (error.DNSLookupError("host 'x.test' does not resolve"), "dns",
     "DNS: host 'x.test' does not resolve"),
    (Unresolvable("host 'x.test': no answer within 5 s"), "dns",
     "DNS: host 'x.test': no answer within 5 s"),
    (TargetRefused("refused target address: host 'a' is 10.0.0.1"), "target",
     "refused target address: host 'a' is 10.0.0.1"),
    (ResponseNeverReceived([Failure(SSL.Error([("SSL routines", "",
                                                "certificate verify failed")]))]),
     "tls", "TLS: certificate verify failed"),
    (ResponseNeverReceived([Failure(SSL.Error([("SSL routines", "",
                                                "wrong version number")]))]),
     "tls", "TLS: wrong version number"),
    (ResponseNeverReceived([Failure(HeadersTooLarge())]), "too_large",
     "answer headers larger than 16 KiB (connection closed)"),
    (ResponseFailed([Failure(error.ConnectionLost())]), "closed",
     "connection closed before the answer ended"),
    (RequestTransmissionFailed([Failure(SSL.Error([("SSL routines", "",
                                                    "record layer failure")]))]),
     "tls", "TLS: record layer failure"),
])
def test_each_failure_kind_has_its_words(failure, kind, words):
    assert classify(Failure(failure), 10.0) == (kind, words)


def test_delivery_descriptors_fit_a_1024_limit_beside_the_inbound_cap():
    in_flight, idle = descriptor_budget(1024, 512, 256)
    assert in_flight == 256 and in_flight + idle + 512 <= 1024 - 64
    in_flight, idle = descriptor_budget(1024, 512, 5000)  # asked for too many
    assert in_flight + idle + 512 <= 1024 - 64 and in_flight >= 16


class Transport:
    closed = False

    def loseConnection(self):
        self.closed = True


class Connection:
    state = "QUIESCENT"

    def __init__(self):
        self.transport = Transport()


def test_idle_connections_are_capped_over_all_hosts():
    pool = _Pool(Clock())
    pool.max_idle = 2
    connections = [Connection() for _ in range(3)]
    for number, connection in enumerate(connections):
        pool._putConnection(("http", f"host{number}", 80), connection)
    assert [c.transport.closed for c in connections] == [False, False, True]
    assert len(pool._timeouts) == 2
