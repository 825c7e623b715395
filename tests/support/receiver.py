"""A webhook receiver on 127.0.0.1 for end-to-end tests: records every request and
answers what the test says (a status code, or dropping the connection). ``stop()``
closes the port and every connection (senders see "connection refused"); ``start()``
opens the same port again."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request, client_address):
        import sys
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the sender went away mid-request (a test killed it): not news
        super().handle_error(request, client_address)


class Receiver:
    def __init__(self, answer=None):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        # answer(request_dict) -> int status (or None: drop the connection), or
        # (status, {header: value})
        self.answer = answer or (lambda req: 200)
        self.connections: set[socket.socket] = set()
        self.port = 0
        self.server = None
        self.stopped = True

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1

            def setup(self):
                super().setup()
                with receiver.lock:
                    receiver.connections.add(self.connection)

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if receiver.stopped:
                    self.close_connection = True
                    return
                req = {"path": self.path, "headers": {k.lower(): v for k, v in
                                                      self.headers.items()},
                       "body": body, "at": time.time()}
                status = receiver.answer(req)
                extra = {}
                if isinstance(status, tuple):
                    status, extra = status
                req["status"] = status
                with receiver.lock:
                    receiver.requests.append(req)
                if status is None:
                    self.close_connection = True
                    return
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        return Handler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.server = _Server(("127.0.0.1", self.port), self._handler())
        self.port = self.server.server_address[1]
        self.stopped = False
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.stopped = True
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.connections.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def delivered(self, path=None) -> list[dict]:
        """Bodies (decoded JSON) of requests answered 2xx, in arrival order."""
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests
                    if r["status"] is not None and 200 <= r["status"] < 300
                    and (path is None or r["path"] == path)]

    def wait_for(self, condition, timeout=60.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; got {len(self.requests)} requests")
