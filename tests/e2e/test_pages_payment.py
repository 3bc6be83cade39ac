"""The customer's order page (issue 15, items 1-3), in the browser at both widths and in both languages: the payment
block (QR code, copy buttons, the payment system's name, local times with their zone, the demo bank in a new tab on
a wallet of the right currency, paying and cancelling disabled when the countdown ends), a payment that does not fit
(received, expected, what is missing, what happens next), and a timeline in sentences with no internal text and no
operator name. Each page also passes tests/e2e/browser/checks.py (no English on Russian pages, axe-core)."""
import re
import uuid

import pytest

from tests.conftest import eventually
from tests.e2e.browser.checks import inspect, new_page
from tests.e2e.browser.fixtures import browser, pages  # noqa: F401 - pytest fixtures
from tests.e2e.test_payments_flow import direction as direction_of, new_order, pay, status_is

pytestmark = pytest.mark.browser

COMBOS = [("desktop", "ru"), ("phone", "ru"), ("desktop", "en"), ("phone", "en")]
ZONE = "Asia/Yekaterinburg"   # UTC+5 all year: the page's times must not be UTC


def order_in(system, direction, lang, amount=None):
    r = system.api("POST", "/api/v1/orders", json={
        "direction_id": direction["id"], "amount_in": amount or direction["min_amount"], "language": lang,
        "email": "pay-page-%s@example.com" % uuid.uuid4().hex[:8], "recipient": "CAROL-USDT"})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("width,lang", COMBOS)
def test_payment_block(system, pages, directions, width, lang):  # noqa: F811
    direction = directions["auto"]
    order = order_in(system, direction, lang)
    page = new_page(pages, width, lang, timezone_id=ZONE, permissions=["clipboard-read", "clipboard-write"])
    page.goto(system.url + "/orders/%s?lang=%s" % (order["token"], lang))
    name = "payment-%s-%s" % (lang, width)

    assert page.locator("#pay-qr svg").count() == 1
    assert page.text_content("#pay-system").strip() == ("Тестовый банк Sandbox (демо)" if lang == "ru"
                                                        else "Sandbox Bank (demo)")
    deadline = page.text_content("#pay time").strip()
    assert "UTC" not in deadline and re.search(r"\+5|\+05", deadline), deadline   # local time, zone named
    link = page.locator("#sandbox-link")
    assert link.get_attribute("target") == "_blank"
    assert "currency=%s" % order["pay_to"]["currency"] in link.get_attribute("href")
    for target, expected in (("pay-amount-value", order["pay_to"]["amount"]),
                             ("pay-reference", order["pay_to"]["reference"]),
                             ("pay-account", order["pay_to"]["account"])):
        page.click("button[data-copy=%s]" % target)
        assert page.evaluate("navigator.clipboard.readText()") == expected
    inspect(page, name, lang)

    if width == "desktop":
        # the demo bank opens in a new tab with a wallet of the currency to pay chosen
        with page.context.expect_page() as opened:
            link.click()
        bank = opened.value
        bank.wait_for_load_state()
        chosen = bank.eval_on_selector("#wallet", "s => s.options[s.selectedIndex].textContent")
        assert order["pay_to"]["currency"] in chosen, chosen
        bank.close()


@pytest.mark.parametrize("width,lang", COMBOS[:2])
def test_pay_and_cancel_stop_when_the_countdown_ends(system, pages, directions, width, lang):  # noqa: F811
    order = order_in(system, directions["manual"], lang)
    page = new_page(pages, width, lang)
    page.goto(system.url + "/orders/%s?lang=%s" % (order["token"], lang))
    assert page.is_enabled("#paid-button") and page.is_enabled("#cancel-button")
    # the customer waited until two seconds before the deadline (the page's clock and the server's)
    page.eval_on_selector("#countdown", "c => c.setAttribute('data-expires', new Date(Date.now() + 2000).toISOString())")
    system.sql("UPDATE orders.orders SET expires_at = now() + interval '2 seconds' WHERE id = %s", (order["id"],))
    page.wait_for_function("document.getElementById('paid-button').disabled && "
                           "document.getElementById('cancel-button').disabled", timeout=15000)
    page.wait_for_selector("#status[data-status=expired]", timeout=20000)
    inspect(page, "payment-expired-%s-%s" % (lang, width), lang)


@pytest.mark.parametrize("width,lang", COMBOS)
def test_a_payment_that_does_not_fit_is_explained(system, pages, width, lang):  # noqa: F811
    auto = direction_of(system, "auto", "USDT")
    order = new_order(system, auto, amount="20")
    system.sql("UPDATE orders.orders SET language = %s WHERE id = %s", (lang, order["id"]))
    page = new_page(pages, width, lang)
    page.goto(system.url + "/orders/%s?lang=%s" % (order["token"], lang))
    pay(system, order, amount="15")
    status_is(system, order, "paid")
    page.wait_for_selector("#mismatch", timeout=20000)   # the page follows by itself
    assert page.text_content("#mismatch-received").split() == ["15", "USDT"]
    assert page.text_content("#mismatch-expected").split() == ["20", "USDT"]
    assert page.text_content("#mismatch-missing").split() == ["5", "USDT"]
    assert page.text_content("#mismatch-next").strip()
    timeline = page.text_content("#timeline")
    assert ("меньше нужной суммы" if lang == "ru" else "less than asked") in timeline, timeline
    assert not re.search(r"payment \d+ of", timeline), timeline   # not the internal "payment 12 of 15 USDT"
    inspect(page, "payment-partial-%s-%s" % (lang, width), lang)


def test_timeline_has_no_operator_names_or_internal_texts(system, pages, directions, admin_token):  # noqa: F811
    order = order_in(system, directions["manual"], "ru")
    assert system.api("POST", "/api/v1/orders/%s/paid" % order["token"], json={}).status_code == 200
    r = system.api("POST", "/api/v1/admin/orders/%d/process" % order["id"], token=admin_token,
                   json={"notice": "Получили, выплатим сегодня."})
    assert r.status_code == 200, r.text
    api_view = system.api("GET", "/api/v1/orders/%s" % order["token"]).json()
    assert all("actor" not in h for h in api_view["history"]), api_view["history"]
    page = new_page(pages, "desktop", "ru")
    page.goto(system.url + "/orders/%s?lang=ru" % order["token"])
    timeline = page.text_content("#timeline")
    assert "admin" not in timeline
    assert "Оператор подтвердил вашу оплату" in timeline and "выплатим сегодня" in timeline, timeline
    eventually(lambda: page.locator("#timeline li").count() == 3, timeout=5, message="three events")
    inspect(page, "payment-timeline-ru", "ru")
