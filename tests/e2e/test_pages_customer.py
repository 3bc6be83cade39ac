"""Customer pages in a real browser (Debian's Chromium via Playwright) against the whole running system.

The auto and semi_auto cases pay through the sandbox bank page and wait for the payments service to see the
payment (docs/payments.md); the manual case needs only orders and an operator."""
import re
import uuid
from decimal import Decimal

import pytest

from tests.e2e.browser.fixtures import browser, pages, screenshot  # noqa: F401 - pytest fixtures

PAYER = {"USDT": "ALICE-USDT", "USD": "BOB-USD", "EUR": "CAROL-EUR", "RUB": "BOB-RUB"}       # sandbox wallets
PAYEE = {"EUR": "ALICE-EUR", "USDT": "CAROL-USDT", "USD": "ALICE-USD", "RUB": "BOB-RUB"}


def fill_exchange_form(page, system, direction, amount):
    page.goto(system.url + "/?lang=en")
    page.select_option("#direction_id", str(direction["id"]))
    page.fill("#amount_in", amount)
    return page.input_value("#amount_out")


def mark_page(page):
    """A marker that only survives as long as the page is not reloaded."""
    page.evaluate("window.__stillHere = 'yes'")


def still_same_page(page):
    return page.evaluate("window.__stillHere") == "yes"


@pytest.mark.parametrize("kind", ["manual", "auto", "semi_auto"])
def test_customer_creates_pays_and_follows_the_order(system, pages, directions, kind):  # noqa: F811
    direction = directions[kind]
    page = pages.new_page()
    amount = str(Decimal(direction["min_amount"]).to_integral_value() * 2)  # well inside the limits
    shown_out = fill_exchange_form(page, system, direction, amount)
    assert page.text_content("#q-fee").startswith(direction["fee"])
    assert direction["currency_out"] in page.text_content("#q-reserve")
    email = "browser-%s@example.com" % uuid.uuid4().hex[:8]
    page.fill("#email", email)
    page.fill("#recipient", PAYEE[direction["currency_out"]])
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/orders/[A-Za-z0-9_-]{16,}$"))
    token = page.url.rsplit("/", 1)[1]
    order = system.api("GET", "/api/v1/orders/%s" % token).json()
    # What the browser computed is what the server computed (exact decimal arithmetic on both sides).
    assert order["amount_out"] == shown_out, (order["amount_out"], shown_out)
    assert page.text_content("#pay-reference").strip() == order["pay_to"]["reference"]
    assert page.get_attribute("#status", "data-status") == "new"
    assert re.match(r"^\d+:\d\d", page.text_content("#countdown").strip())

    if kind == "manual":
        page.click("#paid-button")
        page.wait_for_selector("#status[data-status=payment_claimed]")
        mark_page(page)
        # The operator checks the account and tells the customer: the page follows without a reload.
        admin = system.login()
        r = system.api("POST", "/api/v1/admin/orders/%d/process" % order["id"], token=admin,
                       json={"notice": "Funds received, paying out today."})
        assert r.status_code == 200, r.text
        page.wait_for_selector("#status[data-status=processing]", timeout=20000)
        page.wait_for_selector("#notice:not([hidden])")
        assert "paying out today" in page.text_content("#notice")
    else:
        mark_page(page)
        # Pay in the sandbox bank in a second tab, with the link the order page gives (amount and reference).
        bank = page.context.new_page()
        bank.goto(page.get_attribute("#sandbox-link", "href"))
        bank.select_option("#wallet", PAYER[direction["currency_in"]])
        bank.click("#wallet-open")
        assert bank.input_value("#reference") == order["pay_to"]["reference"]
        bank.click("#send")
        bank.wait_for_selector("#result")
        screenshot(bank, "customer-%s-sandbox" % kind)
        bank.close()
        nxt = "#status[data-status=paid]" if kind == "semi_auto" else \
            "#status[data-status=paid], #status[data-status=payout], #status[data-status=completed]"
        page.wait_for_selector(nxt, timeout=45000)
        assert page.is_hidden("#pay")
    assert still_same_page(page), "the order page was reloaded"
    assert len(page.query_selector_all("#timeline li")) >= 2
    screenshot(page, "customer-%s-order" % kind)


def test_order_page_is_usable_at_360px_in_russian(system, pages, directions):  # noqa: F811
    direction = directions["manual"]
    order = system.api("POST", "/api/v1/orders", json={
        "direction_id": direction["id"], "amount_in": direction["min_amount"], "language": "ru",
        "email": "narrow-%s@example.com" % uuid.uuid4().hex[:8], "recipient": "WALLET-" + "X" * 60}).json()
    page = pages.new_page(width=360, height=740, is_mobile=True, has_touch=True)
    page.goto(system.url + "/orders/%s?lang=ru" % order["token"])
    assert page.text_content("#status").strip() == "Ожидает оплаты"
    # Nothing sticks out sideways, and the customer's buttons are on screen and big enough to tap.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    for selector in ("#paid-button", "#cancel-button", "#pay-reference", "#countdown"):
        box = page.locator(selector).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 360, (selector, box)
    assert page.locator("#paid-button").bounding_box()["height"] >= 36
    page.once("dialog", lambda dialog: dialog.accept())   # cancelling asks first
    page.click("#cancel-button")
    page.wait_for_selector("#status[data-status=canceled]")
    assert page.is_hidden("#pay")
    # The exchange form too: the language switch, and an amount below the minimum is flagged at once.
    page.goto(system.url + "/?lang=ru")
    page.select_option("#direction_id", str(direction["id"]))
    page.fill("#amount_in", "0.01")
    assert page.is_visible("#quote-error")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(page, "customer-360px")


def test_form_errors_are_shown_next_to_the_fields(system, pages, directions):  # noqa: F811
    direction = directions["auto"]
    page = pages.new_page()
    fill_exchange_form(page, system, direction, str(direction["max_amount"]) + "0")
    page.fill("#email", "not-an-email")
    page.fill("#recipient", "SOMEONE")
    page.click("#submit")
    page.wait_for_selector("#form-message")
    errors = page.locator(".field-error[data-for]").all_text_contents()
    assert errors, "no field errors shown"
    assert page.input_value("#email") == "not-an-email"  # what was typed is kept
    screenshot(page, "customer-form-errors")
