"""The legacy drop-in (issue 8): ``/webservice/webservice/soap3`` (rpc/encoded, answers as
Apache maps) and ``/webservice/webservice/json/<operation>``, as the legacy platform's
customers call them: PHP ``SoapClient`` positionally, reading arrays; suds; form posts.

One server for the module (each test uses its own ``app`` names or account).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
import requests
import suds.client
from lxml import etree

from soapservice.legacy.protocol import Call, render_response
from soapservice.legacy.wsdl import PATH, legacy_wsdl
from soapservice.operations import BY_NAME as OPERATIONS
from soapservice.operations import parameter_names
from tests.conftest import PASSWORD, ROOT, Server, require_tool, soapservice
from tests.support.server import server_fixture

EVENTS = ("optin_finalized", "optout_finalized", "profilemanager_finalized")
COMMITTED_WSDL = ROOT / "wsdl" / "legacy-soap3.wsdl"
DEFAULT_ADDRESS = "http://127.0.0.1:8080"
LIMIT = 30


@server_fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("legacy"), {"SOAPSERVICE_MAX_WEBHOOKS": str(LIMIT)})
    for user in ("alice", "bob", "carol"):
        server.add_account(user)
    server.start()
    yield server
    server.stop()


def unique(prefix="app") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def json_call(srv, operation, **params):
    answer = requests.post(f"{srv.url}/json/{operation}", data=params)
    assert answer.status_code == 200
    return answer.json()


def soap(srv, body: str, action='""', **headers):
    envelope = ('<?xml version="1.0" encoding="UTF-8"?>'
                '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" '
                'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
                'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                'xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/" '
                'xmlns:ns1="urn:example:anything">'
                f'<SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>')
    headers = {"Content-Type": "text/xml; charset=utf-8", **headers}
    if action is not None:
        headers["SOAPAction"] = action
    return requests.post(srv.url + PATH, data=envelope.encode(), headers=headers)


# -- WSDL -----------------------------------------------------------------------------

def test_committed_wsdl_matches_generated_and_served(srv):
    """``make wsdl`` regenerates wsdl/legacy-soap3.wsdl; the served one is the same."""
    committed = COMMITTED_WSDL.read_bytes()
    assert legacy_wsdl(DEFAULT_ADDRESS + PATH) == committed, "run `make wsdl`"
    served = requests.get(srv.url + PATH + "?wsdl")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/xml")
    assert served.content.replace(srv.url.encode(), DEFAULT_ADDRESS.encode()) == committed
    assert requests.get(srv.url + PATH + "?WSDL").content == served.content
    printed = soapservice("wsdl", "--legacy", "--base-url", DEFAULT_ADDRESS).stdout
    assert printed.encode() == committed


def test_wsdl_is_derived_from_the_service_definition():
    root = etree.parse(str(COMMITTED_WSDL)).getroot()
    ns = {"w": "http://schemas.xmlsoap.org/wsdl/", "s": "http://schemas.xmlsoap.org/wsdl/soap/"}
    assert [o.get("name") for o in root.findall("w:portType/w:operation", ns)] == list(
        OPERATIONS)
    for operation in OPERATIONS:
        parts = root.findall(f"w:message[@name='{operation}Request']/w:part", ns)
        assert [p.get("name") for p in parts] == parameter_names(operation)
        assert [p.get("name") for p in parts][:2] == ["username", "password"]
        answer = root.findall(f"w:message[@name='{operation}Response']/w:part", ns)
        assert [(p.get("name"), p.get("type")) for p in answer] == [("return",
                                                                     "apachesoap:Map")]
    assert {b.get("use") for b in root.iterfind(".//s:body", ns)} == {"encoded"}
    assert root.find("w:binding/s:binding", ns).get("style") == "rpc"


@pytest.mark.server  # starts its own server
def test_wsdl_names_public_url(tmp_path):
    server = Server(tmp_path, {"SOAPSERVICE_PUBLIC_URL": "https://hooks.example.com"}).start()
    try:
        wsdl = requests.get(server.url + PATH + "?wsdl", headers={"Host": "evil.example"}).text
    finally:
        server.stop()
    assert f'location="https://hooks.example.com{PATH}"' in wsdl
    assert "evil.example" not in wsdl


# -- PHP SoapClient ---------------------------------------------------------------------

def run_php(tmp_path, code: str, *args):
    php = require_tool("php")
    check = subprocess.run([php, "-r", "echo extension_loaded('soap') ? 'yes' : 'no';"],
                           capture_output=True, text=True, timeout=30)
    if check.stdout.strip() != "yes":
        message = "PHP's soap extension is not installed (apt-get install php-soap)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    script = tmp_path / f"client-{uuid.uuid4().hex[:6]}.php"
    script.write_text("<?php\nerror_reporting(E_ALL);\n"
                      "set_error_handler(function ($n, $s) { throw new ErrorException($s); });\n"
                      + code)
    done = subprocess.run([php, str(script), *map(str, args)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


PHP_ISSUE_STYLE = r"""
[$base, $username, $password, $app, $url] = array_slice($argv, 1);
function shape($value) {
    // What PHP decoded: arrays all the way down (lists as lists), never stdClass.
    if (is_object($value)) { return 'object'; }
    if (!is_array($value)) { return gettype($value); }
    return array_is_list($value) && $value !== [] ? 'list' : 'array';
}
$client = new SoapClient($base . '/webservice/webservice/soap3?wsdl',
                         ['soap_version' => SOAP_1_1, 'cache_wsdl' => WSDL_CACHE_NONE]);
$out = [];
$result = $client->CreateWebHook($username, $password, $app, 'optin_finalized', $url);
if (empty($result['error'])) { $id = $result['result']['id']; } else { $id = null; }
$out['create'] = ['shape' => shape($result), 'result_shape' => shape($result['result']),
                  'error' => $result['error'], 'message' => $result['message'], 'id' => $id,
                  'result' => $result['result']];
$one = $client->GetWebHooks($username, $password, $app);
$out['list_one'] = ['shape' => shape($one['result']), 'item_shape' => shape($one['result'][0]),
                    'ids' => array_map(fn ($h) => $h['id'], $one['result'])];
$second = $client->CreateWebHook($username, $password, $app, 'optout_finalized', $url);
$several = $client->GetWebHooks($username, $password, $app);
$out['list_several'] = ['shape' => shape($several['result']),
                        'ids' => array_map(fn ($h) => $h['id'], $several['result']),
                        'second' => $second['result']['id']];
$all = $client->GetWebHooks($username, $password);
$out['all_ids'] = array_map(fn ($h) => $h['id'], $all['result']);
$by_event = $client->GetWebHooks($username, $password, $app, 'optout_finalized');
$out['by_event'] = array_map(fn ($h) => $h['event'], $by_event['result']);
$activated = $client->ActivateWebHook($username, $password, $id, 1);
$out['activate'] = ['error' => $activated['error'], 'active' => $activated['result']['active'],
                    'replayed' => $activated['result']['replayedEvents']];
$out['activate_default'] = $client->ActivateWebHook($username, $password, $id)['error'];
$deleted = $client->DeleteWebHookById($username, $password, $id);
$out['delete'] = ['error' => $deleted['error'], 'result' => $deleted['result']];
$client->DeleteWebHookById($username, $password, $second['result']['id']);
$none = $client->GetWebHooks($username, $password, $app);
$out['list_none'] = ['error' => $none['error'], 'result' => $none['result']];
echo json_encode($out);
"""


def test_php_wsdl_mode_as_in_the_issue(srv, tmp_path):
    app, url = unique("crm-sync"), "http://127.0.0.1:9/hook"
    out = run_php(tmp_path, PHP_ISSUE_STYLE, srv.url, "alice", PASSWORD, app, url)
    create = out["create"]
    assert (create["shape"], create["result_shape"]) == ("array", "array")
    assert (create["error"], create["message"]) == (0, "OK")
    hook = create["result"]
    assert isinstance(hook["id"], int) and hook["id"] == create["id"]
    assert (hook["app"], hook["event"], hook["url"], hook["active"]) == (
        app, "optin_finalized", url, True)
    assert hook["failureCount"] == 0 and hook["bufferedEvents"] == 0
    assert hook["deactivatedAt"] is None and hook["secret"].startswith("whsec_")
    assert hook["created"].endswith("Z")
    assert out["list_one"] == {"shape": "list", "item_shape": "array", "ids": [hook["id"]]}
    several = out["list_several"]
    assert several["shape"] == "list"
    assert sorted(several["ids"]) == sorted([hook["id"], several["second"]])
    assert {hook["id"], several["second"]} <= set(out["all_ids"])
    assert out["by_event"] == ["optout_finalized"]
    assert out["activate"] == {"error": 0, "active": True, "replayed": 0}
    assert out["activate_default"] == 0
    assert out["delete"] == {"error": 0, "result": hook["id"]}
    assert out["list_none"] == {"error": 0, "result": []}


PHP_ERRORS = r"""
[$base, $mode] = array_slice($argv, 1, 2);
$cases = json_decode($argv[3], true);
$client = $mode === 'wsdl'
    ? new SoapClient($base . '/webservice/webservice/soap3?wsdl',
                     ['soap_version' => SOAP_1_1, 'cache_wsdl' => WSDL_CACHE_NONE])
    : new SoapClient(null, ['location' => $base . '/webservice/webservice/soap3',
                            'uri' => 'urn:soapservice:webhooks:1']);
$out = [];
foreach ($cases as [$operation, $args]) {
    $result = $client->$operation(...$args);
    $out[] = ['is_array' => is_array($result), 'keys' => array_keys($result),
              'error' => $result['error'], 'message' => $result['message']];
}
echo json_encode($out);
"""


def _error_cases(srv):
    hook = json_call(srv, "CreateWebHook", username="bob", password=PASSWORD, app=unique(),
                     event="optin_finalized", url="http://127.0.0.1:9/x")["result"]
    url = "http://127.0.0.1:9/x"
    return [
        ("CreateWebHook", ["bob", "wrong", "a", "optin_finalized", url], 1),
        ("CreateWebHook", ["nobody", PASSWORD, "a", "optin_finalized", url], 1),
        ("CreateWebHook", ["bob", PASSWORD, "", "optin_finalized", url], 2),
        ("CreateWebHook", ["bob", PASSWORD, "a", "bounce", url], 3),
        ("CreateWebHook", ["bob", PASSWORD, "a", "optin_finalized", "ftp://127.0.0.1/x"], 4),
        ("GetWebHooks", ["bob", PASSWORD, "", "bounce"], 3),
        ("ActivateWebHook", ["bob", PASSWORD, 999999, 0], 5),
        ("ActivateWebHook", ["bob", PASSWORD, hook["id"], 2], 6),
        ("DeleteWebHookById", ["bob", PASSWORD, 999999], 5),
        ("DeleteWebHookById", ["alice", PASSWORD, hook["id"]], 5),  # another account's
    ]


@pytest.mark.parametrize("mode", ["wsdl", "non-wsdl"])
def test_php_error_codes_match_the_other_endpoints(srv, tmp_path, mode):
    cases = _error_cases(srv)
    out = run_php(tmp_path, PHP_ERRORS, srv.url, mode,
                  json.dumps([[op, args] for op, args, _ in cases]))
    for (operation, args, error), got in zip(cases, out, strict=True):
        assert got["is_array"] and got["keys"] == ["error", "message"], (operation, got)
        assert got["error"] == error, (operation, args, got)
        names = {"CreateWebHook": ["app", "event", "url"], "GetWebHooks": ["app", "event"],
                 "ActivateWebHook": ["webhookId", "replayEvents"],
                 "DeleteWebHookById": ["webhookId"]}[operation]
        params = dict(zip(["username", "password", *names], args, strict=True))
        assert got["message"] == json_call(srv, operation, **params)["message"]


PHP_NON_WSDL = r"""
[$base, $username, $password, $app] = array_slice($argv, 1);
$client = new SoapClient(null, ['location' => $base . '/webservice/webservice/soap3',
                                'uri' => 'urn:soapservice:webhooks:1',
                                'soap_version' => SOAP_1_1]);
$out = [];
$a = $client->CreateWebHook($username, $password, $app, 'optin_finalized', 'http://127.0.0.1:9/a');
$out['one'] = $client->GetWebHooks($username, $password, $app)['result'];
$b = $client->__soapCall('CreateWebHook',
                         [$username, $password, $app, 'profilemanager_finalized', 'https://127.0.0.1/b']);
$out['several'] = $client->GetWebHooks($username, $password, $app)['result'];
$out['activate_bool'] = $client->ActivateWebHook($username, $password, $a['result']['id'], true);
$out['activate_string'] = $client->ActivateWebHook($username, $password,
                                                   (string) $b['result']['id'], '0');
$out['delete'] = $client->DeleteWebHookById($username, $password, $a['result']['id']);
$out['after'] = $client->GetWebHooks($username, $password, $app)['result'];
$out['ids'] = [$a['result']['id'], $b['result']['id']];
try {
    $client->DropAllWebHooks($username, $password);
    $out['fault'] = null;
} catch (SoapFault $fault) {
    $out['fault'] = [$fault->faultcode, $fault->getMessage()];
}
echo json_encode($out);
"""


def test_php_non_wsdl_mode(srv, tmp_path):
    app = unique()
    out = run_php(tmp_path, PHP_NON_WSDL, srv.url, "alice", PASSWORD, app)
    first, second = out["ids"]
    assert [h["id"] for h in out["one"]] == [first]
    assert sorted(h["id"] for h in out["several"]) == sorted([first, second])
    assert {h["event"] for h in out["several"]} == {"optin_finalized", "profilemanager_finalized"}
    assert out["activate_bool"]["error"] == 0 and out["activate_bool"]["result"]["active"]
    assert out["activate_string"]["error"] == 0
    assert out["delete"] == {"error": 0, "message": "OK", "result": first}
    assert [h["id"] for h in out["after"]] == [second]
    code, message = out["fault"]
    assert code == "SOAP-ENV:Client" and "unknown operation 'DropAllWebHooks'" in message


def test_php_limit_reached(srv, tmp_path):
    code = r"""
    [$base, $password, $limit] = array_slice($argv, 1);
    $client = new SoapClient($base . '/webservice/webservice/soap3?wsdl',
                             ['cache_wsdl' => WSDL_CACHE_NONE]);
    $errors = [];
    for ($i = 0; $i <= $limit; $i++) {
        $errors[] = $client->CreateWebHook('carol', $password, "app$i", 'optin_finalized',
                                           'http://127.0.0.1:9/x')['error'];
    }
    echo json_encode($errors);
    """
    assert run_php(tmp_path, code, srv.url, PASSWORD, LIMIT) == [0] * LIMIT + [7]


# -- suds ----------------------------------------------------------------------------------

def as_python(value):
    """A suds Map (``item[]`` of key/value) as dicts and lists, as PHP sees it."""
    if hasattr(value, "item") and all(hasattr(i, "key") for i in value.item):
        return {i.key: as_python(getattr(i, "value", None)) for i in value.item}
    if isinstance(value, list):
        return [as_python(v) for v in value]
    return value


def test_suds_against_the_same_wsdl(srv):
    client = suds.client.Client(srv.url + PATH + "?wsdl", cache=None)
    app, service = unique(), client.service
    created = as_python(service.CreateWebHook("alice", PASSWORD, app, "optin_finalized",
                                              "http://127.0.0.1:9/s"))
    assert created["error"] == 0 and created["result"]["app"] == app
    hook_id = created["result"]["id"]
    one = as_python(service.GetWebHooks("alice", PASSWORD, app))["result"]
    assert [h["id"] for h in one] == [hook_id]
    second = as_python(service.CreateWebHook("alice", PASSWORD, app, "optout_finalized",
                                             "http://127.0.0.1:9/s"))["result"]["id"]
    several = as_python(service.GetWebHooks("alice", PASSWORD, app))["result"]
    assert sorted(h["id"] for h in several) == sorted([hook_id, second])
    activated = as_python(service.ActivateWebHook("alice", PASSWORD, hook_id, 1))
    assert activated["error"] == 0 and activated["result"]["replayedEvents"] == 0
    assert as_python(service.DeleteWebHookById("alice", PASSWORD, hook_id))["result"] == hook_id
    assert as_python(service.DeleteWebHookById("alice", PASSWORD, hook_id))["error"] == 5
    assert as_python(service.CreateWebHook("alice", "wrong", app, "optin_finalized",
                                           "http://127.0.0.1:9/s")) == {
        "error": 1, "message": "Authentication failed"}


# -- other toolkits' requests, faults ---------------------------------------------------------

def _listed(srv, user, app):
    return [h["id"] for h in json_call(srv, "GetWebHooks", username=user, password=PASSWORD,
                                       app=app)["result"]]


@pytest.mark.parametrize("action", ['"urn:soapservice:webhooks:1#CreateWebHook"',
                                    "urn:soapservice:webhooks:1#CreateWebHook", '""', None])
def test_untyped_named_parts_and_any_soapaction(srv, action):
    app = unique()
    answer = soap(srv, f'<ns1:CreateWebHook><username>alice</username>'
                       f'<password>{PASSWORD}</password><app>{app}</app>'
                       '<event>optin_finalized</event><url>http://127.0.0.1:9/u</url>'
                       '</ns1:CreateWebHook>', action=action)
    assert answer.status_code == 200, answer.text
    assert "<ns1:CreateWebHookResponse>" in answer.text
    assert 'xmlns:ns1="urn:example:anything"' in answer.text  # answered in the caller's ns
    assert 'xmlns:ns2="http://xml.apache.org/xml-soap"' in answer.text
    assert '<return xsi:type="ns2:Map">' in answer.text
    assert len(_listed(srv, "alice", app)) == 1


def test_typed_positional_parts_nil_and_multiref(srv):
    app = unique()
    # Parts in order but named as some toolkits do (c-gensym), the app by reference.
    answer = soap(srv, '<ns1:CreateWebHook SOAP-ENV:encodingStyle='
                       '"http://schemas.xmlsoap.org/soap/encoding/">'
                       '<c-gensym1 xsi:type="xsd:string">alice</c-gensym1>'
                       f'<c-gensym2 xsi:type="xsd:string">{PASSWORD}</c-gensym2>'
                       '<c-gensym3 href="#id0"/>'
                       '<c-gensym4 xsi:type="xsd:string">optin_finalized</c-gensym4>'
                       '<c-gensym5 xsi:type="xsd:string">http://127.0.0.1:9/m</c-gensym5>'
                       '</ns1:CreateWebHook>'
                       f'<multiRef id="id0" xsi:type="xsd:string">{app}</multiRef>')
    assert answer.status_code == 200, answer.text
    assert len(_listed(srv, "alice", app)) == 1
    # Optional filter sent as xsi:nil by PHP's WSDL mode: no filter.
    listed = soap(srv, '<ns1:GetWebHooks><param0>alice</param0>'
                       f'<param1>{PASSWORD}</param1><param2 xsi:nil="true"/>'
                       '<param3 xsi:type="xsd:string">optin_finalized</param3></ns1:GetWebHooks>')
    assert listed.status_code == 200 and app in listed.text
    missing = soap(srv, f'<ns1:CreateWebHook><username>alice</username>'
                        f'<password>{PASSWORD}</password><app>{app}</app>'
                        '<url>http://127.0.0.1/</url></ns1:CreateWebHook>')
    assert missing.status_code == 200
    assert "Missing required parameter: event" in missing.text


XXE = ('<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
       '<SOAP-ENV:Body><CreateWebHook><username>alice</username><password>'
       + PASSWORD + '</password><app>&x;</app><event>optin_finalized</event>'
       '<url>http://127.0.0.1:9/</url></CreateWebHook></SOAP-ENV:Body></SOAP-ENV:Envelope>')
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
          + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'
                    for i in range(8))
          + ']><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
          '<SOAP-ENV:Body><GetWebHooks><username>&i;</username></GetWebHooks>'
          '</SOAP-ENV:Body></SOAP-ENV:Envelope>')


@pytest.mark.parametrize("body, words", [
    (b"not xml at all", "malformed XML"),
    (b"<SOAP-ENV:Envelope", "malformed XML"),
    (b"", "empty"),
    (b'<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"><Body/></Envelope>',
     "not a SOAP 1.1 envelope"),
    (b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
     b'<DropAllWebHooks/></e:Body></e:Envelope>', "unknown operation 'DropAllWebHooks'"),
    (b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
     b'<GetWebHooks><username><b>x</b></username></GetWebHooks></e:Body></e:Envelope>',
     "must be a simple value"),
    (XXE.encode(), "DTD"),
    (b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
     + b"<a>" * 5000 + b"</a>" * 5000 + b"</e:Body></e:Envelope>", "malformed XML"),
    (LAUGHS.encode(), ""),
])
def test_bad_requests_get_client_faults_and_write_nothing(srv, body, words):
    before = _listed(srv, "alice", "")
    answer = requests.post(srv.url + PATH, data=body, headers={"Content-Type": "text/xml"})
    assert answer.status_code == 500
    assert "<faultcode>SOAP-ENV:Client</faultcode>" in answer.text
    assert words in answer.text
    assert "root:" not in answer.text
    assert _listed(srv, "alice", "") == before
    assert requests.get(srv.url + "/healthz").status_code == 200


def test_text_that_xml_cannot_carry_is_replaced_not_fatal():
    # The API refuses such values (error 6); should one be stored anyway, every answer
    # listing it must still be well-formed XML.
    call = Call("GetWebHooks", "urn:x")
    rendered = render_response(call, {"error": 0, "message": "OK",
                                      "result": [{"app": "odd\x01<&>\ufffe\ud800"}]})
    values = etree.fromstring(rendered).xpath("//value/item/item/value/text()")
    assert values == ["odd\ufffd<&>\ufffd\ufffd"]


def test_must_understand_header_is_refused(srv):
    body = ('<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Header>'
            '<t:Tx xmlns:t="urn:t" e:mustUnderstand="1">5</t:Tx></e:Header><e:Body>'
            '<GetWebHooks><username>alice</username></GetWebHooks></e:Body></e:Envelope>')
    answer = requests.post(srv.url + PATH, data=body, headers={"Content-Type": "text/xml"})
    assert answer.status_code == 500
    assert "<faultcode>SOAP-ENV:MustUnderstand</faultcode>" in answer.text


def test_oversized_body_is_refused_before_reading(srv):
    answer = requests.post(srv.url + PATH, data=b"x" * (1024 * 1024 + 1),
                           headers={"Content-Type": "text/xml"})
    assert answer.status_code == 413


# -- the legacy JSON layout -----------------------------------------------------------------

def test_legacy_json_layout_with_form_posts(srv):
    base, app = srv.url + "/webservice/webservice/json/", unique()
    auth = {"username": "alice", "password": PASSWORD}
    created = requests.post(base + "createwebhook", data={
        **auth, "app": app, "event": "optin_finalized", "url": "http://127.0.0.1:9/j"})
    assert created.status_code == 200
    assert created.headers["content-type"].startswith("application/json")
    hook = created.json()["result"]
    assert created.json()["error"] == 0 and hook["app"] == app
    listed = requests.post(base + "getwebhooks", data={**auth, "app": app}).json()
    assert [h["id"] for h in listed["result"]] == [hook["id"]]
    activated = requests.post(base + "activatewebhook",
                              data={**auth, "webhookId": hook["id"], "replayEvents": "1"}).json()
    assert activated["error"] == 0 and activated["result"]["replayedEvents"] == 0
    assert requests.post(base + "activatewebhook", data={
        **auth, "webhookId": hook["id"], "replayEvents": "2"}).json()["error"] == 6
    deleted = requests.post(base + "deletewebhookbyid", data={**auth, "webhookId": hook["id"]})
    assert deleted.json() == {"error": 0, "message": "OK", "result": hook["id"]}
    assert requests.post(base + "getwebhooks", data={**auth, "app": app}).json()["result"] == []
    assert requests.post(base + "getwebhooks", data={"username": "alice", "password": "x"}
                         ).json() == {"error": 1, "message": "Authentication failed"}
    assert requests.post(base + "dropallwebhooks", data=auth).status_code == 404
