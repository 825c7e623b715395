"""Error 99 as a client sees it: an envelope carrying a reference, no internals, the
details in the log under that reference, and the server serving on afterwards."""

import re
import sqlite3

import requests
import zeep

from tests.conftest import PASSWORD


def test_store_failure_is_error_99_with_a_reference(make_server):
    srv = make_server()
    client = zeep.Client(srv.url + "/soap?wsdl")
    created = client.service.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                           "http://127.0.0.1:9/h")
    assert created.error == 0

    def break_store(old, new):
        with sqlite3.connect(srv.db_path) as db:
            db.execute(f"ALTER TABLE {old} RENAME TO {new}")

    break_store("webhook", "webhook_away")
    try:
        answers = [client.service.GetWebHooks("alice", PASSWORD),
                   client.service.DeleteWebHookById("alice", PASSWORD, created.result.id)]
        json_answer = requests.post(srv.url + "/json/GetWebHooks", timeout=30, data={
            "username": "alice", "password": PASSWORD}).json()
    finally:
        break_store("webhook_away", "webhook")
    for answer in [*answers, json_answer]:
        error, message = ((answer["error"], answer["message"]) if isinstance(answer, dict)
                          else (answer.error, answer.message))
        assert error == 99
        match = re.fullmatch(r"Internal error \(reference ([0-9a-f]{12})\)", message)
        assert match, message
        assert f"reference {match.group(1)}" in srv.log()
    assert "no such table" in srv.log()  # the details are in the log, not the answer
    listed = client.service.GetWebHooks("alice", PASSWORD)
    assert listed.error == 0 and [h.id for h in listed.result.WebHook] == [created.result.id]
