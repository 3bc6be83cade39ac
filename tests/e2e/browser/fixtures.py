"""Playwright driving Debian's Chromium (/usr/bin/chromium; Playwright never downloads a browser here).

`browser` is one Chromium per test session; `pages` gives each test fresh contexts whose pages are watched:
console errors, uncaught exceptions and any request to a host other than the gateway or the sandbox fail the
test at teardown (requests outside are also blocked, so a page that needs the internet is caught)."""
import atexit
import os
import re
from urllib.parse import urlsplit

import pytest

from tests.conftest import ARTIFACTS

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


_RUNNING = {}


def _chromium():
    """One Playwright and one Chromium per test process, whichever module asks first (each test module imports
    the fixtures, which makes one fixture per module: they must share the browser, not start a second driver)."""
    if "browser" not in _RUNNING:
        from playwright.sync_api import sync_playwright
        if not os.path.exists(CHROMIUM):
            pytest.fail("Chromium is missing at %s (apt-get install chromium)" % CHROMIUM)
        playwright = sync_playwright().start()
        _RUNNING["playwright"] = playwright
        _RUNNING["browser"] = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        atexit.register(_stop)
    return _RUNNING["browser"]


def _stop():
    browser, playwright = _RUNNING.pop("browser", None), _RUNNING.pop("playwright", None)
    try:
        if browser is not None:
            browser.close()
    finally:
        if playwright is not None:
            playwright.stop()


@pytest.fixture(scope="session")
def browser():
    return _chromium()


class Watched:
    """Opens pages and records what must not happen on them."""

    def __init__(self, browser, system):
        self.browser, self.system = browser, system
        self.allowed = {urlsplit(system.url).netloc, urlsplit(system.sandbox_url).netloc}
        self.problems, self.outside, self.contexts = [], [], []

    def new_page(self, width=1280, height=900, **kwargs):
        context = self.browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True,
                                           **kwargs)
        self.contexts.append(context)

        def guard(route):
            url = route.request.url
            if url.startswith(("data:", "blob:", "about:")) or urlsplit(url).netloc in self.allowed:
                route.continue_()
            else:
                self.outside.append(url)
                route.abort()
        context.route(re.compile(r".*"), guard)
        page = context.new_page()
        page.set_default_timeout(15000)
        page.on("console", lambda msg: msg.type == "error" and self.problems.append(
            "console: %s (%s)" % (msg.text, page.url)))
        page.on("pageerror", lambda exc: self.problems.append("page error: %s (%s)" % (exc, page.url)))
        return page

    def close(self):
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser, system):
    watched = Watched(browser, system)
    yield watched
    watched.close()
    assert not watched.outside, "requests to outside hosts: %s" % watched.outside
    assert not watched.problems, "\n".join(watched.problems)


def screenshot(page, name):
    """Every browser test leaves its final page in test-artifacts/ (the issue asks for it)."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, "%s.png" % name)
    page.screenshot(path=path, full_page=True)
    return path


def sign_in(page, system, username, password):
    """The operator sign-in form, then the TOTP code (from the same helper as System.login, so no step repeats)."""
    page.goto(system.url + "/admin/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#sign-in")
    page.wait_for_url(re.compile(r".*/admin/login/code$"))
    page.fill("#code", system.totp_code(username))
    page.click("#verify")
    page.wait_for_url(re.compile(r".*/admin/$"))
