"""The Web Service Demo page driven as a user drives it (tests/test_demo*.py)."""

from __future__ import annotations

import subprocess
import sys

import zeep

from tests.browser import wait_for
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
