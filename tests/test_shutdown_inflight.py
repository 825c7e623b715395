"""SIGTERM while SOAP calls are in flight: the server exits 0 promptly; it never hangs
(a WSGI worker writing its answer waits for the reactor thread, which must not be
blocked joining that very worker)."""

import http.client
import signal
import subprocess
import threading
import time

import pytest

from tests.conftest import PASSWORD, Server

CALL = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:w="urn:soapservice:webhooks:1"><soap:Body><w:GetWebHooks>'
    f"<w:username>alice</w:username><w:password>{PASSWORD}</w:password>"
    "</w:GetWebHooks></soap:Body></soap:Envelope>")


def hammer(srv, stop: threading.Event, answered: list):
    while not stop.is_set():
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        try:
            conn.request("POST", "/soap", CALL, {"Content-Type": "text/xml"})
            conn.getresponse().read()
            answered.append(1)
        except ConnectionRefusedError:
            return  # the server has stopped listening
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()


@pytest.mark.server  # starts its own server
def test_sigterm_with_calls_in_flight_exits_0(tmp_path):
    for round_ in range(2):
        srv = Server(tmp_path / f"r{round_}", {"SOAPSERVICE_DELIVERY": "0"})
        (tmp_path / f"r{round_}").mkdir()
        srv.add_account("alice")
        srv.start()
        stop, answered = threading.Event(), []
        workers = [threading.Thread(target=hammer, args=(srv, stop, answered))
                   for _ in range(24)]
        try:
            for w in workers:
                w.start()
            deadline = time.monotonic() + 120  # (a deadline for a loaded machine)
            while len(answered) < 50 and time.monotonic() < deadline:
                threading.Event().wait(0.05)  # the thread pool is busy once calls come back
            assert len(answered) >= 50
            srv.proc.send_signal(signal.SIGTERM)
            try:
                code = srv.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                srv.proc.kill()
                srv.proc.wait()
                raise AssertionError("server hung on SIGTERM with calls in flight") from None
            assert code == 0, srv.log()[-2000:]
        finally:
            stop.set()
            for w in workers:
                w.join()
            srv.stop()
