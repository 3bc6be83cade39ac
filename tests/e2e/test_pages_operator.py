"""Operator pages in a real browser: first sign-in enrols TOTP, the next one asks for a code; the request list is
filtered, a manual request is finalized with a notice and another canceled with a reason through the dialogs,
and the CSV export with the list's filters returns exactly those requests (the export is the reporting
service's, docs/reporting.md: this last part needs it running)."""
import csv
import io
import re
import uuid

from tests.conftest import eventually
from tests.e2e.browser.fixtures import browser, pages, screenshot, sign_in  # noqa: F401 - pytest fixtures


def new_operator(system, totp_required=True):
    username = "op-%s" % uuid.uuid4().hex[:8]
    password = "op-password-%s" % uuid.uuid4().hex[:8]
    r = system.sensitive("POST", "/api/v1/admin/staff", token=system.login(), json={
        "username": username, "password": password, "role": "operator", "totp_required": totp_required})
    assert r.status_code == 201, r.text
    return username, password


def claimed_manual_order(system, direction, email):
    r = system.api("POST", "/api/v1/orders", json={"direction_id": direction["id"], "amount_in": direction["min_amount"],
                                                    "email": email, "recipient": "WALLET-%s" % uuid.uuid4().hex[:6]})
    assert r.status_code == 201, r.text
    order = r.json()
    assert system.api("POST", "/api/v1/orders/%s/paid" % order["token"]).status_code == 200
    return order


def act_in_dialog(page, order_id, action, text):
    page.click("tr[data-order-id='%d'] button.act-%s" % (order_id, action))
    page.wait_for_selector("#action-dialog[open]")
    page.fill("#action-text", text)
    page.click("#action-submit")
    page.wait_for_selector(".flash")


def test_operator_enrols_filters_finalizes_cancels_and_exports(system, pages, directions):  # noqa: F811
    username, password = new_operator(system)
    page = pages.new_page()

    # First sign-in: the account must set up TOTP before anything else.
    page.goto(system.url + "/admin/orders")
    page.wait_for_url(re.compile(r".*/admin/login\?next=.*"))
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#sign-in")
    page.wait_for_url(re.compile(r".*/admin/enrol$"))
    system.totp_secrets[username] = page.text_content("#totp-secret").strip()
    page.fill("#code", system.totp_code(username))
    page.click("#confirm")
    page.wait_for_url(re.compile(r".*/admin/orders$"))  # back where the operator wanted to go
    page.click("#logout")
    page.wait_for_url(re.compile(r".*/admin/login$"))

    # Every later sign-in asks for a code.
    sign_in(page, system, username, password)
    assert page.is_visible("#status-counts")

    email = "ops-%s@example.com" % uuid.uuid4().hex[:8]
    first = claimed_manual_order(system, directions["manual"], email)
    second = claimed_manual_order(system, directions["manual"], email)
    claimed_manual_order(system, directions["manual"], "someone-else-%s@example.com" % uuid.uuid4().hex[:6])

    page.goto(system.url + "/admin/orders")
    page.check("input[name=status][value=payment_claimed]")
    page.fill("#f-email", email)
    page.click("#apply-filters")
    page.wait_for_url(re.compile(r".*status=payment_claimed.*"))
    rows = page.locator("#orders-table tbody tr[data-order-id]")
    assert sorted(int(x) for x in rows.evaluate_all("rs => rs.map(r => r.dataset.orderId)")) == \
        sorted([first["id"], second["id"]])
    # Only the actions the state machine allows for payment_claimed are offered.
    offered = page.locator("tr[data-order-id='%d'] button[data-action]" % first["id"]).evaluate_all(
        "bs => bs.map(b => b.dataset.action)")
    assert sorted(offered) == ["cancel", "delete", "finalize", "process"]

    act_in_dialog(page, first["id"], "finalize", "Paid to your wallet by hand.")
    act_in_dialog(page, second["id"], "cancel", "Payment not found on our account.")
    admin = system.login()
    done = system.api("GET", "/api/v1/admin/orders/%d" % first["id"], token=admin).json()
    canceled = system.api("GET", "/api/v1/admin/orders/%d" % second["id"], token=admin).json()
    assert (done["status"], done["notice"]) == ("completed", "Paid to your wallet by hand.")
    assert (canceled["status"], canceled["cancel_reason"]) == ("canceled", "Payment not found on our account.")
    assert any(a["actor"] == username and a["action"] == "finalize" for a in done["audit"])

    # The list again with both final statuses, then the CSV with exactly these filters.
    page.goto(system.url + "/admin/orders?status=completed&status=canceled&email=%s" % email)
    assert page.locator("#orders-table tbody tr[data-order-id]").count() == 2
    href = page.get_attribute("#export-csv", "href")
    assert "email=" in href and "status=canceled%2Ccompleted" in href.replace("completed%2Ccanceled",
                                                                              "canceled%2Ccompleted")

    def exported():
        response = page.request.get(system.url + href)
        assert response.status == 200, response.text()[:300]
        rows = list(csv.DictReader(io.StringIO(response.text())))
        got = sorted((int(r["id"]), r["status"]) for r in rows)
        assert got == sorted([(first["id"], "completed"), (second["id"], "canceled")]), got
        return True
    eventually(exported, timeout=20, interval=0.5, message="the CSV export has both requests")
    page.goto(system.url + "/admin/orders/%d" % first["id"])
    assert "Paid to your wallet by hand." in page.text_content("#order-notice")
    screenshot(page, "operator-request")
