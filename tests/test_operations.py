"""The operation registry is the one list every protocol serves: the Spyne service
(SOAP 1.1/1.2), the JSON mirror, the legacy rpc/encoded WSDL and the demo page all
carry exactly its operations and parameters, in its order, with its required-ness."""

from lxml import etree

from soapservice import operations as ops
from soapservice.api import WebhookAPI
from soapservice.legacy.wsdl import legacy_wsdl
from soapservice.soap.apps import wsdl_document
from soapservice.soap.service import WebHookService
from soapservice.web.demo import describe_operations

XS = "{http://www.w3.org/2001/XMLSchema}"
WSDL = "{http://schemas.xmlsoap.org/wsdl/}"


def test_every_operation_has_its_core_method_and_credentials_first():
    for op in ops.OPERATIONS:
        assert callable(getattr(WebhookAPI, op.function)), op.name
        assert op.parameter_names[:2] == ["username", "password"]
        assert {0, 1, 2, 8, 99} <= {int(e) for e in op.errors}


def test_spyne_service_is_generated_from_the_registry():
    assert list(WebHookService.public_methods) == [op.name for op in ops.OPERATIONS]
    for op in ops.OPERATIONS:
        message = WebHookService.public_methods[op.name].in_message
        members = list(message._type_info.items())
        assert [name for name, _ in members] == op.parameter_names
        assert [t.Attributes.min_occurs for _, t in members] == [
            1 if p.required else 0 for p in op.params]


def test_soap_wsdl_sequences_follow_the_registry():
    root = etree.fromstring(wsdl_document(None, "1.1", "http://127.0.0.1:8080/soap"))
    for op in ops.OPERATIONS:
        request = root.find(f".//{XS}complexType[@name='{op.name}']")
        assert [(e.get("name"), e.get("minOccurs")) for e in request.iter(XS + "element")] == [
            (p.name, None if p.required else "0") for p in op.params]
        result = root.find(f".//{XS}complexType[@name='{op.result_name}']")
        assert [e.get("name") for e in result.iter(XS + "element")][:3] == [
            "error", "message", "result"]


def test_legacy_wsdl_and_demo_follow_the_registry():
    root = etree.fromstring(legacy_wsdl("http://127.0.0.1:8080/webservice/webservice/soap3"))
    port_type = root.find(f"{WSDL}portType")
    assert [o.get("name") for o in port_type] == [op.name for op in ops.OPERATIONS]
    for op in ops.OPERATIONS:
        parts = root.findall(f"{WSDL}message[@name='{op.name}Request']/{WSDL}part")
        assert [p.get("name") for p in parts] == op.parameter_names
        assert [p.get("type") for p in parts] == [f"xsd:{p.type}" for p in op.params]
    demo = describe_operations("http://127.0.0.1:8080")["operations"]
    assert [o["name"] for o in demo] == [op.name for op in ops.OPERATIONS]
    for shown, op in zip(demo, ops.OPERATIONS, strict=True):
        assert [(p["name"], p["required"]) for p in shown["parameters"]] == [
            (p.name, p.required) for p in op.params]
        assert shown["summary"] == op.summary and shown["resultElement"] == op.result_name
