"""The sample code the Web Service Demo generates, taken from the page and run as
written (php, python with zeep, sh with curl): it must do the same call."""

from __future__ import annotations

import pytest
import requests
import zeep

from tests.browser import screenshot, wait_for
from tests.conftest import PASSWORD, require_tool
from tests.demo_page import fill, hooks, open_demo, run, run_code, sample_for, shown

# Quotes, backslashes, shell and PHP variables, non-ASCII: the samples must carry them as
# typed, in every language's quoting.
TRICKY = "it's \"quoted\" $HOME {$x} `id` \\ \\n Müller ✓"


@pytest.fixture
def server(make_server):
    """A running server with the one account these tests use (one scrypt hash less)."""
    return make_server()



def test_php_sample_of_each_operation_does_the_same_call(server, browser, tmp_path):
    require_tool("php")
    driver = browser
    app = TRICKY + " php"
    code = sample_for(driver, server, "CreateWebHook", "php", app=app,
                      event="profilemanager_finalized", url="http://127.0.0.1:9/php")
    assert "SOAP_SINGLE_ELEMENT_ARRAYS" in code and "->CreateWebHookResult" in code
    out = run_code(tmp_path, "php", code)
    (hook,) = hooks(server, app=app)
    assert (hook.event, hook.url) == ("profilemanager_finalized", "http://127.0.0.1:9/php")
    assert f"[id] => {hook.id}" in out

    out = run_code(tmp_path, "php", sample_for(driver, server, "GetWebHooks", "php",
                                               event="profilemanager_finalized"))
    assert f"[id] => {hook.id}" in out and "[WebHook] => Array" in out

    out = run_code(tmp_path, "php", sample_for(driver, server, "ActivateWebHook", "php",
                                               webhookId=hook.id, replayEvents="1"))
    assert "[replayedEvents] => 0" in out and "[active] => 1" in out

    run_code(tmp_path, "php", sample_for(driver, server, "DeleteWebHookById", "php",
                                         webhookId=hook.id))
    assert hooks(server) == []


def test_reactivation_from_the_page_replays_and_from_php_discards(make_server, browser,
                                                                  tmp_path):
    """Two webhooks deactivated by a failing receiver, each with one buffered event:
    the PHP sample with replayEvents=0 drops its event, the page with 1 sends it."""
    from tests.support.receiver import Receiver
    require_tool("php")
    answer = {"status": 503}
    with Receiver(lambda request: answer["status"]) as receiver:
        server = make_server({"SOAPSERVICE_RETRY_SCHEDULE": "0.1,0.1"})
        client = zeep.Client(server.url + "/soap?wsdl")
        ids = {}
        for event in ("optin_finalized", "optout_finalized"):
            ids[event] = client.service.CreateWebHook(
                "alice", PASSWORD, "shop", event, f"{receiver.url}/{event}").result.id
            accepted = requests.post(  # the HTTP ingest wakes the delivery loop at once
                server.url + "/events", headers={"Authorization": "Bearer test-ingest-token"},
                json={"account": "alice", "event": event,
                      "data": {"subscriber_id": 7, "event": event}})
            assert accepted.status_code == 202, accepted.text
        wait_for(lambda: [(h.active, h.bufferedEvents) for h in hooks(server)]
                 == [(False, 1), (False, 1)], timeout=60, message="both webhooks deactivated")
        answer["status"] = 200

        out = run_code(tmp_path, "php", sample_for(
            browser, server, "ActivateWebHook", "php", webhookId=ids["optout_finalized"],
            replayEvents="0"))
        assert "[replayedEvents] => 0" in out and "[active] => 1" in out

        open_demo(browser, server, "ActivateWebHook")
        fill(browser, username="alice", password=PASSWORD, webhookId=ids["optin_finalized"],
             replayEvents="1")
        assert "error 0" in run(browser)
        record = shown(browser, "result-value")
        assert "replayedEvents 1" in record and "active true" in record
        screenshot(browser, "demo-activate-replay")
        receiver.wait_for(lambda: receiver.delivered("/optin_finalized") == [
            {"subscriber_id": 7, "event": "optin_finalized"}], what="the replayed event")
        assert receiver.delivered("/optout_finalized") == []  # discarded, never sent
        assert [(h.active, h.bufferedEvents) for h in hooks(server)] == [(True, 0), (True, 0)]


def test_python_and_curl_samples_do_the_same_call(server, browser, tmp_path):
    require_tool("curl")
    for language in ("python", "curl", "json"):
        app = f"{TRICKY} {language}"
        url = f"http://127.0.0.1:9/{language}?a='b'&c"
        code = sample_for(browser, server, "CreateWebHook", language, app=app,
                          event="optin_finalized", url=url)
        run_code(tmp_path, language, code)
        (hook,) = hooks(server, app=app)
        assert (hook.event, hook.url) == ("optin_finalized", url), language
