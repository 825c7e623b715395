"""No secret in any log line, whatever the client sends, against a real server: one
marker string sent as a password, a username, a query name without ``=``, path text
after ``/json/<op>/``, an unknown path or operation, a value Spyne cannot cast, a
Referer (with a reactivation token or a query), a bearer token, an account name."""

import requests

from tests.conftest import PASSWORD, Server

S = "S3CRETxyz42"
SOAP = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:w="urn:soapservice:webhooks:1"><soap:Body>{}</soap:Body></soap:Envelope>')
ACTIVATE = (f"<w:ActivateWebHook><w:username>alice</w:username><w:password>{PASSWORD}"
            f"</w:password><w:webhookId>{S}</w:webhookId></w:ActivateWebHook>")


def test_the_marker_reaches_no_log_line(tmp_path):
    srv = Server(tmp_path)
    srv.add_account("alice")
    srv.start()
    u = srv.url

    def soap(body, path="/soap"):
        return requests.post(u + path, data=SOAP.format(body), timeout=10,
                             headers={"Content-Type": "text/xml; charset=utf-8"})

    try:
        for path in (f"/json/GetWebHooks?{S}", f"/json/GetWebHooks?{S}=1",
                     f"/json/GetWebHooks?username=alice&password={S}",
                     f"/json/GetWebHooks/{S}", f"/json/{S}", f"/{S}", f"/static/{S}",
                     f"/webservice/webservice/json/{S}", f"/demo/{S}", f"/reactivate/{S}"):
            requests.get(u + path, timeout=10)
        for referer in (f"{u}/reactivate/{S}", f"{u}/json/GetWebHooks?password={S}",
                        f"{u}/{S}", S):
            requests.get(u + "/soap?wsdl", headers={"Referer": referer}, timeout=10)
        cast = soap(ACTIVATE)
        assert "Could not cast" in cast.text  # the client is told; the log is not
        soap(f"<w:GetWebHooks><w:username>{S}</w:username><w:password>x</w:password>"
             "</w:GetWebHooks>")  # the password typed into the username field
        soap(f"<w:GetWebHooks><w:username>alice</w:username><w:password>{S}</w:password>"
             "</w:GetWebHooks>")
        soap(f"<w:{S}><w:username>a</w:username></w:{S}>")
        soap(ACTIVATE, "/webservice/webservice/soap3")
        soap(f"<w:{S}/>", "/webservice/webservice/soap3")
        requests.post(u + "/json/ActivateWebHook", timeout=10,
                      data={"username": "alice", "password": PASSWORD, "webhookId": S})
        requests.post(u + "/json/GetWebHooks", data={"username": S, "password": "x"},
                      timeout=10)
        requests.post(u + "/events", data="{}", headers={"Authorization": f"Bearer {S}"},
                      timeout=10)
        requests.post(u + "/events", timeout=10,
                      data=f'{{"account": "{S}", "event": "optin_finalized", "data": {{}}}}',
                      headers={"Authorization": "Bearer test-ingest-token"})
        requests.post(u + f"/reactivate/{S}", data={"replay": "1"}, timeout=10,
                      headers={"Referer": f"http://evil.example/{S}", "Origin": S})
    finally:
        srv.stop()
    log = srv.log()
    assert [line for line in log.splitlines() if S in line] == []
    # Still useful: the lines are there, with the service's own names.
    assert "GET /json/GetWebHooks?*** " in log and "GET /json/GetWebHooks/*** " in log
    assert f'"http://127.0.0.1:{srv.port}/reactivate/***"' in log
    assert log.count("client fault Client.ValidationError: Could not cast '***'") == 1
    assert "authentication failed for unknown user #" in log
    assert "authentication failed for user 'alice'" in log
    assert "reactivation: refused a cross-site POST" in log
