"""The sandbox's "customer bank" page: renders, sends money through a classic form POST, shows the result."""
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from decimal import Decimal as D
from html import unescape

import pytest

# Fixtures: sandbox, sandbox_server, sandbox_database_url.
pytest_plugins = ["tests.interface.sandbox_fixtures"]


def form_fields(html, form_id="send-form"):
    """The name -> value of the inputs of one form (enough HTML parsing for our own page)."""
    start = html.index('id="%s"' % form_id)
    form = html[start:html.index("</form>", start)]
    fields = {}
    for tag in re.findall(r"<input[^>]*>", form, re.S):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[name.group(1)] = unescape(value.group(1)) if value else ""
    return fields


def open_wallet(sandbox, wallet, **params):
    r = sandbox.get("/", params=dict(params, wallet=wallet))
    assert r.status_code == 200, r.text
    return r.text


def test_page_renders_wallets_balances_and_the_form(sandbox):
    wallet = sandbox.account(balance="1234.5", owner="alice-" + sandbox.tag, name="WEB")
    exch = sandbox.account(balance="0", owner="exchanger", name="EXCHWEB")
    html = open_wallet(sandbox, wallet)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert 'value="%s" selected' % wallet in html
    assert "alice-" + sandbox.tag in html
    assert "1\u202f234.50" in html  # the balance at the currency's precision
    assert '<option value="%s">' % exch in html  # the exchanger's same-currency accounts are suggested
    fields = form_fields(html)
    assert fields["from_account"] == wallet
    assert fields["csrf_token"] and fields["idempotency_key"].startswith("web-")
    # No external hosts: every URL on the page is relative.
    assert not re.search(r'(src|href|action)="(https?:)?//', html)
    for asset in ("/static/sandbox.css", "/static/sandbox.js"):
        assert sandbox.get(asset).status_code == 200
    assert "default-src 'self'" in sandbox.get("/").headers["Content-Security-Policy"]


def test_page_prefills_from_a_link(sandbox):
    wallet = sandbox.account(name="WEB")
    html = open_wallet(sandbox, wallet, to_account="EXCH-USD", amount="12.50", reference="ORD-<7>")
    fields = form_fields(html)
    assert fields["to_account"] == "EXCH-USD"
    assert fields["amount"] == "12.50"
    assert fields["reference"] == "ORD-<7>"
    assert "ORD-<7>" not in html  # escaped


def test_form_sends_money_and_shows_the_result(sandbox):
    wallet = sandbox.account(balance="100", name="WEB")
    exch = sandbox.account(balance="0", owner="exchanger", name="EXCHWEB")
    fields = form_fields(open_wallet(sandbox, wallet))
    reference = "ORDER-" + uuid.uuid4().hex[:8]
    fields.update(to_account=exch, amount="25,50", reference=reference)
    r = sandbox.post("/send", data=fields, allow_redirects=False)
    assert r.status_code == 303, r.text
    page = sandbox.get(r.headers["Location"])
    assert page.status_code == 200
    assert 'id="result"' in page.text and "Sent." in page.text and reference in page.text
    assert sandbox.balance(wallet) == D("74.50") and sandbox.balance(exch) == D("25.50")
    history = page.text[page.text.index('id="history"'):]
    assert exch in history and "25.50" in history

    # The exchanger polls the payment in its history with the reference.
    items = sandbox.get("/api/accounts/%s/history" % exch).json()["items"]
    assert [(e["counterparty"], e["amount"], e["reference"]) for e in items] == [(wallet, "25.5", reference)]

    # A double submit of the same form (same idempotency key) does not pay twice.
    again = sandbox.post("/send", data=fields, allow_redirects=False)
    assert again.status_code == 303 and again.headers["Location"] == r.headers["Location"]
    assert sandbox.balance(wallet) == D("74.50")


def test_form_shows_errors_and_moves_nothing(sandbox):
    wallet = sandbox.account(balance="10", name="WEB")
    exch = sandbox.account(balance="0", owner="exchanger", name="EXCHWEB")
    fields = form_fields(open_wallet(sandbox, wallet))

    r = sandbox.post("/send", data=dict(fields, to_account=exch, amount="11"))
    assert r.status_code == 422 and 'id="error"' in r.text and "insufficient funds" in r.text
    r = sandbox.post("/send", data=dict(fields, to_account=exch, amount="1.234"))
    assert r.status_code == 422 and "decimal places" in r.text
    r = sandbox.post("/send", data=dict(fields, to_account=exch, amount="lots"))
    assert r.status_code == 400 and "amount" in r.text
    r = sandbox.post("/send", data=dict(fields, to_account="NOPE-" + sandbox.tag, amount="1"))
    assert r.status_code == 404 and "unknown account" in r.text
    # The form re-renders with what was typed.
    assert form_fields(r.text)["to_account"] == "NOPE-" + sandbox.tag

    r = sandbox.post("/send", data=dict(fields, to_account=exch, amount="1", csrf_token="forged"))
    assert r.status_code == 400 and "expired" in r.text
    assert sandbox.balance(wallet) == D("10") and sandbox.balance(exch) == 0


LAYOUT_CHECK = """
import json, sys
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    executable = sys.argv[2] or None
    browser = p.chromium.launch(executable_path=executable)
    page = browser.new_page(viewport={"width": 360, "height": 740})
    page.goto(sys.argv[1])
    print(json.dumps({"scroll_width": page.evaluate("document.documentElement.scrollWidth"),
                      "send_visible": page.is_visible("#send"), "wallet_visible": page.is_visible("#wallet")}))
    browser.close()
"""


def _browser():
    """(available, executable): Playwright's own Chromium, else the system's (Debian's chromium package)."""
    root = os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or os.path.expanduser("~/.cache/ms-playwright")
    if os.path.isdir(root) and any(name.startswith("chromium") for name in os.listdir(root)):
        return True, ""
    system = shutil.which("chromium") or shutil.which("chromium-browser")
    return bool(system), system or ""


@pytest.mark.browser
def test_page_at_360px_has_no_horizontal_scroll(sandbox):
    """In a real browser, in its own process (playwright and the tests' eventlet patching do not mix)."""
    pytest.importorskip("playwright.sync_api")
    available, executable = _browser()
    if not available:
        pytest.skip("no browser for playwright (apt-get install chromium, or python -m playwright install chromium)")
    wallet = sandbox.account(balance="123456789.12", owner="someone-with-a-long-name-" + sandbox.tag, name="WEB")
    done = subprocess.run([sys.executable, "-c", LAYOUT_CHECK, sandbox.url + "/?wallet=" + wallet, executable],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"scroll_width": result["scroll_width"], "send_visible": True, "wallet_visible": True}
    assert result["scroll_width"] <= 360
