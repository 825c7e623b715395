"""docs/clients.rst "Client examples": every example run against a real server, in order
on a fresh store, printing what the page says it prints (times and secrets aside)."""

import json
import re
import subprocess
import sys
import textwrap

import pytest
from lxml import etree

from tests.conftest import ROOT, require_tool

SECTION = "Client examples\n===============\n"


def literal_blocks(text: str) -> list[str]:
    """The section's literal blocks (``::`` and code-block directives), in order."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") or line.startswith(".. code-block::"):
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            body = []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                body.append(lines[i])
                i += 1
            blocks.append(textwrap.dedent("\n".join(body)).strip("\n") + "\n")
        else:
            i += 1
    return blocks


@pytest.fixture(scope="module")
def blocks():
    readme = (ROOT / "docs" / "clients.rst").read_text(encoding="utf-8")
    start = readme.index(SECTION)
    end = re.search(r"\n[^\n]+\n=+\n", readme[start + len(SECTION):])
    section = readme[start:start + len(SECTION) + (end.start() if end else len(readme))]
    found = literal_blocks(section)
    assert len(found) == 8, found
    return found


def mask(text: str) -> str:
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|\+00:00)", "TIME", text)
    return re.sub(r"whsec_[A-Za-z0-9+/=]+", "SECRET", text)


def localize(text: str, srv) -> str:
    return text.replace("http://127.0.0.1:8080", srv.url)


def test_readme_client_examples(make_server, tmp_path, blocks):
    php = require_tool("php")
    curl = require_tool("curl")
    srv = make_server(accounts=(("alice", "secret"),))
    php_code, php_out, zeep_code, zeep_out, raw_call, raw_answer, fault = blocks[:7]
    json_session = blocks[7]

    script = tmp_path / "example.php"
    script.write_text(localize(php_code, srv))
    done = subprocess.run([php, str(script)], capture_output=True, text=True, timeout=60)
    assert (done.stdout, done.stderr) == (php_out, "")

    script = tmp_path / "example.py"
    script.write_text(localize(zeep_code, srv))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == zeep_out

    assert raw_call.startswith("curl -s http://127.0.0.1:8080/soap ")
    done = subprocess.run(["bash", "-c", localize(raw_call, srv).replace("curl ", curl + " ", 1)],
                          capture_output=True, text=True, timeout=60)
    answer = etree.tostring(etree.fromstring(done.stdout.encode()))
    shown = etree.tostring(etree.fromstring(
        raw_answer.encode(), etree.XMLParser(remove_blank_text=True)))
    assert mask(answer.decode()) == mask(shown.decode())

    # The fault fragment is what a non-numeric webhookId gets.
    bad = raw_call.replace("CreateWebHook>", "DeleteWebHookById>")
    bad = re.sub(r"<w:app>.*</w:url>", "<w:webhookId>abc</w:webhookId>", bad, flags=re.S)
    done = subprocess.run(["bash", "-c", localize(bad, srv)], capture_output=True, text=True,
                          timeout=60)
    assert " ".join(fault.split()).replace("> <", "><") in done.stdout

    commands = []
    for chunk in json_session.strip().split("\n\n"):  # "$ command \ ..." then its answer
        lines = chunk.splitlines()
        assert lines[0].startswith("$ "), chunk
        n = 1
        while lines[n - 1].endswith("\\"):
            n += 1
        commands.append((" ".join(line.rstrip("\\") for line in lines[:n])[2:],
                         "\n".join(lines[n:])))
    assert len(commands) == 4, json_session
    for command, expected in commands:
        command = localize(command, srv).replace("curl ", curl + " ", 1)
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                              timeout=60)
        expected = " ".join(line.strip() for line in expected.splitlines())
        if "..." in expected:  # elided: the shown beginning must match
            head = expected.split("...")[0]
            assert mask(done.stdout).startswith(mask(head)), (command, done.stdout)
        else:
            assert json.loads(mask(done.stdout)) == json.loads(mask(expected)), command
