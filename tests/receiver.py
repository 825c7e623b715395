"""A webhook receiver on 127.0.0.1 for end-to-end tests: records every request and
answers what the test says (a status code, or dropping the connection)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, answer=None):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        # answer(request_dict) -> int status (or None: drop the connection)
        self.answer = answer or (lambda req: 200)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                req = {"path": self.path, "headers": {k.lower(): v for k, v in
                                                      self.headers.items()},
                       "body": body, "at": time.time()}
                status = receiver.answer(req)
                req["status"] = status
                with receiver.lock:
                    receiver.requests.append(req)
                if status is None:
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def delivered(self, path=None) -> list[dict]:
        """Requests answered 2xx, as JSON bodies, in arrival order."""
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests
                    if r["status"] is not None and 200 <= r["status"] < 300
                    and (path is None or r["path"] == path)]

    def wait_for(self, condition, timeout=30.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; got {len(self.requests)} requests")
