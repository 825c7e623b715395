"""The PHP sample of docs/clients.rst "Delivery log, tests and secrets (PHP)" runs
against a real server and prints what the docs show."""

from __future__ import annotations

import subprocess

from tests.conftest import ROOT, require_tool
from tests.test_readme_examples import literal_blocks

SECTION = "Delivery log, tests and secrets (PHP)\n"


def test_php_sample_of_the_new_operations(make_server, tmp_path):
    php = require_tool("php")
    text = (ROOT / "docs" / "clients.rst").read_text(encoding="utf-8")
    section = text[text.index(SECTION):text.index("Web Service Demo\n=")]
    code, shown = literal_blocks(section)[:2]
    srv = make_server(accounts=(("alice", "secret"),))
    script = tmp_path / "sample.php"
    script.write_text(code.replace("http://127.0.0.1:8080", srv.url))
    done = subprocess.run([php, str(script)], capture_output=True, text=True, timeout=60)
    assert done.stderr == "" and done.returncode == 0, done.stdout + done.stderr
    got, expected = done.stdout.splitlines(), shown.splitlines()
    assert len(got) == len(expected), done.stdout
    for line, pattern in zip(got, expected, strict=True):
        head, _, tail = pattern.partition("...")
        assert line.startswith(head) and line.endswith(tail), (line, pattern)
