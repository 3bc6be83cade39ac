"""The stuck-work rules (docs/architecture.md, "Stuck work"): which rows are stuck given their ages, the item's wire
form and the counts the gauge shows, and the admin letter the notifier makes of `stuck_work_found`."""
from decimal import Decimal as D

import pytest
from marshmallow import ValidationError

from libs.contracts import stuck
from services.notifier import domain as notifier_domain
from services.orders.domain import stuck as orders_rules
from services.payments import domain as payments_rules


def in_payout(age, version=2, payout_status=None, payout_version=None, order_id=7):
    return {"id": order_id, "version": version, "age_seconds": age, "payout_status": payout_status,
            "payout_order_version": payout_version}


def find(orders=(), payments=(), sending=(), after=600, sending_after=630):
    return payments_rules.stuck_payments_work(list(orders), list(payments), list(sending), after, sending_after)


def test_an_order_in_payout_without_an_answering_payout_is_stuck_once_old_enough():
    assert find([in_payout(599.9)]) == []
    [item] = find([in_payout(600)])
    assert item["kind"] == "payout_missing" and item["id"] == item["order_id"] == 7
    assert item["repair"] == ["create_payout"] and item["service"] == "payments" and item["age_seconds"] == 600.0
    # a live attempt answers it; a failed one only if made for this version (a retry is a newer version)
    assert find([in_payout(9999, payout_status="sending", payout_version=1)]) == []
    assert find([in_payout(9999, payout_status="sent", payout_version=1)]) == []
    assert find([in_payout(9999, version=2, payout_status="failed", payout_version=2)]) == []
    assert [i["kind"] for i in find([in_payout(9999, version=4, payout_status="failed", payout_version=2)])] == [
        "payout_missing"]


@pytest.mark.parametrize("status, is_stuck", [("paid", False), ("payout", False), ("payout_error", False),
                                              ("completed", False), ("deleted", False), ("canceled", True),
                                              ("expired", True), ("new", True), ("processing", True)])
def test_a_matched_payment_is_stuck_when_its_order_is_not_paid(status, is_stuck):
    row = {"id": 3, "order_id": 9, "order_status": status, "amount": D("100.50"), "currency": "USDT",
           "age_seconds": 700}
    items = find(payments=[row])
    assert bool(items) == is_stuck
    if is_stuck:
        assert items[0]["kind"] == "payment_on_unpaid_order" and items[0]["order_id"] == 9
        assert "100.5 USDT" in items[0]["detail"] and status in items[0]["detail"]
        assert items[0]["repair"] == ["unmatch"]
    assert find(payments=[dict(row, age_seconds=599)]) == []


def test_a_sending_payout_is_stuck_only_past_the_reconcilers_reach_and_the_limit():
    row = {"id": 5, "order_id": 11, "age_seconds": 629, "sends": 2, "checks": 4, "error": "lookup failed"}
    assert find(sending=[row], sending_after=630) == []
    [item] = find(sending=[dict(row, age_seconds=631)], sending_after=630)
    assert (item["kind"], item["id"], item["order_id"], item["repair"]) == ("payout_in_doubt", 5, 11, ["reconcile"])
    assert "lookup failed" in item["detail"]


def test_a_withdrawal_approved_for_a_payout_and_not_answered_is_stuck():
    row = {"id": 4, "partner_id": 2, "status": "approved", "method": "payout", "amount": D("12.000"),
           "currency": "USDT", "age_seconds": 601}
    [item] = orders_rules.stuck_withdrawals([row], 600)
    assert (item["kind"], item["id"], item["order_id"], item["service"]) == ("withdrawal_not_paid", 4, None, "orders")
    assert item["repair"] == ["resend_request"] and "12 USDT" in item["detail"]
    assert orders_rules.stuck_withdrawals([dict(row, age_seconds=599)], 600) == []
    # paid by hand is final; settled ones are not waiting for anything
    for other in ({"method": "manual"}, {"status": "paid"}, {"status": "failed"}, {"status": "requested"}):
        assert orders_rules.stuck_withdrawals([dict(row, **other)], 600) == []


def test_counts_name_every_kind_of_the_service_so_the_gauge_returns_to_zero():
    items = find([in_payout(700, order_id=1), in_payout(700, order_id=2)])
    assert stuck.counts(items, stuck.kinds_of("payments")) == {
        "payout_missing": 2, "payment_on_unpaid_order": 0, "payout_in_doubt": 0}
    assert stuck.counts([], stuck.kinds_of("orders")) == {"withdrawal_not_paid": 0}
    assert set(stuck.kinds_of("payments")) | set(stuck.kinds_of("orders")) == set(stuck.KINDS)


def test_the_event_payload_round_trips_and_the_letter_lists_each_new_item():
    items = find([in_payout(3725, order_id=41)])
    data = stuck.StuckWorkFoundSchema().load({"service": "payments", "items": items,
                                              "counts": {"payout_missing": 1}})
    subject, body, key = notifier_domain.stuck_work_alert(data, "e1")
    assert subject == "Stuck work in payments: 1 new item" and key == "stuck:e1"
    assert "payout_missing #41 (order 41), 1h02m old" in body and "create_payout" in body and "/admin/stuck" in body
    with pytest.raises(ValidationError):
        stuck.StuckWorkFoundSchema().load({"service": "payments", "items": []})
    with pytest.raises(ValidationError):
        stuck.StuckWorkFoundSchema().load({"service": "payments", "items": [dict(items[0], kind="nonsense")]})
