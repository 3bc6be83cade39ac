"""End to end, all processes running: the partner program over HTTP (docs/partners.md).

A partner's link leads to a manual exchange that the operator completes (claim -> process -> finalize, so nothing
waits for payments); the partner's balance grows by exactly the commission, once, also when the events are
delivered again and a notifier instance dies meanwhile; the private message with the amount is in the partner's
inbox; a self-referral earns nothing; concurrent withdrawals above the balance: at most one succeeds."""
import concurrent.futures
import os
import signal
import subprocess
import uuid
from decimal import Decimal as D

import pytest
import requests

from libs.amqp_publish import connect
from tests.conftest import ARTIFACTS, ROOT, TEST_AMQP_URI, eventually
from tests.e2e.partners_support import (balance, clear_direction_rule, complete_manual, confirm_destination,
                                        messages, new_partner, order_as_visitor, overview, republish,
                                        set_direction_rule, visit_link)

L5_QUEUE = "evt-orders-partner_credited--notifier.handle_partner_credited"


@pytest.fixture
def ten_percent_of_the_amount(system, admin_token, directions):
    """The manual EUR -> USDT direction pays 10 % of the amount exchanged: 100 EUR (107 USDT) earns 10.7 USDT.
    A direction rule beats the partner's and the global one, so whatever else changed them, this holds."""
    direction = directions["manual"]
    assert (direction["currency_in"], direction["currency_out"], direction["rate_out"]) == ("EUR", "USDT", "1.07")
    set_direction_rule(system, admin_token, direction, "10", "amount")
    yield direction
    clear_direction_rule(system, admin_token, direction)


def queue_state(name):
    conn = connect(TEST_AMQP_URI)
    try:
        _, messages_ready, consumers = conn.channel().queue_declare(name, passive=True)
        return messages_ready, consumers
    finally:
        conn.close()


class ExtraNotifier:
    """A second notifier instance beside the Procfile's (same queues), to be killed with SIGKILL mid-stream."""

    def __init__(self, system):
        env = dict(system.env, NOTIFIER_METRICS_PORT="19113")
        self.log = open(os.path.join(ARTIFACTS, "e2e-extra-notifier.log"), "w")
        self.proc = subprocess.Popen(
            [os.path.join(ROOT, ".venv", "bin", "nameko"), "run", "services.notifier.service", "--config",
             "services/notifier/config.yml"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        eventually(lambda: queue_state(L5_QUEUE)[1] >= 2, timeout=30, message="second notifier consuming")

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.log.close()


def test_a_partner_link_leads_to_a_completed_exchange_credited_once_with_a_private_message(
        system, admin_token, ten_percent_of_the_amount):
    direction = ten_percent_of_the_amount
    partner = new_partner(system)
    assert partner["link"] == "%s/?ref=%s" % (system.env["PUBLIC_URL"], partner["code"])

    visitor = visit_link(system, partner["link"])
    assert visitor.cookies.get("exchanger_ref") == partner["code"]
    visit_link(system, partner["link"])                         # a second visitor: a second click
    order = order_as_visitor(system, visitor, direction)
    assert order["partner_code"] == partner["code"]            # the cookie put it on the order
    assert overview(system, partner)["stats"]["clicks"] == 2
    complete_manual(system, admin_token, order)

    assert eventually(lambda: balance(system, partner) == "10.7", message="credited")
    inbox = eventually(lambda: messages(system, partner), timeout=30, message="L5 in the inbox")
    assert len(inbox) == 1 and inbox[0]["kind"] == "L5" and inbox[0]["order_id"] == order["id"]
    assert "10.7 USDT" in inbox[0]["body"] and str(order["id"]) in inbox[0]["subject"]
    view = overview(system, partner)
    assert view["stats"]["orders_by_status"] == {"completed": 1}
    assert view["referred_orders"][0]["commission"] == "10.7"
    assert [e["amount"] for e in view["stats"]["earnings_by_day"]] == ["10.7"]

    # The same events delivered again, to every subscriber, while a second notifier instance runs and then dies
    # (SIGKILL: whatever it had not acknowledged is delivered again to the Procfile's notifier).
    credited = system.sql("SELECT payload FROM orders.outbox WHERE event_type = 'partner_credited' "
                          "AND aggregate_id = %s",
                          (str(order["id"]),))
    assert len(credited) == 1
    completed = system.sql("SELECT payload FROM orders.outbox WHERE event_type = 'order_status_changed' AND "
                           "aggregate_id = %s AND payload->'data'->>'to_status' = 'completed'", (str(order["id"]),))
    extra = ExtraNotifier(system)
    try:
        republish(credited[0]["payload"], 3)
        republish(completed[0]["payload"], 2)
        eventually(lambda: queue_state(L5_QUEUE)[0] == 0, message="duplicates taken")
    finally:
        extra.kill()
    republish(credited[0]["payload"], 2)
    # a probe published after the duplicates: once it is in, the duplicates before it have been handled
    probe = dict(credited[0]["payload"], event_id=str(uuid.uuid4()),
                 data=dict(credited[0]["payload"]["data"], partner_account_id=10**9 + uuid.uuid4().int % 10**6,
                           order_id=10**12 + uuid.uuid4().int % 10**6))
    republish(probe, 1)
    eventually(lambda: system.sql("SELECT 1 FROM notifier.messages WHERE owner = %s",
                                  ("partner:%s" % probe["data"]["partner_account_id"],)), message="probe handled")
    eventually(lambda: queue_state(L5_QUEUE)[0] == 0)

    assert balance(system, partner) == "10.7"
    assert system.sql("SELECT count(*) AS n FROM orders.partner_ledger WHERE order_id = %s",
                      (order["id"],))[0]["n"] == 1
    assert len(messages(system, partner)) == 1
    assert system.sql("SELECT count(*) AS n FROM notifier.processed_events WHERE event_id = %s",
                      (credited[0]["payload"]["event_id"],))[0]["n"] == 1
    assert system.sql("SELECT count(*) AS n FROM notifier.notifications WHERE order_id = %s AND kind = 'L5'",
                      (order["id"],))[0]["n"] == 1


def test_a_self_referral_earns_nothing(system, admin_token, ten_percent_of_the_amount):
    direction = ten_percent_of_the_amount
    partner = new_partner(system)
    visitor = visit_link(system, partner["link"])
    own = order_as_visitor(system, visitor, direction, email=partner["email"].upper())
    assert own["partner_code"] == partner["code"]
    complete_manual(system, admin_token, own)
    # the credit would have committed with the completion: its absence is final at once
    assert system.sql("SELECT count(*) AS n FROM orders.partner_ledger WHERE order_id = %s", (own["id"],))[0]["n"] == 0
    assert system.sql("SELECT count(*) AS n FROM orders.outbox WHERE event_type = 'partner_credited' "
                      "AND aggregate_id = %s", (str(own["id"]),))[0]["n"] == 0
    view = overview(system, partner)
    assert view["balances"] == [] and view["referred_orders"][0]["commission"] is None
    assert view["stats"]["orders_by_status"] == {"completed": 1}
    assert messages(system, partner) == []
    # and it is among the partner's own exchanges, joined by the e-mail
    mine = system.api("GET", "/api/v1/account/orders", token=partner["token"]).json()["items"]
    assert [o["id"] for o in mine] == [own["id"]]


def test_concurrent_withdrawals_above_the_balance_at_most_one_succeeds(system, admin_token,
                                                                        ten_percent_of_the_amount):
    direction = ten_percent_of_the_amount
    r = system.sensitive("PUT", "/api/v1/admin/commission", token=admin_token, json={"min_withdrawal": "5"})
    assert r.status_code == 200, r.text
    partner = new_partner(system)
    complete_manual(system, admin_token, order_as_visitor(system, visit_link(system, partner["link"]), direction))
    eventually(lambda: balance(system, partner) == "10.7")

    def ask(i):
        return requests.post(system.url + "/api/v1/partner/withdrawals", timeout=30, json={
            "amount": "8", "currency": "USDT", "to_account": "CAROL-USDT"},
            headers={"Authorization": "Bearer " + partner["token"], "Idempotency-Key": "race-%d" % i})
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(ask, range(6)))     # 6 x 8 USDT against 10.7 USDT, at once
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [422] * 5, [r.text for r in responses]
    won = next(r.json() for r in responses if r.status_code == 201)
    assert balance(system, partner) == "2.7"
    assert overview(system, partner)["balances"][0]["pending_withdrawals"] == "8"
    too_small = system.api("POST", "/api/v1/partner/withdrawals", token=partner["token"], json={
        "amount": "2", "currency": "USDT", "to_account": "CAROL-USDT"})
    assert too_small.status_code == 422 and "amount" in too_small.json()["fields"]

    # the partner confirms the new destination from the letter; the operator pays it by hand; a second decision
    # is refused; both are audited
    assert confirm_destination(system, partner) == {"currency": "USDT", "to_account": "CAROL-USDT",
                                                    "confirmed": True}
    r = system.sensitive("POST", "/api/v1/admin/withdrawals/%s/approve" % won["id"], token=admin_token,
                         json={"method": "manual", "reference": "TX-77"})
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    again = system.api("POST", "/api/v1/admin/withdrawals/%s/reject" % won["id"], token=admin_token,
                       json={"reason": "changed my mind"})
    assert again.status_code == 409
    assert balance(system, partner) == "2.7"
    # (only since the withdrawal exists: the schemathesis run may have tried the same id on an empty database)
    audit = system.sql("SELECT action, outcome FROM gateway.audit_log WHERE detail->>'withdrawal_id' = %s "
                       "AND created_at >= %s ORDER BY id", (str(won["id"]), won["created_at"]))
    assert [(a["action"], a["outcome"]) for a in audit] == [("withdrawal.approve", "ok"),
                                                            ("withdrawal.reject", "rejected")]
    listed = system.api("GET", "/api/v1/admin/withdrawals", token=admin_token,
                        params={"partner_id": won["partner_id"]}).json()["items"]
    assert [(w["id"], w["status"], w["reference"]) for w in listed] == [(won["id"], "approved", "TX-77")]
    partners = system.api("GET", "/api/v1/admin/partners", token=admin_token, params={"code": partner["code"]})
    assert partners.json()["items"][0]["balances"][0]["balance"] == "2.7"


def test_account_tokens_and_staff_tokens_open_only_their_own_doors(system, admin_token):
    partner = new_partner(system)
    assert system.api("GET", "/api/v1/admin/partners", token=partner["token"]).status_code == 401
    assert system.api("GET", "/api/v1/partner", token=admin_token).status_code == 401
    assert system.api("GET", "/api/v1/account/orders").status_code == 401
    r = system.sensitive("PUT", "/api/v1/admin/partners/%s" % partner["account"]["id"], token=admin_token,
                         json={"percent": "250"})
    assert r.status_code == 422
    assert system.api("DELETE", "/api/v1/account/token", token=partner["token"]).status_code == 200
    assert system.api("GET", "/api/v1/partner", token=partner["token"]).status_code == 401


def test_a_withdrawal_approved_as_a_payout_is_paid_once_through_payments(system, admin_token,
                                                                         ten_percent_of_the_amount):
    """approve(method=payout) -> partner_payout_requested -> payments sends it once with the withdrawal's key ->
    withdrawal_payout_sent -> the withdrawal is `paid`. Redelivering the request moves no more money."""
    direction = ten_percent_of_the_amount
    r = system.sensitive("PUT", "/api/v1/admin/commission", token=admin_token, json={"min_withdrawal": "5"})
    assert r.status_code == 200, r.text
    partner = new_partner(system)
    complete_manual(system, admin_token, order_as_visitor(system, visit_link(system, partner["link"]), direction))
    eventually(lambda: balance(system, partner) == "10.7")
    r = requests.post(system.sandbox_url + "/api/accounts", timeout=30,
                      json={"currency": "USDT", "balance": "0", "owner": "e2e-%s" % uuid.uuid4().hex[:6]})
    assert r.status_code == 201, r.text
    to_account = r.json()["account"]
    w = system.api("POST", "/api/v1/partner/withdrawals", token=partner["token"], json={
        "amount": "8", "currency": "USDT", "to_account": to_account}).json()
    confirm_destination(system, partner)
    r = system.sensitive("POST", "/api/v1/admin/withdrawals/%s/approve" % w["id"], token=admin_token,
                         json={"method": "payout"})
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text

    def received():
        h = requests.get(system.sandbox_url + "/api/accounts/%s/history" % to_account, timeout=30,
                         params={"limit": 1000}).json()["items"]
        return [D(e["amount"]) for e in h if e["type"] == "in"]

    def status():
        return system.sql("SELECT status FROM orders.partner_withdrawals WHERE id = %s", (w["id"],))[0]["status"]
    eventually(lambda: status() == "paid", timeout=30, message="withdrawal paid")
    assert received() == [D("8")]
    assert balance(system, partner) == "2.7"
    [request] = system.sql("SELECT payload FROM orders.outbox WHERE event_type = 'partner_payout_requested' "
                           "AND aggregate_id = %s", ("withdrawal:%s" % w["id"],))
    envelope = request["payload"]
    republish(envelope)  # the same event again (twice): payments' inbox drops it
    republish(dict(envelope, event_id=str(uuid.uuid4())))  # the same request under a new id: answered, not paid
    answered = lambda: system.sql(  # noqa: E731
        "SELECT count(*) AS n FROM payments.outbox WHERE event_type = 'withdrawal_payout_sent' AND "
        "aggregate_id = %s", ("withdrawal:%s" % w["id"],))[0]["n"]
    eventually(lambda: answered() == 2, timeout=30, message="the repeated request answered")
    [row] = system.sql("SELECT status, sends, idempotency_key FROM payments.withdrawal_payouts "
                       "WHERE withdrawal_id = %s", (w["id"],))
    # The provider key carries the installation's prefix, as order payouts' keys do (docs/payments.md).
    [installation] = system.sql("SELECT key_prefix FROM payments.installation")
    assert row == {"status": "sent", "sends": 1,
                   "idempotency_key": "partner-withdrawal-%s-%s" % (installation["key_prefix"], w["id"])}
    assert received() == [D("8")] and status() == "paid" and balance(system, partner) == "2.7"
    audit = system.sql("SELECT action, outcome FROM orders.audit_log WHERE detail->>'withdrawal_id' = %s "
                       "ORDER BY id", (str(w["id"]),))
    assert [(a["action"], a["outcome"]) for a in audit][1:4] == [("partner_destination_confirm", "ok"),
                                                                 ("partner_withdrawal_approve", "ok"),
                                                                 ("partner_withdrawal_paid", "ok")]
    assert all(a["outcome"] == "rejected" for a in audit[4:])  # a repeated answer changes nothing


def test_an_admin_can_resolve_a_withdrawal_payout_through_the_api(system, admin_token):
    """A withdrawal's payout is resolved by the rules of an order's (services/payments/payouts.py); the route is the
    admin's, like the order payouts' one."""
    body = {"outcome": "failed", "note": "checked at the payment system"}
    missing = system.sensitive("POST", "/api/v1/admin/withdrawal-payouts/999999/resolve", token=admin_token, json=body)
    assert missing.status_code == 404, missing.text
    bad = system.sensitive("POST", "/api/v1/admin/withdrawal-payouts/1/resolve", token=admin_token,
                           json={"outcome": "maybe", "note": "x"})
    assert bad.status_code == 422 and "outcome" in bad.json()["fields"]
