"""A full disk under a running server (its SQLite store on a small tmpfs that the test
fills): refused requests get 503 (events) or error 99 (API), /healthz says the store
cannot write, the log has one line with the real cause for the whole episode and one
when it is over, no traceback, and events are stored again once there is room."""

import os
import subprocess

import pytest
import requests

from tests.conftest import PASSWORD, Server

TOKEN = {"Authorization": "Bearer test-ingest-token"}


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode()[:100]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_clear_episode(tmp_path, small_disk):
    (tmp_path / "server").mkdir()
    srv = Server(tmp_path / "server")
    srv.db_path = small_disk / "soapservice.db"
    srv.env["SOAPSERVICE_DATABASE_URL"] = f"sqlite:///{srv.db_path}"
    srv.add_account("alice")
    srv.start()

    def event():
        return requests.post(srv.url + "/events", headers=TOKEN, timeout=10, json={
            "account": "alice", "event": "optin_finalized",
            "data": {"subscriber_id": 1, "x": "y" * 1000}})

    try:
        assert event().status_code == 202
        filler = small_disk / "filler"
        with open(filler, "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        refused = [event() for _ in range(100)]
        assert {r.status_code for r in refused} == {503}
        assert refused[0].headers["retry-after"] == "5"
        create = requests.post(srv.url + "/json/CreateWebHook", timeout=10, data={
            "username": "alice", "password": PASSWORD, "app": "a",
            "event": "optin_finalized", "url": "http://127.0.0.1:9/h"}).json()
        assert create["error"] == 99 and "store" in create["message"]
        health = requests.get(srv.url + "/healthz", timeout=10)
        assert health.status_code == 503
        assert health.text == "store cannot write: database or disk is full\n"
        os.unlink(filler)
        assert event().status_code == 202
        assert requests.get(srv.url + "/healthz", timeout=10).status_code == 200
    finally:
        srv.stop()
    log = srv.log()
    assert log.count("store: database or disk is full") == 1
    assert log.count("store: works again after") == 1
    assert "Traceback" not in log and "cannot rollback" not in log
