"""A deleted webhook's id is never handed out again (SQLite would reuse the highest)."""

import requests

from tests.conftest import PASSWORD


def test_ids_are_not_reused_after_delete(server):
    def call(operation, **params):
        return requests.post(f"{server.url}/json/{operation}", timeout=30, data={
            "username": "alice", "password": PASSWORD, **params}).json()

    hook = dict(app="crm", event="optin_finalized", url="http://127.0.0.1:9/h")
    first = call("CreateWebHook", **hook)["result"]["id"]
    assert call("DeleteWebHookById", webhookId=first)["error"] == 0
    second = call("CreateWebHook", **hook)["result"]["id"]
    assert second > first
    # A client still holding the old id reaches nothing.
    assert call("DeleteWebHookById", webhookId=first)["error"] == 5
    assert [h["id"] for h in call("GetWebHooks")["result"]] == [second]
