"""The service log as an operator reads it: no factory noise per outgoing connection,
SOAPSERVICE_LOG_LEVEL, and SOAPSERVICE_LOG_FORMAT=json (one object a line)."""

from __future__ import annotations

import json
import logging

import requests

from soapservice import logs
from tests.conftest import PASSWORD
from tests.support.receiver import Receiver


def _deliver_three(srv, receiver):
    created = requests.post(f"{srv.url}/json/CreateWebHook", timeout=30, data={
        "username": "alice", "password": PASSWORD, "app": "crm",
        "event": "optin_finalized", "url": receiver.url + "/hook"}).json()
    assert created["error"] == 0, created
    for n in range(3):
        answer = requests.post(f"{srv.url}/events", timeout=30, headers={
            "Authorization": "Bearer test-ingest-token"}, json={
            "account": "alice", "event": "optin_finalized", "data": {"n": n}})
        assert answer.status_code == 202
    receiver.wait_for(lambda: len(receiver.requests) == 3, what="3 deliveries")


def test_deliveries_log_no_factory_lines(make_server):
    with Receiver() as receiver:
        srv = make_server({"SOAPSERVICE_ACCESS_LOG": "off"})
        _deliver_three(srv, receiver)
        srv.stop()
    log = srv.log()
    assert "listening on" in log
    assert "Starting factory" not in log and "Stopping factory" not in log


def test_json_log_is_one_object_a_line(make_server):
    with Receiver() as receiver:
        srv = make_server({"SOAPSERVICE_LOG_FORMAT": "json", "SOAPSERVICE_ACCESS_LOG": "off"})
        _deliver_three(srv, receiver)
        srv.stop()
    lines = srv.log().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert records and all({"time", "level", "logger", "message"} <= r.keys()
                           for r in records)
    messages = [r["message"] for r in records]
    assert any(m.startswith("soapservice ") and " listening on http://127.0.0.1:" in m
               for m in messages)
    assert all(r["time"].endswith("Z") for r in records)


def test_log_level_warning_hides_info(make_server):
    srv = make_server({"SOAPSERVICE_LOG_LEVEL": "warning", "SOAPSERVICE_ACCESS_LOG": "off"})
    srv.stop()
    log = srv.log()
    assert "listening on" in log  # the start line is not a log record in text format
    assert " INFO " not in log


def test_json_formatter_carries_the_exception():
    formatter = logs.JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("now",),
                                   sys.exc_info())
    entry = json.loads(formatter.format(record))
    assert entry["level"] == "error" and entry["message"] == "failed now"
    assert "ValueError: boom" in entry["exception"]


def test_factory_noise_is_shown_at_debug():
    noise = logging.LogRecord("twisted", logging.INFO, __file__, 1,
                              "Starting factory <_HTTP11ClientFactory>", (), None)
    other = logging.LogRecord("twisted", logging.INFO, __file__, 1, "Site starting", (), None)
    assert not logs.QuietFactories(logging.INFO).filter(noise)
    assert logs.QuietFactories(logging.INFO).filter(other)
    assert logs.QuietFactories(logging.DEBUG).filter(noise)
