"""The rates panel in a real browser (docs/rates.md, "Panel"): an admin previews a formula (the value and the
rate), is refused one that divides by zero, saves one after confirming the password (step-up), and sees the rate
charted, the formula's history and the sources with their values and ages."""
import re

import requests

from tests.conftest import eventually
from tests.e2e.browser.fixtures import browser, pages, screenshot, sign_in  # noqa: F401 - pytest fixtures
from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USER, RATES_STANDIN_PORT


def eur_rub_direction(system, token):
    body = {"currency_in": "EUR", "currency_out": "RUB", "exchange_type": "auto", "rate_in": "1", "rate_out": "1",
            "fee": "0", "min_amount": "10", "max_amount": "5000"}
    r = system.sensitive("POST", "/api/v1/admin/directions", token=token, json=body)
    if r.status_code == 409:
        return next(d for d in system.api("GET", "/api/v1/admin/directions", token=token).json()
                    if (d["currency_in"], d["currency_out"], d["exchange_type"]) == ("EUR", "RUB", "auto"))
    assert r.status_code == 201, r.text
    return r.json()


def test_admin_previews_saves_and_watches_a_formula(system, pages):  # noqa: F811
    token = system.login()
    direction = eur_rub_direction(system, token)
    requests.post("http://127.0.0.1:%d/_control" % RATES_STANDIN_PORT, timeout=10,
                  json={"source": "binance", "pin": {"ETHUSDT": {"bid": "3500", "ask": "3501"}}, "down": None})
    def pinned():
        items = {v["name"]: v["value"] for s in system.api("GET", "/api/v1/admin/rates/sources", token=token).json()
                 for v in s["items"]}
        assert items.get("binance.ETHUSDT.bid") == "3500", items.get("binance.ETHUSDT.bid")
        return True
    eventually(pinned, timeout=15, interval=0.2, message="the pinned value fetched")
    page = pages.new_page()
    sign_in(page, system, ADMIN_USER, ADMIN_PASSWORD)
    page.click("#nav-rates")
    page.wait_for_url(re.compile(r".*/admin/rates$"))
    assert page.is_visible("#sources-table tr[data-source='binance']")
    assert page.is_visible("#sources-table tr[data-source='cbr']")

    page.goto(system.url + "/admin/rates/%d" % direction["id"])
    page.fill("input[name=expression]", "binance.ETHUSDT.bid / 35")
    page.click("#preview-button")
    page.wait_for_selector("#preview")
    assert page.text_content("#preview-value").strip() == "100"
    assert page.text_content("#preview-rate").strip() == "1 / 100"

    page.fill("input[name=expression]", "binance.ETHUSDT.bid / (35 - 35)")
    page.click("#preview-button")
    page.wait_for_selector(".flash")
    assert "division by zero" in page.text_content(".flash")

    page.fill("input[name=expression]", "binance.ETHUSDT.bid / 35")
    page.click("#save-button")
    # A formula decides the rate: the page asks for the password again, then saves (docs/security.md).
    page.wait_for_selector("#step-up-form")
    assert page.input_value("#step-up-form input[name=expression]") == "binance.ETHUSDT.bid / 35"
    page.fill("#step_up_password", ADMIN_PASSWORD)
    page.click("#step-up-confirm")
    page.wait_for_url(re.compile(r".*/admin/rates/%d$" % direction["id"]))
    assert "Formula saved" in page.text_content(".flash")

    def live():
        d = next(d for d in system.api("GET", "/api/v1/directions").json() if d["id"] == direction["id"])
        assert d["rate_out"] == "100", d
        return d
    eventually(live, timeout=15, interval=0.3, message="the saved formula's rate on the direction")
    page.reload()
    assert page.locator("#rate-chart circle").count() >= 1
    assert "binance.ETHUSDT.bid / 35" in page.text_content("#formula-history")
    assert page.text_content("#formula-history td:nth-child(2)").strip().startswith(ADMIN_USER)
    screenshot(page, "rates-direction")
