"""In a real browser (Debian's Chromium via Playwright) against the whole running system (docs/partners.md): a
partner signs up (the confirmation letter from the dev SMTP server), becomes a partner and copies the link; a
customer exchanges through it; the operator completes the exchange; the partner sees the credit and the message in
the cabinet."""
import re
import uuid

import pytest

from tests.conftest import eventually
from tests.e2e.browser.fixtures import browser, pages, screenshot, sign_in  # noqa: F401 - pytest fixtures
from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USER
from tests.e2e.partners_support import (PASSWORD, balance, clear_direction_rule, complete_manual, letter_link,
                                        new_partner, order_as_visitor, overview, set_direction_rule, unique_email,
                                        visit_link)

pytestmark = pytest.mark.browser


@pytest.fixture
def ten_percent_of_the_amount(system, admin_token, directions):
    direction = directions["manual"]
    set_direction_rule(system, admin_token, direction, "10", "amount")
    yield direction
    clear_direction_rule(system, admin_token, direction)


def test_partner_signs_up_shares_the_link_and_sees_the_credit_and_the_message(  # noqa: F811
        system, pages, admin_token, ten_percent_of_the_amount):
    direction = ten_percent_of_the_amount
    page = pages.new_page()
    email = unique_email("browser-partner")

    # sign up, confirm from the letter, sign in
    page.goto(system.url + "/?lang=en")
    page.click("#cabinet-link")
    page.wait_for_url(re.compile(r".*/account/signin"))
    page.click("#to-signup")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#signup")
    page.wait_for_selector("#notice-text")
    url, _, _ = letter_link(system, email, "SIGNUP")
    page.goto(url)
    page.fill("#password", PASSWORD)     # the person who confirms proves the sign-up's password
    page.click("#confirm")
    page.wait_for_url(re.compile(r".*/account/signin$"))
    assert "confirmed" in page.text_content(".flash")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(re.compile(r".*/account/$"))
    assert page.text_content("#me-email") == email

    # become a partner and copy the link
    page.click("#become-partner")
    page.wait_for_selector("#ref-link")
    link = page.input_value("#ref-link")
    code = page.text_content("#ref-code").strip()
    assert link == "%s/?ref=%s" % (system.env["PUBLIC_URL"], code)
    page.click("#copy-link")
    assert page.evaluate("window.getSelection().toString() || document.activeElement.value") == link

    # a customer, in another browser, follows the link and exchanges
    customer = pages.new_page()
    customer.goto(link)
    assert customer.input_value("#partner_code") == code
    customer.select_option("#direction_id", str(direction["id"]))
    customer.fill("#amount_in", "100")
    customer.fill("#email", "browser-customer-%s@example.com" % uuid.uuid4().hex[:8])
    customer.fill("#recipient", "CAROL-USDT")
    customer.click("#submit")
    customer.wait_for_url(re.compile(r".*/orders/[A-Za-z0-9_-]{16,}$"))
    order = system.api("GET", "/api/v1/orders/%s" % customer.url.rsplit("/", 1)[1]).json()
    assert order["partner_code"] == code
    customer.click("#paid-button")
    customer.wait_for_selector("#status[data-status=payment_claimed]")

    # the operator checks and pays by hand
    for action, body in (("process", {"notice": "found it"}), ("finalize", {})):
        r = system.api("POST", "/api/v1/admin/orders/%s/%s" % (order["id"], action), token=admin_token, json=body)
        assert r.status_code == 200, r.text

    # the partner sees the credit, the referred exchange and the private message
    def credited():
        page.reload()
        return page.query_selector("#balances tr[data-currency=USDT]") and \
            page.query_selector("#messages li.message[data-order-id='%s']" % order["id"])
    eventually(credited, timeout=30, interval=0.5, message="credit and message in the cabinet")
    assert page.text_content("#balances tr[data-currency=USDT] .balance").strip() == "10.7"
    message = page.text_content("#messages li.message[data-order-id='%s']" % order["id"])
    assert "10.7 USDT" in message and "#%s" % order["id"] in message
    assert page.text_content("#referred tr[data-order-id='%s'] .commission" % order["id"]).strip() == "10.7 USDT"
    assert page.text_content("#clicks").strip() == "1"
    screenshot(page, "partner-cabinet")

    # and asks for a withdrawal from the cabinet
    page.fill("#w-amount", "10.7")
    page.fill("#w-account", "CAROL-USDT")
    page.click("#withdraw")
    page.wait_for_selector("#withdrawal-list tr[data-status=requested]")
    assert page.text_content("#balances tr[data-currency=USDT] .balance").strip() == "0"


def test_operator_sets_a_partners_rule_and_rejects_a_withdrawal_on_the_admin_pages(  # noqa: F811
        system, pages, admin_token, ten_percent_of_the_amount):
    partner = new_partner(system)
    complete_manual(system, admin_token, order_as_visitor(system, visit_link(system, partner["link"]),
                                                          ten_percent_of_the_amount))
    eventually(lambda: balance(system, partner) == "10.7")
    system.sensitive("PUT", "/api/v1/admin/commission", token=admin_token, json={"min_withdrawal": "5"})
    r = system.api("POST", "/api/v1/partner/withdrawals", token=partner["token"],
                   json={"amount": "10", "currency": "USDT", "to_account": "CAROL-USDT"})
    assert r.status_code == 201, r.text
    withdrawal = r.json()

    page = pages.new_page()
    sign_in(page, system, ADMIN_USER, ADMIN_PASSWORD)
    page.click("#nav-partners")
    page.wait_for_selector("#partners-table")
    page.fill("#partner-filters input[name=code]", partner["code"])
    page.click("#partner-filters button")
    row = "#partners-table tr[data-partner-id='%s']" % withdrawal["partner_id"]
    page.wait_for_selector(row)
    page.click(row + " a")
    page.fill("#p-percent", "2.5")
    page.select_option("#p-base", "amount")
    page.click("#partner-save")
    # A partner's commission moves money: the page asks for the password again, then saves (docs/security.md).
    page.wait_for_selector("#step-up-form")
    page.fill("#step_up_password", ADMIN_PASSWORD)
    page.click("#step-up-confirm")
    page.wait_for_selector(".flash")
    assert "saved" in page.text_content(".flash")
    assert page.input_value("#p-percent") == "2.5"
    assert page.query_selector("#ledger tr[data-kind=credit]")
    assert page.query_selector("#ledger tr[data-kind=withdrawal]")

    form = "#reject-%s" % withdrawal["id"]
    page.fill(form + " input[name=reason]", "The account is not yours")
    page.click(form + " button")
    page.wait_for_selector("#withdrawals-table tr[data-withdrawal-id='%s'][data-status=rejected]" % withdrawal["id"])
    screenshot(page, "partner-admin")
    assert balance(system, partner) == "10.7"                     # the held amount is back
    assert overview(system, partner)["withdrawals"][0]["reason"] == "The account is not yours"
    partners = system.api("GET", "/api/v1/admin/partners/%s" % withdrawal["partner_id"], token=admin_token).json()
    assert (partners["percent"], partners["base"]) == ("2.5", "amount")
    # (only since the withdrawal exists: the schemathesis run may have tried the same ids on an empty database)
    audit = system.sql("SELECT action FROM gateway.audit_log WHERE ((action = 'withdrawal.reject' AND "
                       "detail->>'withdrawal_id' = %s) OR (action = 'partner.update' AND detail->>'partner_id' = %s)) "
                       "AND created_at >= %s ORDER BY id",
                       (str(withdrawal["id"]), str(withdrawal["partner_id"]), withdrawal["created_at"]))
    assert [a["action"] for a in audit] == ["partner.update", "withdrawal.reject"]
