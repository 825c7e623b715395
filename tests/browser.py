"""Headless Chromium through Selenium, for tests of the pages people click.

Use the ``browser`` fixture (tests/conftest.py); it skips locally and fails in CI when
Debian's ``chromium`` or ``chromedriver`` is missing. Each test gets a fresh profile
(``--user-data-dir`` under its tmp_path), so nothing leaks between tests.
Helpers: :func:`wait_for` polls a condition with a deadline, :func:`screenshot` saves a
PNG under ``tests/artifacts/`` (ignored by git, kept by CI).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--disable-dev-shm-usage", "--disable-extensions",
    "--disable-default-apps", "--password-store=basic", "--use-mock-keychain",
)

DESKTOP = (1280, 900)
PHONE = (390, 844)  # CSS pixels of a common phone


def start_chromium(chromium: str, chromedriver: str, profile_dir: Path, size=DESKTOP):
    """A Selenium driver for a fresh headless Chromium; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    # Pages' console errors are part of what a test can assert on.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=chromedriver)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def wait_for(condition, timeout=60.0, interval=0.05, message="condition"):
    """Poll ``condition()`` until it returns a truthy value; that value is returned.
    The deadline only ends a wait that would never succeed: it is long, since a loaded
    machine (CI beside other work, load 10 on 2 cores) takes many times a quiet one's."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # e.g. the element is not there yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}"
                         + (f" (last error: {last_error!r})" if last_error else ""))


def screenshot(driver, name: str) -> Path:
    """Save the whole page (not just the viewport) as tests/artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".png")
    try:
        size = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        current = driver.get_window_size()
        width, height = current["width"], current["height"]
        driver.set_window_size(width, max(height, min(int(size[1]) + 200, 8000)))
        driver.save_screenshot(str(path))
        driver.set_window_size(width, height)
    except Exception:  # a screenshot never fails a test
        driver.save_screenshot(str(path))
    return path


def console_errors(driver, page_status: int | None = None) -> list[str]:
    """The page's console messages of level SEVERE (script errors, failed loads) since
    the last call.

    ``page_status``: the page itself was answered with this non-2xx status on purpose
    (a refusal page: 403, 404, 410). Chromium reports every non-2xx load, the page's
    own included, as ``<url> - Failed to load resource: the server responded with a
    status of N (...)``; that one report, naming this page's address and this status,
    is the status doing its job (docs/portal.rst, "Refusal pages") and is left out.
    Everything else still counts: a style sheet or image that failed, a CSP refusal, a
    script error, the page answered with another status, another page's report."""
    try:
        entries = driver.get_log("browser")
    except Exception:  # not every driver offers the log
        return []
    own = None
    if page_status is not None:
        own = (f"{driver.current_url} - Failed to load resource: the server responded "
               f"with a status of {page_status} ")
    return [e["message"] for e in entries if e.get("level") == "SEVERE"
            and not (own and e["message"].startswith(own))]


def page_status(driver) -> int | None:
    """The HTTP status the page's own load was answered with (Navigation Timing's
    ``responseStatus``; None where the browser does not report it)."""
    return driver.execute_script(
        "const nav = performance.getEntriesByType('navigation')[0];"
        "return nav && nav.responseStatus !== undefined ? nav.responseStatus : null;")
