"""payments' `payout_succeeded_after_resolve` for a partner withdrawal (docs/partners.md, "Withdrawals"): its payout
was resolved `failed` and the money went out after all. In the real orders service: a withdrawal still approved
settles `paid` (a failed answer after it returns nothing); one that failed and gave its amount back to the balance
has it taken out again by one `withdrawal_late_paid` ledger row, as far as the balance reaches (the rest is the
shortfall, for the admin); every delivery after the first changes nothing."""
from decimal import Decimal as D

from nameko.testing.services import entrypoint_hook

from libs.contracts import events
from services.orders.store import stuck as stuck_store
from tests.interface.partners.conftest import STAFF, call, completed_order, manual_direction, partner


def funded_partner(orders, sql):
    """A partner with 10.7 USDT (10 % of the amount of one 100 EUR order) who may withdraw from 1 USDT."""
    p = partner(orders, sql)
    call(orders, "update_partner", p["partner"]["id"], {"percent": "10", "base": "amount"}, STAFF)
    completed_order(orders, manual_direction(orders), partner_code=p["partner"]["code"])
    call(orders, "update_commission", {"min_withdrawal": "1"}, STAFF)
    return p


def approved_for_payout(orders, p, amount):
    w = call(orders, "request_withdrawal", p["id"], amount, "USDT", "CAROL-USDT", None)
    call(orders, "decide_withdrawal", w["id"], "approve", STAFF, "payout", None, None)
    return w


def deliver(orders, method, envelope):
    with entrypoint_hook(orders, method) as hook:
        hook(envelope)
    return envelope


def failed_answer(w):
    return events.envelope("payments", events.WITHDRAWAL_PAYOUT_FAILED, {
        "withdrawal_id": w["id"], "idempotency_key": "partner-withdrawal-%s" % w["id"], "amount": w["amount"],
        "currency": "USDT", "to_account": "CAROL-USDT", "provider_id": None, "error": "resolved failed by admin"})


def late_success(w, provider_id="T-W-LATE"):
    """As payments announces it (services/payments/payouts.py, the withdrawal payouts' _late_success_event)."""
    return events.envelope("payments", events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, {
        "kind": "withdrawal", "withdrawal_id": w["id"], "payout_id": 700 + w["id"],
        "idempotency_key": "partner-withdrawal-%s" % w["id"], "amount": w["amount"], "currency": "USDT",
        "to_account": "CAROL-USDT", "provider_id": provider_id, "resolved_by": "admin-late"})


def ledger(sql, p):
    return [(r["kind"], r["amount"], r["balance_after"]) for r in sql(
        "SELECT kind, amount, balance_after FROM orders.partner_ledger WHERE partner_id = %s ORDER BY id",
        (p["partner"]["id"],))]


def withdrawal(sql, w):
    return sql("SELECT * FROM orders.partner_withdrawals WHERE id = %s", (w["id"],))[0]


def late_audit(sql, w):
    return sql("SELECT * FROM orders.audit_log WHERE action = %s AND detail->>'withdrawal_id' = %s ORDER BY id",
               (events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, str(w["id"])))


def test_a_failed_withdrawal_paid_after_all_has_its_returned_amount_taken_back_once(orders, sql):
    p = funded_partner(orders, sql)
    w = approved_for_payout(orders, p, "5")
    deliver(orders, "handle_withdrawal_payout_failed", failed_answer(w))
    assert withdrawal(sql, w)["status"] == "failed"
    envelope = deliver(orders, "handle_payout_succeeded_after_resolve", late_success(w))
    deliver(orders, "handle_payout_succeeded_after_resolve", envelope)              # redelivered
    deliver(orders, "handle_payout_succeeded_after_resolve", late_success(w))      # announced again, new id

    assert ledger(sql, p) == [("credit", D("10.7"), D("10.7")), ("withdrawal", D("-5"), D("5.7")),
                              ("withdrawal_return", D("5"), D("10.7")), ("withdrawal_late_paid", D("-5"), D("5.7"))]
    row = withdrawal(sql, w)
    assert row["status"] == "failed" and row["late_paid_at"] is not None
    assert (row["late_paid_provider_id"], row["late_paid_shortfall"]) == ("T-W-LATE", None)
    audit = late_audit(sql, w)
    assert [(a["actor"], a["outcome"], a["detail"]["debit"]) for a in audit] == [
        ("payments", "ok", "5"), ("payments", "ok", "0")]                           # the second took nothing
    assert call(orders, "partner_overview", p["id"])["balances"][0]["balance"] == "5.7"
    [listed] = [x for x in call(orders, "list_withdrawals", {"partner_id": p["partner"]["id"]})["items"]
                if x["id"] == w["id"]]
    assert listed["late_paid_at"] and listed["late_paid_provider_id"] == "T-W-LATE"


def test_an_approved_withdrawal_paid_after_all_settles_paid_and_a_later_failed_answer_returns_nothing(orders, sql,
                                                                                                     db):
    p = funded_partner(orders, sql)
    w = approved_for_payout(orders, p, "4")
    deliver(orders, "handle_payout_succeeded_after_resolve", late_success(w, provider_id="T-W-2"))
    deliver(orders, "handle_withdrawal_payout_failed", failed_answer(w))
    row = withdrawal(sql, w)
    assert (row["status"], row["provider_id"], row["late_paid_provider_id"]) == ("paid", "T-W-2", "T-W-2")
    assert row["settled_at"] is not None
    assert ledger(sql, p) == [("credit", D("10.7"), D("10.7")), ("withdrawal", D("-4"), D("6.7"))]
    # nothing asks payments for this payout again: the stuck-work resend finds it no longer waiting
    assert stuck_store.resend_payout_request(db, w["id"], STAFF, {"id": w["id"]}) is None


def test_what_the_balance_no_longer_holds_is_the_shortfall_for_the_admin(orders, sql):
    p = funded_partner(orders, sql)
    w = approved_for_payout(orders, p, "5")
    deliver(orders, "handle_withdrawal_payout_failed", failed_answer(w))
    call(orders, "request_withdrawal", p["id"], "8", "USDT", "CAROL-USDT", None)     # the returned money asked for
    deliver(orders, "handle_payout_succeeded_after_resolve", late_success(w))
    assert ledger(sql, p)[-1] == ("withdrawal_late_paid", D("-2.7"), D("0"))
    row = withdrawal(sql, w)
    assert row["late_paid_shortfall"] == D("2.3")
    [audit] = late_audit(sql, w)
    assert (audit["detail"]["debit"], audit["detail"]["shortfall"]) == ("2.7", "2.3")
    [listed] = [x for x in call(orders, "list_withdrawals", {"partner_id": p["partner"]["id"]})["items"]
                if x["id"] == w["id"]]
    assert listed["late_paid_shortfall"] == "2.3"
