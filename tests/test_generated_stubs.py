"""Stubs generated from the served WSDL, as customers' Java and .NET teams make them:
`wsimport` (JAX-WS RI) and Mono's `wsdl`, each compiled with a small program
(tests/stubs/) calling every operation against the running server.

The generated signatures must be the plain ones of SPEC §1: one result object per call,
no Holder<>, no JAXBElement, no BigInteger, no request-object parameters.
"""

import os
import re
import subprocess

import pytest

from tests.conftest import PASSWORD, ROOT, Server, require_tool
from tests.support.server import server_fixture

STUBS = ROOT / "tests" / "stubs"
JAXWS_CP = "/usr/share/java/jaxws-rt.jar"  # Debian's jaxws; its manifest names the rest


# Short-lived JVMs start much faster with the C1 compiler only and the serial GC.
FAST_JVM = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]


def run(*args, cwd=None, timeout=180, env=None):
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done


@server_fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("stubs"))
    server.add_account("alice")
    server.add_account("bob")
    server.add_account("carol")  # the C# client's, so both start from no webhooks
    server.start()
    yield server
    server.stop()


def plain(source: str, java: bool = False) -> str:
    """Declarations without (Java) annotations, comments and line breaks."""
    source = re.sub(r"/\*.*?\*/", " ", source, flags=re.S)
    if java:
        source = re.sub(r"@\w+(\([^()]*\))?", " ", source)
    source = re.sub(r"\[System\.Xml\.Serialization\.\w+\(\)\]", "[XmlIgnore]", source)
    return re.sub(r"\s+", " ", source).replace("( ", "(")


# -- Java: wsimport --------------------------------------------------------------------

@pytest.fixture(scope="module")
def java_client(srv, tmp_path_factory):
    wsimport = require_tool("wsimport")
    javac = require_tool("javac")
    java = require_tool("java")
    if not os.path.exists(JAXWS_CP):
        message = f"{JAXWS_CP} is missing (apt-get install jaxws; .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("java")
    (work / "src").mkdir()
    (work / "classes").mkdir()
    done = run(wsimport, "-Xnocompile", "-s", work / "src", "-p", "soapclient",
               f"{srv.url}/soap?wsdl", env={**os.environ, "WSIMPORT_OPTS": " ".join(FAST_JVM)})
    output = done.stdout + done.stderr
    assert "[WARNING]" not in output and "[ERROR]" not in output, output
    classpath = f"{work / 'classes'}:{JAXWS_CP}"
    run(javac, *(f"-J{option}" for option in FAST_JVM), "-nowarn", "-cp", classpath,
        "-d", work / "classes",
        *sorted((work / "src" / "soapclient").glob("*.java")), STUBS / "WebHooksClient.java")
    return work, [java, *FAST_JVM, "-cp", classpath, "WebHooksClient"]


def test_wsimport_signatures_are_plain(java_client):
    work, _ = java_client
    sources = {p.name: p.read_text() for p in (work / "src" / "soapclient").glob("*.java")}
    # ObjectFactory always has JAXBElement factories for the global elements; no
    # signature a user calls has one.
    everything = "\n".join(v for k, v in sources.items() if k != "ObjectFactory.java")
    for unwanted in ("Holder<", "JAXBElement", "BigInteger", "BigDecimal"):
        assert unwanted not in everything, unwanted
    interface = plain(sources["WebHookService.java"], java=True)
    for signature in (
        "public CreateWebHookResult createWebHook(String username, String password, "
        "String app, String event, String url);",
        "public GetWebHooksResult getWebHooks(String username, String password, "
        "String app, String event);",
        "public ActivateWebHookResult activateWebHook(String username, String password, "
        "int webhookId, Integer replayEvents);",
        "public DeleteWebHookByIdResult deleteWebHookById(String username, String password, "
        "int webhookId);",
        "public GetWebHookDeliveriesResult getWebHookDeliveries(String username, "
        "String password, int webhookId, String state, Integer limit, Long beforeId);",
        "public RotateWebHookSecretResult rotateWebHookSecret(String username, "
        "String password, int webhookId, Integer graceSeconds);",
        "public TestWebHookResult testWebHook(String username, String password, "
        "int webhookId);",
        "public ResendWebHookEventsResult resendWebHookEvents(String username, "
        "String password, int webhookId, Long eventId, XMLGregorianCalendar since, "
        "XMLGregorianCalendar until);",
    ):
        assert signature in interface, interface
    hook = plain(sources["WebHook.java"], java=True)
    for field in ("protected int id;", "protected boolean active;",
                  "protected int failureCount;", "protected String secret;"):
        assert field in hook
    assert "public List<WebHook> getWebHook()" in plain(sources["WebHookList.java"], java=True)


def test_java_client_calls_all_operations(java_client, srv):
    _, command = java_client
    output = run(*command, srv.url, "alice", PASSWORD, "bob").stdout
    lines = output.splitlines()
    assert lines[-1] == "all checks passed", output
    assert "ok deleteWebHookById" in lines and "ok getWebHooks: two webhooks, oldest first" \
        in lines
    assert "ok getWebHookDeliveries: none yet" in lines and "ok rotateWebHookSecret" in lines
    assert "ok testWebHook" in lines
    assert "ok resendWebHookEvents: nothing to resend" in lines
    assert "ok resendWebHookEvents over 31 days: error 6" in lines


# -- C#: Mono's wsdl + mcs ------------------------------------------------------------

@pytest.fixture(scope="module")
def csharp_client(srv, tmp_path_factory):
    wsdl = require_tool("wsdl")
    mcs = require_tool("mcs")
    mono = require_tool("mono")
    work = tmp_path_factory.mktemp("csharp")
    done = run(wsdl, "-nologo", f"-out:{work / 'Proxy.cs'}", f"{srv.url}/soap?wsdl")
    output = done.stdout + done.stderr
    assert "warning" not in output.lower() and "error" not in output.lower(), output
    run(mcs, f"-out:{work / 'client.exe'}",
        "-r:System.Web.Services", "-r:System.Xml", work / "Proxy.cs",
        STUBS / "WebHooksClient.cs")
    return work, [mono, work / "client.exe"]


def test_mono_wsdl_signatures_are_plain(csharp_client):
    work, _ = csharp_client
    proxy = plain((work / "Proxy.cs").read_text())
    for signature in (
        "public CreateWebHookResult CreateWebHook(string username, string password, "
        "string app, string @event, string url)",
        "public GetWebHooksResult GetWebHooks(string username, string password, string app, "
        "string @event)",
        # An optional xs:int: .NET's XmlSerializer adds a "specified" flag (documented).
        # (A schema default="0" would give a plain int instead, but Mono's serializer
        # then emits invalid IL for the call: InvalidProgramException.)
        "public ActivateWebHookResult ActivateWebHook(string username, string password, "
        "int webhookId, int replayEvents, [XmlIgnore] bool replayEventsSpecified)",
        "public DeleteWebHookByIdResult DeleteWebHookById(string username, string password, "
        "int webhookId)",
        "public GetWebHookDeliveriesResult GetWebHookDeliveries(string username, "
        "string password, int webhookId, string state, int limit, [XmlIgnore] bool "
        "limitSpecified, long beforeId, [XmlIgnore] bool beforeIdSpecified)",
        "public RotateWebHookSecretResult RotateWebHookSecret(string username, "
        "string password, int webhookId, int graceSeconds, [XmlIgnore] bool "
        "graceSecondsSpecified)",
        "public TestWebHookResult TestWebHook(string username, string password, "
        "int webhookId)",
        "public ResendWebHookEventsResult ResendWebHookEvents(string username, "
        "string password, int webhookId, long eventId, [XmlIgnore] bool eventIdSpecified, "
        "System.DateTime since, [XmlIgnore] bool sinceSpecified, System.DateTime until, "
        "[XmlIgnore] bool untilSpecified)",
        "public WebHook[] result",
        "public Delivery[] result",
        "public Attempt[] attempts",
        "public int error",
    ):
        assert signature in proxy, signature
    for unwanted in ("CreateWebHook request", "CreateWebHook parameters",
                     "public decimal ", "System.Nullable"):
        assert unwanted not in proxy, unwanted
    # Delivery and event ids are xs:long (they outgrow 2^31); a webhook has no long.
    webhook = proxy.split("public partial class WebHook ")[1].split("public partial class")[0]
    assert "public long " not in webhook


def test_csharp_client_calls_all_operations(csharp_client, srv):
    _, command = csharp_client
    output = run(*command, srv.url, "carol", PASSWORD, "bob").stdout
    lines = output.splitlines()
    assert lines[-1] == "all checks passed", output
    assert "ok DeleteWebHookById" in lines and "ok GetWebHooks: two webhooks, oldest first" \
        in lines
    assert "ok GetWebHookDeliveries: none yet" in lines and "ok RotateWebHookSecret" in lines
    assert "ok TestWebHook" in lines
    assert "ok ResendWebHookEvents: nothing to resend" in lines
    assert "ok ResendWebHookEvents over 31 days: error 6" in lines
