"""The operator's request list (issue 15, items 8 and 9) in the browser at 1366×900 and 390×844: rows that arrive
and change without a reload (a badge counts the new ones), the search box (id, reference, e-mail fragment,
recipient, amount), human labels, keyboard shortcuts with their help, bulk cancel with one reason and the export of
the selection, filters folded and rows one line tall on phones; the payout dialog names amount and recipient.
Every page also passes the axe-core pass (tests/e2e/browser/checks.py)."""
import re
import uuid

import pytest

from tests.e2e.browser.checks import inspect, new_page
from tests.e2e.browser.fixtures import browser, pages, sign_in  # noqa: F401 - pytest fixtures
from tests.e2e import test_payments_flow as payments_flow
from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USER

pytestmark = pytest.mark.browser


def new_order(system, direction, email=None, recipient=None, amount=None):
    r = system.api("POST", "/api/v1/orders", json={
        "direction_id": direction["id"], "amount_in": amount or direction["min_amount"],
        "email": email or "list-%s@example.com" % uuid.uuid4().hex[:8],
        "recipient": recipient or "WALLET-%s" % uuid.uuid4().hex[:8].upper()})
    assert r.status_code == 201, r.text
    return r.json()


def ids_shown(page):
    return [int(x) for x in page.locator("#orders-table tbody tr[data-order-id]").evaluate_all(
        "rs => rs.map(r => r.dataset.orderId)")]


@pytest.fixture
def operator_page(system, pages):  # noqa: F811
    system.login()   # the admin has enrolled TOTP; the page signs in with the next code

    def open_at(width):
        page = new_page(pages, width, "en")
        sign_in(page, system, ADMIN_USER, ADMIN_PASSWORD)
        return page
    return open_at


def test_rows_arrive_and_change_live_and_search_finds_them(system, operator_page, directions):
    page = operator_page("desktop")
    page.goto(system.url + "/admin/orders")
    page.evaluate("window.__stillHere = 'yes'")
    inspect(page, "list-desktop", "en")

    tag = uuid.uuid4().hex[:8]
    arrived = new_order(system, directions["manual"], email="live-%s@example.com" % tag,
                        recipient="LIVE-%s" % tag.upper())
    row = "#orders-table tr[data-order-id='%d']" % arrived["id"]
    page.wait_for_selector(row, timeout=20000)
    assert page.is_visible("#new-count") and page.text_content("#new-count").strip() == "1 new"
    assert page.text_content(row + " td:nth-child(4)").strip() == arrived["reference"]
    assert "Manual" in page.text_content(row) and "New, awaiting payment" in page.text_content(row)
    # the customer says they paid: the row changes by itself
    assert system.api("POST", "/api/v1/orders/%s/paid" % arrived["token"], json={}).status_code == 200
    page.wait_for_selector(row + "[data-status=payment_claimed]", timeout=20000)
    assert "Customer says paid" in page.text_content(row)
    assert page.evaluate("window.__stillHere") == "yes", "the list was reloaded"
    inspect(page, "list-desktop-live", "en")

    # the search box: reference, e-mail fragment, recipient fragment, id, amount
    for query in (arrived["reference"], "live-%s" % tag, "IVE-%s" % tag.upper(), str(arrived["id"])):
        page.fill("#f-q", query)
        page.click("#search")
        page.wait_for_url(re.compile(r".*q=.*"))
        assert arrived["id"] in ids_shown(page), query
        if query != str(arrived["id"]):
            assert ids_shown(page) == [arrived["id"]], (query, ids_shown(page))
    page.goto(system.url + "/admin/orders?q=%s" % arrived["amount_in"])
    assert arrived["id"] in ids_shown(page)


def test_hotkeys_bulk_cancel_and_export_of_the_selection(system, operator_page, directions):
    tag = uuid.uuid4().hex[:8]
    email = "bulk-%s@example.com" % tag
    first = new_order(system, directions["manual"], email=email)
    second = new_order(system, directions["auto"], email=email)
    page = operator_page("desktop")
    page.goto(system.url + "/admin/orders?q=bulk-%s" % tag)
    assert sorted(ids_shown(page)) == sorted([first["id"], second["id"]])

    page.keyboard.press("?")
    page.wait_for_selector("#hotkeys[open]")
    inspect(page, "list-hotkeys", "en")
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    assert page.get_attribute("#orders-table tbody tr.current", "data-order-id") == str(ids_shown(page)[0])
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    page.wait_for_selector("#bulk-form:not([hidden])")
    assert page.text_content("#bulk-count").strip() == "2 selected"

    with page.expect_download() as download:
        page.click("#bulk-export")
    text = open(download.value.path(), encoding="utf-8-sig").read()
    assert text.splitlines()[0].startswith("id,reference,created_at (UTC)")
    assert first["reference"] in text and second["reference"] in text

    page.fill("#bulk-reason", "Duplicate requests.")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#bulk-cancel")
    page.wait_for_selector(".flash")
    token = system.login()
    for order in (first, second):
        got = system.api("GET", "/api/v1/admin/orders/%d" % order["id"], token=token).json()
        assert (got["status"], got["cancel_reason"]) == ("canceled", "Duplicate requests."), got
    inspect(page, "list-after-bulk", "en")


def test_phone_layout_and_the_payout_dialog(system, operator_page, directions):
    page = operator_page("phone")
    for _ in range(2):
        new_order(system, directions["manual"], recipient="PHONE-" + "R" * 50)
    page.goto(system.url + "/admin/orders")
    assert page.evaluate("document.getElementById('more-filters').open") is False   # folded on phones
    heights = page.locator("#orders-table tbody tr[data-order-id]").evaluate_all(
        "rs => rs.slice(0, 10).map(r => r.getBoundingClientRect().height)")
    assert heights and max(heights) < 56, heights   # one line each
    inspect(page, "list-phone", "en")


def test_a_refused_action_shows_the_reason_and_payout_names_amount_and_recipient(system, operator_page,
                                                                                  directions):
    page = operator_page("desktop")
    order = new_order(system, directions["manual"])
    assert system.api("POST", "/api/v1/orders/%s/paid" % order["token"], json={}).status_code == 200
    page.goto(system.url + "/admin/orders/%d" % order["id"])
    # someone else processes it meanwhile; this operator's "process" is then refused, with the reason
    token = system.login()
    assert system.api("POST", "/api/v1/admin/orders/%d/cancel" % order["id"], token=token,
                      json={"reason": "Canceled by the other operator."}).status_code == 200
    page.click("button.act-process")
    page.wait_for_selector("#action-dialog[open]")
    page.fill("#action-text", "Funds received.")
    page.click("#action-submit")
    page.wait_for_selector(".flash")
    assert page.locator(".flash.alert-error").count() == 1
    flash = page.text_content(".flash")
    assert "refused" in flash and "done" not in flash, flash
    inspect(page, "order-refused", "en")

    # the payout dialog shows what is sent, and to whom (a semi-automatic request that was paid)
    semi = payments_flow.new_order(system, directions["semi_auto"])
    payments_flow.pay(system, semi)
    payments_flow.status_is(system, semi, "paid")
    page.goto(system.url + "/admin/orders/%d" % semi["id"])
    page.click("button.act-payout")
    page.wait_for_selector("#action-dialog[open]")
    assert page.text_content("#action-amount").strip() == "%s %s" % (semi["amount_out"], semi["currency_out"])
    assert page.text_content("#action-recipient").strip() == semi["recipient"]
    inspect(page, "order-payout-dialog", "en")


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_dashboard_has_a_window_totals_and_directions(system, operator_page, directions, width):
    page = operator_page(width)
    page.goto(system.url + "/admin/")
    page.wait_for_selector("#status-counts")
    if page.query_selector("#stats-totals"):
        assert page.is_visible("#never-paid") and page.is_visible("#margin-total")
        titles = page.locator("svg.chart title").all_text_contents()
        assert any("number of requests" in t for t in titles), titles
    inspect(page, "dashboard-%s" % width, "en")
