"""The committed WSDLs under wsdl/ are what the server serves (regenerate: `make wsdl`).

They name the default address http://127.0.0.1:8080; a server whose public URL is that
address must serve them byte for byte, and `soapservice wsdl` must print them.
"""

import os

import pytest
import requests
from lxml import etree

from tests.conftest import ROOT, soapservice

BASE = "http://127.0.0.1:8080"
FILES = {"soap": ROOT / "wsdl" / "soapservice.wsdl",
         "soap12": ROOT / "wsdl" / "soapservice12.wsdl"}
HINT = "the served WSDL drifted from the committed one: run `make wsdl` and commit wsdl/"
XS = "{http://www.w3.org/2001/XMLSchema}"
WSDL = "{http://schemas.xmlsoap.org/wsdl/}"


def test_served_wsdl_matches_committed(make_server):
    srv = make_server({"SOAPSERVICE_PUBLIC_URL": BASE}, accounts=())
    for path, committed in FILES.items():
        served = requests.get(f"{srv.url}/{path}?wsdl")
        assert served.status_code == 200
        assert served.content == committed.read_bytes(), f"{path}: {HINT}"


@pytest.mark.parametrize("path", FILES)
def test_wsdl_command_prints_committed(path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("SOAPSERVICE_PUBLIC_URL", "SOAPSERVICE_HOST", "SOAPSERVICE_PORT")}
    flags = ["--soap12"] if path == "soap12" else []
    default = soapservice("wsdl", *flags, env=env).stdout
    explicit = soapservice("wsdl", *flags, "--base-url", BASE + "/",
                           env={**env, "SOAPSERVICE_PUBLIC_URL": "https://elsewhere"}).stdout
    assert default == explicit == FILES[path].read_text(encoding="utf-8"), HINT
    assert f'location="{BASE}/{path}"' in default


@pytest.mark.parametrize("path", FILES)
def test_wsdl_is_shaped_for_stub_generators(path):
    root = etree.parse(str(FILES[path])).getroot()
    types = {e.get("type") for e in root.iter(XS + "element")}
    assert "xs:integer" not in types and "xs:int" in types
    assert not [e for e in root.iter(XS + "element") if e.get("nillable")]
    assert {p.get("name") for p in root.iter(WSDL + "part")} == {"parameters"}
    assert not [o for o in root.iter(WSDL + "operation") if o.get("parameterOrder")]
    create = root.find(f".//{XS}complexType[@name='CreateWebHook']")
    fields = [(e.get("name"), e.get("minOccurs")) for e in create.iter(XS + "element")]
    assert fields == [("username", None), ("password", None), ("app", None),
                      ("event", None), ("url", None)]
    get = root.find(f".//{XS}complexType[@name='GetWebHooks']")
    assert [e.get("minOccurs") for e in get.iter(XS + "element")] == [None, None, "0", "0"]
