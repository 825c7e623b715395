"""The Web Service Demo (/demo) as a new user meets it: in a real browser against a
running server, checked through zeep. Its sample code: tests/test_demo_samples.py."""

from __future__ import annotations

import pytest
import requests

from soapservice.errors import EVENTS
from soapservice.operations import BY_NAME as OPERATIONS
from soapservice.operations import parameter_names
from tests.browser import PHONE, console_errors, screenshot, wait_for
from tests.conftest import PASSWORD
from tests.demo_page import by_id, choose, fill, hooks, open_demo, run, shown


@pytest.fixture
def server(make_server):
    """A running server with the one account these tests use (one scrypt hash less)."""
    return make_server()


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
    for asset, ctype in (("demo.js", "text/javascript"), ("site.css", "text/css"),
                         ("demo.css", "text/css")):
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
    # Integers are written as literals of the language, never octal or rounded.
    open_demo(driver, server, "ActivateWebHook")
    fill(driver, webhookId="010", replayEvents="1")
    assert "'webhookId' => 10," in shown(driver, "sample-php")
    assert "webhookId=10," in shown(driver, "sample-python")
    assert '"webhookId": 10,' in shown(driver, "sample-json")
    fill(driver, webhookId="123456789012345678901")
    assert '"webhookId": "123456789012345678901"' in shown(driver, "sample-json")

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


def test_webhooks_table_fits_1280_px_with_long_url_and_error(server, browser):
    """GetWebHooks at 1280 px: failureCount, bufferedEvents and lastError are on screen
    without scrolling sideways; a long URL and error are cut short on screen, their
    full text in the cell's title (and in the DOM for screen readers). The demo links
    to the customer portal."""
    import sqlite3

    from tests.browser import DESKTOP
    driver = browser
    driver.set_window_size(*DESKTOP)
    long_url = "http://127.0.0.1:9/" + "very-long-path-segment/" * 8 + "hook?token=abc"
    open_demo(driver, server, "CreateWebHook")
    fill(driver, username="alice", password=PASSWORD, app="shop", url=long_url)
    assert "error 0" in run(driver)
    error = ("HTTP 503: " + "the receiver said something long and unhelpful " * 6).strip()
    with sqlite3.connect(server.db_path) as db:  # as a failed attempt leaves it
        db.execute("UPDATE webhook SET failure_count = 4, last_error = ?, last_failure_at "
                   "= 2000000000.5, last_success_at = 1999999000, deactivated_at = "
                   "2000000001, dropped_events = 1234567", (error,))
    choose(driver, "GetWebHooks")
    assert "error 0" in run(driver)
    screenshot(driver, "demo-get-1280")
    from selenium.webdriver.common.by import By

    from tests.browser import ARTIFACTS
    driver.find_element(By.ID, "decoded").screenshot(str(ARTIFACTS / "demo-get-1280-table.png"))
    geometry = driver.execute_script("""
        const box = document.querySelector('#result-value .table-scroll');
        const table = box.querySelector('table.records');
        const heads = Array.from(table.querySelectorAll('thead th'));
        const right = box.getBoundingClientRect().right;
        const col = (name) => heads.findIndex((h) => h.textContent.replace(/\\s/g, '') === name);
        const cell = (name) => table.querySelector('tbody tr').children[col(name)];
        return {overflow: box.scrollWidth - box.clientWidth,
                page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
                beyond: ['failureCount', 'bufferedEvents', 'lastError'].filter(
                    (n) => col(n) < 0 || cell(n).getBoundingClientRect().right > right + 1),
                failures: cell('failureCount').textContent,
                errorTitle: cell('lastError').querySelector('[title]').title,
                errorText: cell('lastError').textContent,
                urlTitle: cell('url').querySelector('[title]').title};
    """)
    assert geometry["overflow"] <= 0 and geometry["page"] <= 0, geometry
    assert geometry["beyond"] == [], geometry
    assert geometry["failures"] == "4"
    assert geometry["errorTitle"] == error and geometry["errorText"] == error
    assert geometry["urlTitle"] == long_url
    portal = driver.execute_script(
        "return Array.from(document.querySelectorAll('a')).filter("
        "(a) => a.getAttribute('href') === '/portal').map((a) => a.textContent)")
    assert portal, "no link to /portal"
    assert console_errors(driver) == []
