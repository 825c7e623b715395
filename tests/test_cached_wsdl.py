"""Clients holding the WSDL committed before the new operations (a copy in
tests/fixtures/) still call the four legacy operations unchanged against today's server:
zeep with its strict parsing (an element the old WSDL does not declare fails the call)
and PHP SoapClient."""

from __future__ import annotations

import os
import subprocess

import pytest
import zeep
from zeep.settings import Settings

from tests.conftest import PASSWORD, ROOT, require_tool

OLD_WSDL = ROOT / "tests" / "fixtures" / "soapservice-before-ops.wsdl"
BINDING = "{urn:soapservice:webhooks:1}WebHookService"


def test_zeep_strict_with_the_old_wsdl_calls_the_four(make_server):
    srv = make_server()
    client = zeep.Client(str(OLD_WSDL), settings=Settings(strict=True))
    service = client.create_service(BINDING, srv.url + "/soap")
    created = service.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                    "http://127.0.0.1:9/hook")
    assert created.error == 0 and created.result.secret.startswith("whsec_")
    hook_id = created.result.id
    rotated = zeep.Client(srv.url + "/soap?wsdl").service.RotateWebHookSecret(
        "alice", PASSWORD, hook_id)  # a new-operation call beside the old client
    listed = service.GetWebHooks("alice", PASSWORD)
    assert listed.error == 0
    # The answer carries heldEvents (a client with today's WSDL reads it) ...
    current = zeep.Client(srv.url + "/soap?wsdl", settings=Settings(strict=True)).service
    assert [h.heldEvents for h in current.GetWebHooks("alice", PASSWORD).result.WebHook] == [0]
    # ... which the old client, strict as it is, passes over.
    assert [(h.id, h.secret) for h in listed.result.WebHook] == [
        (hook_id, rotated.result.secret)]
    activated = service.ActivateWebHook("alice", PASSWORD, hook_id, 1)
    assert activated.error == 0 and activated.result.replayedEvents == 0
    assert service.DeleteWebHookById("alice", PASSWORD, hook_id).result == hook_id
    assert service.GetWebHooks("alice", PASSWORD).result is None


PHP = r"""<?php
[$script, $wsdl, $base, $user, $password] = $argv;
$client = new SoapClient($wsdl, ['location' => "$base/soap", 'cache_wsdl' => WSDL_CACHE_NONE,
                                 'features' => SOAP_SINGLE_ELEMENT_ARRAYS,
                                 'exceptions' => true]);
$auth = ['username' => $user, 'password' => $password];
$r = $client->CreateWebHook($auth + ['app' => 'crm', 'event' => 'optin_finalized',
                                     'url' => 'http://127.0.0.1:9/hook'])->CreateWebHookResult;
$id = $r->result->id;
echo "create {$r->error}\n";
$list = $client->GetWebHooks($auth)->GetWebHooksResult;
$same = $list->result->WebHook[0]->id == $id ? "same" : "other";
echo "list {$list->error} ", count($list->result->WebHook), " $same\n";
$a = $client->ActivateWebHook($auth + ['webhookId' => $id, 'replayEvents' => 0])
    ->ActivateWebHookResult;
echo "activate {$a->error} {$a->result->replayedEvents}\n";
$d = $client->DeleteWebHookById($auth + ['webhookId' => $id])->DeleteWebHookByIdResult;
echo "delete {$d->error} ", $d->result == $id ? "same" : "other", "\n";
"""


def test_php_soapclient_with_the_old_wsdl_calls_the_four(make_server, tmp_path):
    php = require_tool("php")
    if "soap" not in subprocess.run([php, "-m"], capture_output=True, text=True).stdout.split():
        message = "php-soap is not installed (apt-get install php-soap; .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    srv = make_server()
    script = tmp_path / "old_wsdl.php"
    script.write_text(PHP)
    done = subprocess.run([php, str(script), str(OLD_WSDL), srv.url, "alice", PASSWORD],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["create 0", "list 0 1 same", "activate 0 0",
                                        "delete 0 same"]
    assert "Warning" not in done.stdout + done.stderr
