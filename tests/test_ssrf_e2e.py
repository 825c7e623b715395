"""SSRF guard end to end: a server started without SOAPSERVICE_ALLOW_PRIVATE_TARGETS
refuses internal targets with error 4 over SOAP (and JSON) and stores nothing;
SOAPSERVICE_ALLOWED_TARGET_CIDRS opens exactly one range."""

import pytest
import requests
import zeep

from tests.conftest import PASSWORD, Server
from tests.support.server import server_fixture

REFUSED = [
    "http://127.0.0.1:8080/hook", "http://2130706433/", "http://0x7f.1/",
    "http://0177.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://[::1]/",
    "http://0.0.0.0/", "http://169.254.169.254/latest/meta-data/", "http://localhost/",
    "http://api.localhost:9000/", "http://10.0.0.1/", "http://192.168.1.1/",
    "http://[fd00::1]/", "http://[64:ff9b::7f00:1]/", "http://[fe80::1]/",
    "http://127.0.0.2/",
]


def guarded_server(tmp_path, extra_env=None):
    srv = Server(tmp_path, extra_env)
    del srv.env["SOAPSERVICE_ALLOW_PRIVATE_TARGETS"]  # the default an operator gets
    srv.add_account("alice")
    return srv.start()


@server_fixture(scope="module")
def guarded(tmp_path_factory):
    srv = guarded_server(tmp_path_factory.mktemp("guarded"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(guarded):
    return zeep.Client(guarded.url + "/soap?wsdl")


@pytest.mark.parametrize("url", REFUSED)
def test_internal_target_refused_over_soap(client, url):
    answer = client.service.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized", url)
    assert answer.error == 4, answer.message
    assert answer.result is None
    assert "refused address" in answer.message or "loopback" in answer.message
    assert client.service.GetWebHooks("alice", PASSWORD).result is None


def test_internal_target_refused_over_soap12_and_json(guarded):
    soap12 = zeep.Client(guarded.url + "/soap12?wsdl")
    answer = soap12.service.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                          "http://0x7f.1/")
    assert answer.error == 4
    json_answer = requests.post(guarded.url + "/json/CreateWebHook", json={
        "username": "alice", "password": PASSWORD, "app": "crm",
        "event": "optin_finalized", "url": "http://[::ffff:169.254.169.254]/"}).json()
    assert json_answer["error"] == 4 and "result" not in json_answer


def test_public_address_accepted(client):
    answer = client.service.CreateWebHook("alice", PASSWORD, "crm", "optin_finalized",
                                          "https://93.184.216.34/hook")
    assert answer.error == 0, answer.message
    hooks = client.service.GetWebHooks("alice", PASSWORD).result.WebHook
    assert [h.url for h in hooks] == ["https://93.184.216.34/hook"]
    assert client.service.DeleteWebHookById("alice", PASSWORD, answer.result.id).error == 0


@pytest.mark.server  # starts its own server
def test_allowed_cidr_opens_a_single_range(tmp_path):
    srv = guarded_server(tmp_path, {"SOAPSERVICE_ALLOWED_TARGET_CIDRS": "127.0.0.1/32"})
    try:
        client = zeep.Client(srv.url + "/soap?wsdl")

        def create(url):
            return client.service.CreateWebHook("alice", PASSWORD, "crm",
                                                "optin_finalized", url)
        assert create("http://127.0.0.1:9/hook").error == 0
        assert create("http://[::ffff:127.0.0.1]:9/hook").error == 0
        for url in ("http://127.0.0.2/", "http://[::1]/", "http://10.0.0.1/",
                    "http://169.254.169.254/"):
            assert create(url).error == 4, url
        urls = [h.url for h in client.service.GetWebHooks("alice", PASSWORD).result.WebHook]
        assert urls == ["http://127.0.0.1:9/hook", "http://[::ffff:127.0.0.1]:9/hook"]
    finally:
        srv.stop()


@pytest.mark.server  # starts its own server
def test_bad_cidr_setting_stops_the_server_with_a_clear_message(tmp_path):
    srv = Server(tmp_path, {"SOAPSERVICE_ALLOWED_TARGET_CIDRS": "10.0.0.0/99"})
    with pytest.raises(RuntimeError, match="SOAPSERVICE_ALLOWED_TARGET_CIDRS"):
        srv.start()
    srv.stop()
