"""Events -> read-model rows: what each order, payment and payout event means for the reporting tables."""
from decimal import Decimal

import pytest
from marshmallow import ValidationError

from services.reporting import domain
from tests.unit.reporting import factories as f


def test_order_created_gives_the_whole_row():
    event = f.created(f.order(5, partner_code="p1"))
    event_id, occurred_at, row = domain.row_from_order_event(event)
    assert str(event_id) == event["event_id"] and occurred_at == f.T0
    assert set(row) == set(domain.ORDER_COLUMNS)
    assert row["id"] == 5 and row["version"] == 1 and row["status"] == "new"
    assert row["amount_in"] == Decimal("100") and row["fee_amount"] == Decimal("0.46")
    assert row["previous_status"] is None and row["last_action"] == "create"
    assert row["partner_code"] == "p1" and row["event_at"] == f.T0


def test_status_change_records_where_the_order_came_from():
    snapshot = f.order(5, version=2, status="canceled")
    _, _, row = domain.row_from_order_event(f.changed(snapshot, "new", action="customer_cancel"))
    assert (row["status"], row["previous_status"], row["last_action"], row["version"]) == \
        ("canceled", "new", "customer_cancel", 2)


def test_unknown_fields_are_ignored():
    _, _, row = domain.row_from_order_event(f.created(f.order(5, brand_new_field={"x": 1})))
    assert row["id"] == 5


@pytest.mark.parametrize("missing", ["version", "status", "amount_in", "created_at"])
def test_a_snapshot_without_what_we_need_is_malformed(missing):
    snapshot = f.order(5)
    del snapshot[missing]
    with pytest.raises(ValidationError):
        domain.row_from_order_event(f.created(snapshot))


def test_a_float_amount_is_malformed():
    with pytest.raises(ValidationError):
        domain.row_from_order_event(f.created(f.order(5, amount_in=100.5)))


def test_envelope_without_event_id_is_malformed():
    event = f.created(f.order(5))
    del event["event_id"]
    with pytest.raises(ValidationError):
        domain.row_from_order_event(event)


def test_rebuild_snapshot_carries_previous_status_and_action():
    row = domain.row_from_snapshot(dict(f.order(9, version=4, status="expired"), previous_status="new",
                                            last_action="expire"))
    assert (row["previous_status"], row["last_action"]) == ("new", "expire")
    assert row["event_at"] == row["updated_at"]


def test_payment_received():
    _, _, row = domain.payment_row(f.payment_received(f.payment(7, order_id=5, amount="99.5"), flag="partial"))
    assert row["id"] == "7" and row["order_id"] == 5 and row["amount"] == Decimal("99.5")
    assert row["status"] == "matched" and row["flag"] == "partial" and row["currency"] == "USDT"
    assert row["data"]["payment"]["external_id"] == "tx-7"


def test_unmatched_payment_has_no_order():
    _, _, row = domain.payment_row(f.payment_unmatched(f.payment(8, order_id=5, status="unmatched")))
    assert row["order_id"] is None and row["status"] == "unmatched"


def test_payment_without_id_is_malformed_and_bad_amounts_stay_empty():
    with pytest.raises(KeyError):
        domain.payment_row(f.envelope("payment_received", {"order_id": 1}, source="payments"))
    _, _, row = domain.payment_row(f.payment_received(f.payment(9, amount=1.5)))
    assert row["amount"] is None
    _, _, row = domain.payment_row(f.payment_received(f.payment(9, amount="lots")))
    assert row["amount"] is None


def test_payout_events_use_the_attempt_as_version():
    _, _, row = domain.payout_row(f.payout_result(f.payout(3, order_id=5, attempt=2)))
    assert (row["id"], row["order_id"], row["status"], row["version"]) == ("3", 5, "sent", 2)
    failed = f.payout(4, order_id=5, status="failed", error="refused")
    _, _, row = domain.payout_row(f.payout_result(failed, "payout_failed"))
    assert row["status"] == "failed" and row["error"] == "refused" and row["sent_at"] is None


def test_payout_without_any_id_is_malformed():
    with pytest.raises(KeyError):
        domain.payout_row(f.envelope("payout_sent", {"error": None}, source="payments"))
