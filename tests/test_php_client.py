"""A customer's PHP SoapClient (tests/php/webhooks_client.php) against a running server."""

import os
import subprocess

import pytest

from tests.conftest import PASSWORD, ROOT, require_tool


def test_php_soapclient_drives_all_operations(server):
    php = require_tool("php")
    modules = subprocess.run([php, "-m"], capture_output=True, text=True).stdout
    if "soap" not in modules.split():
        message = "php-soap is not installed (apt-get install php-soap; .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run([php, str(ROOT / "tests" / "php" / "webhooks_client.php"),
                           server.url, "alice", PASSWORD, "bob"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "all checks passed"
    for expected in ("ok one webhook is a one-element array", "ok error 1: Authentication failed",
                     "ok error 5: Webhook 999999 not found", "ok DeleteWebHookById",
                     "ok SOAP 1.2 GetWebHooks"):
        assert expected in lines
    assert "Warning" not in done.stdout + done.stderr


def test_php_positional_calls_on_soap_are_sent_to_the_legacy_endpoint(server):
    php = require_tool("php")
    modules = subprocess.run([php, "-m"], capture_output=True, text=True).stdout
    if "soap" not in modules.split():
        message = "php-soap is not installed (apt-get install php-soap; .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run([php, str(ROOT / "tests" / "php" / "positional_on_soap.php"),
                           server.url, "alice", PASSWORD], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for kind in ("nowsdl", "wsdl"):
        line = next(x for x in lines if x.startswith(kind + " "))
        assert line.startswith(f"{kind} 2 Missing required parameter: username (positional "
                               "callers"), line
        assert "belong on /webservice/webservice/soap3" in line
