"""End to end, all processes running (make run's Procfile): customers pay through the sandbox payment system's HTTP
API, payments detects and matches, orders moves, payouts reach the recipient's sandbox account exactly once."""
import datetime
import uuid
from decimal import Decimal as D

import pytest
import requests

from libs import money
from tests.conftest import eventually

pytestmark = pytest.mark.timeout(120)


def sandbox(system, method, path, **kwargs):
    return requests.request(method, system.sandbox_url + path, timeout=30, **kwargs)


def wallet(system, currency, balance="0"):
    """A fresh customer account at the sandbox (so balances and histories are this test's alone)."""
    r = sandbox(system, "POST", "/api/accounts", json={"currency": currency, "balance": balance,
                                                       "owner": "e2e-%s" % uuid.uuid4().hex[:6]})
    assert r.status_code == 201, r.text
    return r.json()["account"]


def incoming(system, account):
    r = sandbox(system, "GET", "/api/accounts/%s/history" % account, params={"limit": 1000})
    assert r.status_code == 200, r.text
    return [e for e in r.json()["items"] if e["type"] == "in"]


def balance(system, account):
    return D(sandbox(system, "GET", "/api/accounts/%s" % account).json()["balance"])


def new_order(system, direction, amount=None, recipient=None):
    recipient = recipient or wallet(system, direction["currency_out"])
    r = system.api("POST", "/api/v1/orders", json={
        "direction_id": direction["id"], "amount_in": amount or direction["min_amount"],
        "email": "pay-%s@example.com" % uuid.uuid4().hex[:8], "recipient": recipient})
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["recipient"] == recipient
    return order


def pay(system, order, amount=None, reference=None, payer=None):
    """The customer's bank transfer: the exact pay_to instructions unless told otherwise."""
    pay_to = order["pay_to"]
    payer = payer or wallet(system, pay_to["currency"], balance="1000000")
    r = sandbox(system, "POST", "/api/transfers", json={
        "from_account": payer, "to_account": pay_to["account"], "amount": amount or pay_to["amount"],
        "currency": pay_to["currency"], "reference": pay_to["reference"] if reference is None else reference})
    assert r.status_code == 201, r.text
    return r.json()


def status_is(system, order, *statuses):
    def check():
        current = system.api("GET", "/api/v1/orders/%s" % order["token"]).json()
        assert current["status"] in statuses, "order %s is %s" % (order["id"], current["status"])
        return current
    return eventually(check, timeout=30, interval=0.2, message="order %s %s" % (order["id"], "/".join(statuses)))


def order_payments(system, token, order):
    r = system.api("GET", "/api/v1/admin/orders/%d/payments" % order["id"], token=token)
    assert r.status_code == 200, r.text
    return r.json()


def direction(system, kind, currency_in):
    return next(d for d in system.api("GET", "/api/v1/directions").json()
                if d["exchange_type"] == kind and d["currency_in"] == currency_in)


def test_auto_exact_payment_completes_and_pays_amount_out_once(system, admin_token):
    auto = direction(system, "auto", "USDT")
    order = new_order(system, auto, amount="25")
    transfer = pay(system, order)
    done = status_is(system, order, "completed")
    assert done["payment_flag"] is None and D(done["amount_received"]) == D("25")
    history = [h["to_status"] for h in system.api("GET", "/api/v1/admin/orders/%d" % order["id"],
                                                  token=admin_token).json()["history"]]
    assert history == ["new", "paid", "payout", "completed"]

    [received] = incoming(system, order["recipient"])
    assert D(received["amount"]) == D(order["amount_out"]) and received["reference"] == order["reference"]
    assert balance(system, order["recipient"]) == D(order["amount_out"])

    seen = order_payments(system, admin_token, order)
    [payment] = seen["payments"]
    assert payment["external_id"] == transfer["id"] and payment["status"] == "matched"
    [payout] = seen["payouts"]
    assert payout["status"] == "sent" and D(payout["amount"]) == D(order["amount_out"]) and payout["sends"] == 1
    sent = system.api("GET", "/api/v1/admin/payouts?status=sent&order_id=%d" % order["id"], token=admin_token)
    assert [p["id"] for p in sent.json()["items"]] == [payout["id"]]

    # Later polls re-read the payment (overlap window): still one payment, one payout, one transfer.
    after = datetime.datetime.fromisoformat(payout["sent_at"])

    def polled_again():
        accounts = system.api("GET", "/api/v1/admin/payments/accounts", token=admin_token).json()
        usdt = next(a for a in accounts if a["account"] == order["pay_to"]["account"])
        return datetime.datetime.fromisoformat(usdt["polled_ok_at"]) > after + datetime.timedelta(seconds=1)
    eventually(polled_again, timeout=15, message="two more polls")
    assert len(order_payments(system, admin_token, order)["payments"]) == 1
    assert len(incoming(system, order["recipient"])) == 1


def test_semi_auto_waits_in_paid_until_an_operator_confirms(system, admin_token):
    semi = direction(system, "semi_auto", "USD")
    order = new_order(system, semi, amount="10")
    pay(system, order)
    status_is(system, order, "paid")
    assert order_payments(system, admin_token, order)["payouts"] == []
    assert incoming(system, order["recipient"]) == []

    r = system.api("POST", "/api/v1/admin/orders/%d/payout" % order["id"], token=admin_token, json={})
    assert r.status_code == 200, r.text
    status_is(system, order, "completed")
    assert [D(e["amount"]) for e in incoming(system, order["recipient"])] == [D(order["amount_out"])]


@pytest.mark.parametrize("delta, flag", [("-1", "partial"), ("2.5", "over")])
def test_partial_and_over_payments_are_flagged_and_wait(system, admin_token, delta, flag):
    auto = direction(system, "auto", "USDT")
    order = new_order(system, auto, amount="20")
    pay(system, order, amount=str(D(order["pay_to"]["amount"]) + D(delta)))
    paid = status_is(system, order, "paid")
    assert paid["payment_flag"] == flag
    assert D(paid["amount_received"]) == D("20") + D(delta)
    assert order_payments(system, admin_token, order)["payouts"] == []


def test_late_payment_is_flagged_and_waits(system, admin_token):
    auto = direction(system, "auto", "USDT")
    order = new_order(system, auto, amount="15")
    system.sql("UPDATE orders.orders SET expires_at = now() - interval '1 minute' WHERE id = %s", (order["id"],))
    status_is(system, order, "expired")
    pay(system, order)
    paid = status_is(system, order, "paid")
    assert paid["payment_flag"] == "late"
    assert order_payments(system, admin_token, order)["payouts"] == []
    # The operator decides to pay out anyway: a late but full payment allows it.
    r = system.api("POST", "/api/v1/admin/orders/%d/payout" % order["id"], token=admin_token, json={})
    assert r.status_code == 200, r.text
    status_is(system, order, "completed")
    assert balance(system, order["recipient"]) == D(order["amount_out"])


def test_payment_unseen_until_after_expiry_counts_by_the_payment_systems_time(system, admin_token):
    """docs/reliability.md, T11, through the whole system: payments cannot read the account (history fails) while
    the customer pays in time and the order then expires; when the history is back, the payment is on time by the
    payment system's clock: expired -> paid without a flag, and the auto exchange completes."""
    auto = direction(system, "auto", "USDT")
    order = new_order(system, auto, amount="12")
    account = order["pay_to"]["account"]
    fault = sandbox(system, "POST", "/api/faults", json={"operation": "history", "mode": "error",
                                                          "count": 100000, "account": account})
    assert fault.status_code == 201, fault.text
    try:
        transfer = pay(system, order)
        system.sql("UPDATE orders.orders SET expires_at = now() WHERE id = %s", (order["id"],))
        status_is(system, order, "expired")

        def poll_failing():
            accounts = system.api("GET", "/api/v1/admin/payments/accounts", token=admin_token).json()
            return next(a for a in accounts if a["account"] == account)["poll_error"]
        eventually(poll_failing, timeout=15, message="the account's polls fail")
    finally:
        sandbox(system, "DELETE", "/api/faults", params={"account": account})
    done = status_is(system, order, "completed")
    assert done["payment_flag"] is None
    history = [h["to_status"] for h in system.api("GET", "/api/v1/admin/orders/%d" % order["id"],
                                                  token=admin_token).json()["history"]]
    assert history == ["new", "expired", "paid", "payout", "completed"]
    [payment] = order_payments(system, admin_token, order)["payments"]
    assert payment["external_id"] == transfer["id"]
    assert datetime.datetime.fromisoformat(payment["occurred_at"]) <= datetime.datetime.fromisoformat(
        done["expires_at"])


def test_unmatched_payment_is_listed_and_an_operator_assigns_it(system, admin_token):
    auto = direction(system, "auto", "USDT")
    order = new_order(system, auto, amount="11")
    transfer = pay(system, order, reference="my exchange, thank you")

    def listed():
        items = system.api("GET", "/api/v1/admin/payments/unmatched?limit=100", token=admin_token).json()["items"]
        return next((p for p in items if p["external_id"] == transfer["id"]), None)
    payment = eventually(listed, timeout=20, message="payment on the unmatched list")
    assert payment["reason_code"] == "unknown_reference" and payment["amount"] == "11"
    assert system.api("GET", "/api/v1/orders/%s" % order["token"]).json()["status"] == "new"

    for bad in ({"order_id": "x"}, {"order_id": order["id"], "status": "paid"}, {}):
        r = system.api("POST", "/api/v1/admin/payments/%d/assign" % payment["id"], token=admin_token, json=bad)
        assert r.status_code == 422, r.text
    assert system.api("POST", "/api/v1/admin/payments/%d/assign" % payment["id"],
                      json={"order_id": order["id"]}).status_code == 401
    r = system.api("POST", "/api/v1/admin/payments/%d/assign" % payment["id"], token=admin_token,
                   json={"order_id": order["id"], "note": "reference sent by e-mail"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "matched" and r.json()["assigned_by"] == "admin"
    again = system.api("POST", "/api/v1/admin/payments/%d/assign" % payment["id"], token=admin_token,
                       json={"order_id": order["id"]})
    assert again.status_code == 409, again.text
    status_is(system, order, "completed")
    assert listed() is None


def test_accounts_show_balances_and_poll_age(system, admin_token):
    accounts = eventually(lambda: [a for a in system.api("GET", "/api/v1/admin/payments/accounts",
                                                         token=admin_token).json() if a["balance"] is not None],
                          timeout=15)
    by_currency = {a["currency"]: a for a in accounts}
    assert {"USD", "EUR", "RUB", "USDT"} <= set(by_currency)
    eur = by_currency["EUR"]
    assert eur["account"] == "EXCH-EUR" and eur["payout"] is True and eur["poll_age_seconds"] < 10
    assert D(eur["balance"]) > 0

    def reserve_is_balance():
        # Reserves follow the payout accounts' balances (balance_changed -> orders sets currencies.reserve).
        reserves = {d["reserve"] for d in system.api("GET", "/api/v1/directions").json()
                    if d["currency_out"] == "EUR"}
        return reserves == {money.to_str(balance(system, "EXCH-EUR"))}
    eventually(reserve_is_balance, timeout=15, message="EUR reserve = EXCH-EUR balance")
    r = system.api("GET", "/api/v1/admin/payouts?status=bogus", token=admin_token)
    assert r.status_code == 422
