"""Webhook rows under pressure: a deleted webhook's id is never handed out again
(SQLite would reuse the highest), and concurrent creates respect the account's limit."""

import collections
from concurrent.futures import ThreadPoolExecutor

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


def test_limit_holds_under_concurrent_creates(make_server):
    srv = make_server({"SOAPSERVICE_MAX_WEBHOOKS": "5"})

    def create(i):
        return requests.post(f"{srv.url}/json/CreateWebHook", timeout=60, data={
            "username": "alice", "password": PASSWORD, "app": f"app{i}",
            "event": "optin_finalized", "url": "http://127.0.0.1:9/h"}).json()["error"]

    create(0)  # one good login first, so the others take the cached fast path
    with ThreadPoolExecutor(16) as pool:
        errors = collections.Counter(pool.map(create, range(1, 41)))
    assert errors == {0: 4, 7: 36}
    listed = requests.post(f"{srv.url}/json/GetWebHooks", timeout=30, data={
        "username": "alice", "password": PASSWORD}).json()["result"]
    assert len(listed) == 5 and len({h["id"] for h in listed}) == 5
