"""The Web Service Demo (/demo) as a new user meets it: in a real browser against a
running server, checked through zeep, and its generated sample code run as written."""

from __future__ import annotations

import subprocess
import sys

import requests
import zeep

from soapservice.errors import EVENTS
from soapservice.soap.service import OPERATIONS, parameter_names
from tests.browser import PHONE, console_errors, screenshot, wait_for
from tests.conftest import PASSWORD, require_tool


def open_demo(driver, server, operation=None):
    driver.demo_server = server  # for run()'s diagnostics
    driver.get(server.url + "/demo" + (f"#{operation}" if operation else ""))
    wait_for(lambda: driver.execute_script("return document.body.dataset.ready === '1'"),
             message="the demo page to load its operations")


def by_id(driver, element_id):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.ID, element_id)


def choose(driver, operation):
    by_id(driver, f"op-{operation}").click()
    wait_for(lambda: by_id(driver, "operation-name").text == operation)


def fill(driver, **values):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
    for name, value in values.items():
        field = by_id(driver, f"f-{name}")
        if field.tag_name == "select":
            Select(field).select_by_value(str(value))
        else:  # as a user edits: select all, then type (or delete)
            field.send_keys(Keys.CONTROL, "a")
            field.send_keys(str(value) if value != "" else Keys.DELETE)


def run(driver, click=True):
    """Press Run and wait until the page has shown the answer."""
    before = int(driver.execute_script("return Number(document.body.dataset.calls || 0)"))
    if click:
        by_id(driver, "run").click()
    wait_for(lambda: int(driver.execute_script(
        "return Number(document.body.dataset.calls || 0)")) > before, message="the call")
    status = by_id(driver, "status").text
    if status.startswith("The call failed"):  # the browser got no HTTP answer at all
        server = driver.demo_server
        raise AssertionError(f"{status}; server exit code {server.proc.poll()}; log tail:\n"
                             + server.log()[-3000:])
    return status


def shown(driver, element_id):
    return by_id(driver, element_id).text


def hooks(server, **filters):
    client = zeep.Client(server.url + "/soap?wsdl")
    answer = client.service.GetWebHooks("alice", PASSWORD, filters.get("app"),
                                        filters.get("event"))
    assert answer.error == 0
    return answer.result.WebHook if answer.result is not None else []


# ---- without a browser ----------------------------------------------------------------

def test_operations_come_from_the_service_definition_and_assets_from_the_package(server):
    served = requests.get(server.url + "/demo/operations.json").json()
    assert [op["name"] for op in served["operations"]] == list(OPERATIONS)
    for op in served["operations"]:
        assert [p["name"] for p in op["parameters"]] == parameter_names(op["name"])
        assert op["resultElement"] == op["name"] + "Result"
    params = {op["name"]: {p["name"]: p for p in op["parameters"]}
              for op in served["operations"]}
    assert params["CreateWebHook"]["event"]["choices"] == list(EVENTS)
    assert params["CreateWebHook"]["event"]["required"] is True
    assert params["GetWebHooks"]["event"]["required"] is False
    assert params["ActivateWebHook"]["replayEvents"] == {
        **params["ActivateWebHook"]["replayEvents"], "choices": ["0", "1"], "required": False,
        "type": "int"}
    assert params["DeleteWebHookById"]["webhookId"]["required"] is True
    assert params["CreateWebHook"]["password"]["secret"] is True
    assert served["errors"]["5"] == "webhook not found"
    assert served["wsdlUrl"] == server.url + "/soap?wsdl"

    # The page and its assets come from the package: no CDN, no directory listing.
    page = requests.get(server.url + "/demo")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")  # no CDN
    for asset, ctype in (("demo.js", "text/javascript"), ("site.css", "text/css")):
        answer = requests.get(f"{server.url}/static/{asset}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(ctype)
    assert requests.get(server.url + "/static/").status_code == 403  # no listing
    assert requests.get(server.url + "/demo/nothing").status_code == 404
    assert requests.get(server.url + "/static/../cli.py").status_code == 404


# ---- in the browser ---------------------------------------------------------------------

def test_every_operation_runs_from_the_page(server, browser):
    driver = browser
    open_demo(driver, server)
    assert shown(driver, "operation-name") == "CreateWebHook"
    screenshot(driver, "demo-start")

    fill(driver, username="alice", password=PASSWORD, app="shop", event="optout_finalized",
         url="http://127.0.0.1:9/hook")
    status = run(driver)
    assert "error 0 (success)" in status, status
    assert shown(driver, "result-error") == "0"
    assert shown(driver, "result-message") == "OK"
    request = shown(driver, "request")
    assert "<ws:CreateWebHook>" in request and "<ws:app>shop</ws:app>" in request
    assert PASSWORD not in request and "********" in request
    assert "CreateWebHookResponse" in shown(driver, "response")
    (created,) = hooks(server)
    assert (created.app, created.event, created.url, created.active) == (
        "shop", "optout_finalized", "http://127.0.0.1:9/hook", True)
    assert created.secret in shown(driver, "result-value")
    screenshot(driver, "demo-create")

    choose(driver, "GetWebHooks")
    assert by_id(driver, "f-username").get_attribute("value") == "alice"  # kept
    status = run(driver)
    assert "error 0" in status
    table = shown(driver, "result-value")
    assert "1 × WebHook" in table and "http://127.0.0.1:9/hook" in table
    fill(driver, app="other")  # a filter that matches nothing
    run(driver)
    assert shown(driver, "result-value") == "(empty)"
    screenshot(driver, "demo-get")

    choose(driver, "ActivateWebHook")
    assert by_id(driver, "f-webhookId").get_attribute("value") == str(created.id)  # prefilled
    fill(driver, replayEvents="1")
    assert "error 0" in run(driver)
    record = shown(driver, "result-value")
    assert "replayedEvents 0" in record and "active true" in record
    screenshot(driver, "demo-activate")

    choose(driver, "DeleteWebHookById")
    fill(driver, webhookId=created.id)
    assert "error 0" in run(driver)
    assert shown(driver, "result-value") == str(created.id)
    assert hooks(server) == []
    screenshot(driver, "demo-delete")

    # Errors are explained in words; a refused request shows the SOAP fault.
    assert "error 5 (webhook not found)" in run(driver)
    assert shown(driver, "result-error-meaning") == "webhook not found"
    fill(driver, password="wrong")
    assert "error 1 (authentication failed)" in run(driver)
    fill(driver, password=PASSWORD, webhookId="abc")
    assert "SOAP Fault" in run(driver)
    assert "Client" in shown(driver, "fault-code")
    assert "HTTP 500" in shown(driver, "http-status")
    screenshot(driver, "demo-fault")
    choose(driver, "CreateWebHook")
    fill(driver, app="")
    assert "error 2 (a required parameter is missing)" in run(driver)
    assert "app" in shown(driver, "result-message")
    # The only console noise allowed is the browser noting the fault's HTTP 500.
    assert [e for e in console_errors(driver) if "500" not in e] == []


def test_what_is_shown_is_text_never_markup_and_passwords_stay_out(server, browser):
    driver = browser
    open_demo(driver, server, "CreateWebHook")
    evil = '<img src=x onerror="document.title=\'pwned\'">'
    fill(driver, username="alice", password=PASSWORD, app=evil,
         url="http://127.0.0.1:9/h?a=<b>&c='d'")
    assert "error 0" in run(driver)
    assert evil in shown(driver, "result-value")
    assert driver.execute_script("return document.querySelectorAll('main img').length") == 0
    assert driver.title != "pwned"
    assert "<img src=x onerror=" in shown(driver, "sample-php")
    assert hooks(server)[0].app == evil

    # The password stays a placeholder in code until the box is ticked; Copy copies.
    fill(driver, app="crm", url="https://example.com/h")
    for sample in ("php", "python", "curl", "json"):
        code = shown(driver, f"sample-{sample}")
        assert "YOUR_PASSWORD" in code and PASSWORD not in code, sample
    by_id(driver, "include-password").click()
    assert PASSWORD in shown(driver, "sample-php")
    by_id(driver, "copy-php").click()
    wait_for(lambda: shown(driver, "copy-php-status") == "Copied", message="Copied")
    # Nothing typed is kept in the browser either.
    assert driver.execute_script(
        "return [localStorage.length, sessionStorage.length, document.cookie]") == [0, 0, ""]


def test_keyboard_labels_and_phone_screen(server, browser):
    from selenium.webdriver.common.keys import Keys
    driver = browser
    driver.set_window_size(*PHONE)
    open_demo(driver, server)
    unlabelled = driver.execute_script(
        "return Array.from(document.querySelectorAll('main input, main select'))"
        ".filter(e => !e.labels || !e.labels.length).map(e => e.id || e.name)")
    assert unlabelled == []
    required = driver.execute_script(
        "return Array.from(document.querySelectorAll('[aria-required=true]')).map(e => e.name)")
    assert required == ["username", "password", "app", "event", "url"]
    # Keyboard only: arrow keys move through the operations, Enter in a field runs.
    by_id(driver, "op-CreateWebHook").send_keys(Keys.ARROW_DOWN)
    wait_for(lambda: shown(driver, "operation-name") == "GetWebHooks")
    by_id(driver, "f-username").send_keys("alice", Keys.TAB)
    driver.switch_to.active_element.send_keys(PASSWORD, Keys.ENTER)
    status = run(driver, click=False)
    assert "GetWebHooks: error 0" in status
    assert "<ws:event>" not in shown(driver, "request")  # the optional filter stays unset
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
    screenshot(driver, "demo-phone")


# ---- the generated code, run as a user would ------------------------------------------

def sample_for(driver, server, operation, language, **values):
    open_demo(driver, server, operation)
    fill(driver, username="alice", password=PASSWORD, **values)
    if not by_id(driver, "include-password").is_selected():
        by_id(driver, "include-password").click()
    return shown(driver, f"sample-{language}")


def run_code(tmp_path, language, code):
    commands = {"php": [require_tool("php")], "python": [sys.executable],
                "curl": ["sh"], "json": ["sh"]}
    path = tmp_path / f"sample-{language}.txt"
    path.write_text(code + "\n")
    done = subprocess.run([*commands[language], str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# Quotes, backslashes, shell and PHP variables, non-ASCII: the samples must carry them as
# typed, in every language's quoting.
TRICKY = "it's \"quoted\" $HOME {$x} `id` \\ \\n Müller ✓"


def test_php_sample_of_each_operation_does_the_same_call(server, browser, tmp_path):
    require_tool("php")
    driver = browser
    app = TRICKY + " php"
    code = sample_for(driver, server, "CreateWebHook", "php", app=app,
                      event="profilemanager_finalized", url="http://127.0.0.1:9/php")
    assert "SOAP_SINGLE_ELEMENT_ARRAYS" in code and "->CreateWebHookResult" in code
    out = run_code(tmp_path, "php", code)
    (hook,) = hooks(server, app=app)
    assert (hook.event, hook.url) == ("profilemanager_finalized", "http://127.0.0.1:9/php")
    assert f"[id] => {hook.id}" in out

    out = run_code(tmp_path, "php", sample_for(driver, server, "GetWebHooks", "php",
                                               event="profilemanager_finalized"))
    assert f"[id] => {hook.id}" in out and "[WebHook] => Array" in out

    out = run_code(tmp_path, "php", sample_for(driver, server, "ActivateWebHook", "php",
                                               webhookId=hook.id, replayEvents="1"))
    assert "[replayedEvents] => 0" in out and "[active] => 1" in out

    run_code(tmp_path, "php", sample_for(driver, server, "DeleteWebHookById", "php",
                                         webhookId=hook.id))
    assert hooks(server) == []


def test_python_and_curl_samples_do_the_same_call(server, browser, tmp_path):
    require_tool("curl")
    for language in ("python", "curl", "json"):
        app = f"{TRICKY} {language}"
        url = f"http://127.0.0.1:9/{language}?a='b'&c"
        code = sample_for(browser, server, "CreateWebHook", language, app=app,
                          event="optin_finalized", url=url)
        run_code(tmp_path, language, code)
        (hook,) = hooks(server, app=app)
        assert (hook.event, hook.url) == ("optin_finalized", url), language
