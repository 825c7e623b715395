"""README.rst "The first ten minutes", run as written, line by line, in a fresh folder:
the service (``make run``: its recipe, on free ports instead of 8080 and 9000), then
every line of the second terminal in one bash, with ``soapservice listen`` showing the
delivery, the deactivation once it is stopped, and the replay after reactivation."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from tests.test_readme_examples import literal_blocks

pytestmark = pytest.mark.server

SECTION = "The first ten minutes\n=====================\n"


def quickstart() -> tuple[str, list[str]]:
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[:section.index("\n=====", len(SECTION)) + 1]
    serve_block, terminal_block = literal_blocks(section)[:2]
    lines, pending = [], ""
    for line in terminal_block.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return serve_block.strip(), lines


def test_the_quickstart_is_short_and_starts_with_make_run():
    serve, lines = quickstart()
    assert serve.endswith("make run")
    assert len(lines) + 1 <= 15
    # make run is `soapservice serve` in the venv: the test runs that recipe.
    assert "\t$(BIN)/soapservice serve\n" in (ROOT / "Makefile").read_text()


class Shell:
    """One bash reading the lines from a pipe, as a terminal would run them."""

    def __init__(self, cwd, env):
        self.proc = subprocess.Popen(["bash"], cwd=cwd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        self.output = ""
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.output += line

    def run(self, line: str, n: int, timeout: float = 60):
        marker = f"__step_{n}_done__"
        self.proc.stdin.write(f"{line}\necho {marker}\n")
        self.proc.stdin.flush()
        self.wait_for(marker, timeout)

    def wait_for(self, text: str | re.Pattern, timeout: float = 60, count: int = 1):
        """Wait until ``text`` has appeared ``count`` times in the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = (len(text.findall(self.output)) if isinstance(text, re.Pattern)
                         else self.output.count(text))
            if found >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"{text!r} did not appear {count} time(s):\n{self.output}")

    def close(self):
        self.proc.stdin.write("kill $(jobs -p) 2>/dev/null; exit\n")
        self.proc.stdin.flush()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def folder(tmp_path):
    """A fresh folder where ``.venv`` is this checkout's environment."""
    venv = Path(sys.prefix)  # the environment running the tests (.venv, .venv-3.12...)
    if not (venv / "bin" / "soapservice").exists():
        venv = ROOT / ".venv"
    (tmp_path / ".venv").symlink_to(venv)
    return tmp_path


def test_the_quickstart_runs_as_written(folder):
    service_port, receiver_port = free_port(), free_port()
    serve_line, lines = quickstart()

    def ports(text):
        return text.replace("8080", str(service_port)).replace("9000", str(receiver_port))

    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAPSERVICE_")}
    env["SOAPSERVICE_PORT"] = str(service_port)
    env["PYTHONUNBUFFERED"] = "1"
    serve_env = dict(env)
    for assignment in serve_line.split()[:-2]:  # VAR=value ... make run
        name, _, value = assignment.partition("=")
        serve_env[name] = value
    log = open(folder / "serve.log", "wb")
    serve = subprocess.Popen([".venv/bin/soapservice", "serve"], cwd=folder, env=serve_env,
                             stdout=log, stderr=subprocess.STDOUT)
    shell = Shell(folder, env)

    def wait_until(condition, what, timeout=60):
        deadline = time.monotonic() + timeout
        while not condition():
            assert serve.poll() is None and time.monotonic() < deadline, (
                f"waiting for {what}:\n" + (folder / "serve.log").read_text())
            time.sleep(0.05)

    try:
        wait_until(lambda: f"listening on http://127.0.0.1:{service_port}/" in (
            folder / "serve.log").read_text(), "the service to listen")
        expect = {  # after the line containing the key: what the terminal shows
            "account add": ["account alice added"],
            "listen --port": [f"receiving webhooks on http://127.0.0.1:{receiver_port}/"],
            "'{\"subscriber_id\": 1}'": [re.compile(
                r"optin_finalized  webhook-id msg_1  POST /hook  signature verified  -> 200")],
            "notifications": ["was deactivated", "1 buffered", "connection refused",
                              re.compile(r"reactivate: \S+  \(usable\)"),
                              f"reactivate: http://127.0.0.1:{service_port}/reactivate/"],
            "ActivateWebHook": ['"replayedEvents": 1', re.compile(
                r"optin_finalized  webhook-id msg_2  POST /hook  signature verified  -> 200")],
        }
        # What a person waits for before the next line, not for a time: the receiver
        # gone after `kill %1` (bash returns before the process has closed its port;
        # a delivery it still answered would deactivate nothing), and the deactivation,
        # which the first terminal logs, before `notifications` (the README's
        # `sleep 5` is a person's margin; at load 10 three attempts 1 s apart and
        # their claims can take longer).
        def refused():
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", receiver_port)) != 0

        def deactivated():
            return "webhook 1 deactivated after" in (folder / "serve.log").read_text()

        after = {"kill %1": (refused, "the receiver to close its port")}
        before = {"notifications": (deactivated, "the deactivation in the service's log")}
        listens = 0
        for n, line in enumerate(lines):
            if line.lstrip().startswith("#"):
                continue
            for key, (condition, what) in before.items():
                if key in line:
                    wait_until(condition, what)
            shell.run(ports(line), n)
            for key, (condition, what) in after.items():
                if key in line:
                    wait_until(condition, what)
            for key, texts in expect.items():
                if key in line:
                    listens += key == "listen --port"
                    # each `listen` prints its own line: the second one's, not the
                    # first's again, says it is up before the replay is sent to it
                    count = listens if key == "listen --port" else 1
                    for text in texts:
                        shell.wait_for(text, 60, count=count)
        assert listens == 2
        # The link of the notification is spent now that the webhook is active again.
        shell.run(".venv/bin/soapservice notifications --account alice", len(lines))
        shell.wait_for("(spent: this webhook is already active)")
        assert shell.output.count("signature verified  -> 200") == 2
        assert "Traceback" not in shell.output
    finally:
        shell.close()
        serve.terminate()
        serve.wait(timeout=30)
        log.close()
