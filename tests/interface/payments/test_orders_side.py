"""The orders side of the payment events (services/orders/store/orders.py apply_payment, apply_payout_result,
apply_balance) against a private copy of the orders schema: every transition, the auto payout, the rejection that
sends a payment back to the unmatched list, and inbox dedupe."""
import datetime
import uuid
from decimal import Decimal as D

import pytest

from libs.contracts import events
from libs.db import Database
from services.orders import seed
from services.orders.dependencies import Catalogue, Orders
from libs.contracts import payments as contract
from tests.conftest import TEST_DATABASE_URL
from tests.interface.payments.harness import drop_schema, migrate_private_schema

CUSTOMER = {"kind": "customer", "name": "customer"}
STAFF = {"kind": "staff", "name": "olga", "role": "operator"}


@pytest.fixture(scope="module")
def store():
    schema = "payorders_%s" % uuid.uuid4().hex[:8]
    migrate_private_schema(schema, "services/orders/migrations")
    db = Database(url=TEST_DATABASE_URL, schema=schema, maxconn=2)
    seed.seed(db)
    yield Orders(db)
    db.close()
    drop_schema(schema)


def direction(store, kind):
    return next(d for d in Catalogue(store.db).list_directions() if d["exchange_type"] == kind)


def new_order(store, kind="auto", amount="100"):
    return store.create_order({"direction_id": direction(store, kind)["id"], "amount_in": amount,
                               "email": "c@example.com", "recipient": "ALICE-X"}, CUSTOMER)


def payment_event(order, amount=None, flag=None, on_time=True, payment_id=1):
    data = {"payment": {"id": payment_id, "system": "sandbox", "account": order["pay_to"]["account"],
                        "external_id": uuid.uuid4().hex, "amount": amount or order["amount_in"],
                        "currency": order["currency_in"], "reference": order["reference"],
                        "occurred_at": events.utcnow().isoformat()},
            "order_id": order["id"], "flag": flag, "on_time": on_time, "assigned_by": None}
    return contract.load(contract.PaymentReceivedSchema, events.envelope("payments", "payment_received", data))


def outbox(store, order_id, event_type):
    return [r["payload"] for r in store.db.fetchall(
        "SELECT payload FROM outbox WHERE aggregate_id = %s AND event_type = %s ORDER BY seq",
        (str(order_id), event_type))]


def apply(store, order, **kw):
    envelope, data = payment_event(order, **kw)
    return store.apply_payment(envelope["event_id"], "orders.handle_payment_received", data), envelope, data


def test_exact_payment_of_an_auto_order_goes_on_to_payout_in_one_transaction(store):
    order = new_order(store, "auto")
    result, envelope, data = apply(store, order)
    assert result["status"] == "payout" and result["payment_flag"] is None
    assert D(result["amount_received"]) == D(order["amount_in"])
    changes = outbox(store, order["id"], "order_status_changed")
    assert [(c["data"]["from_status"], c["data"]["to_status"]) for c in changes] == [
        ("new", "paid"), ("paid", "payout")]
    assert changes[1]["data"]["actor"]["kind"] == "system"
    # Redelivered: the inbox says seen; nothing changes.
    assert store.apply_payment(envelope["event_id"], "orders.handle_payment_received", data) is None
    assert len(outbox(store, order["id"], "order_status_changed")) == 2


def test_semi_auto_waits_in_paid_for_the_operator(store):
    order = new_order(store, "semi_auto")
    result, _, _ = apply(store, order)
    assert result["status"] == "paid" and "payout" in result["actions"]
    assert store.transition("payout", STAFF, order_id=order["id"])["status"] == "payout"


@pytest.mark.parametrize("flag", ["partial", "over", "late"])
def test_flagged_payments_wait_in_paid_even_for_auto(store, flag):
    order = new_order(store, "auto")
    amount = {"partial": "50", "over": "150", "late": None}[flag]
    result, _, _ = apply(store, order, amount=amount, flag=flag, on_time=flag != "late")
    assert result["status"] == "paid" and result["payment_flag"] == flag
    assert len(outbox(store, order["id"], "order_status_changed")) == 1


def test_on_time_payment_of_an_order_expired_meanwhile_is_an_ordinary_payment(store):
    """docs/reliability.md, T11, orders' half: payments says the money arrived before expires_at (on_time, no flag);
    the order was expired by the timer meanwhile. expired -> paid without a flag, and `auto` goes on to payout."""
    order = new_order(store, "auto")
    store.transition("expire", {"kind": "system", "name": "expiry-timer"}, order_id=order["id"])
    result, _, _ = apply(store, order)
    assert result["status"] == "payout" and result["payment_flag"] is None
    history = [h["to_status"] for h in store.get_order(order["id"], with_history=True)["history"]]
    assert history == ["new", "expired", "paid", "payout"]


def test_an_order_that_cannot_take_the_payment_rejects_it(store):
    order = new_order(store, "auto")
    store.transition("customer_cancel", CUSTOMER, token=order["token"])
    result, envelope, _ = apply(store, order, payment_id=77)
    assert result is None
    [rejected] = outbox(store, order["id"], "payment_rejected")
    assert rejected["data"]["payment_id"] == 77 and rejected["data"]["status"] == "canceled"
    assert contract.load(contract.PaymentRejectedSchema, rejected)[1]["reason"]
    assert store.get_order(order["id"])["status"] == "canceled"


def test_payout_results_complete_or_fail_the_order(store):
    sent = new_order(store, "auto")
    apply(store, sent)
    failed = new_order(store, "auto")
    apply(store, failed)

    def payout_event(order, event_type, error=None):
        payout = {"id": 5, "order_id": order["id"], "attempt": 1, "idempotency_key": "payout-x-%d-1" % order["id"],
                  "amount": order["amount_out"], "currency": order["currency_out"], "to_account": "ALICE-X",
                  "provider_id": "t-1" if not error else None, "error": error}
        return contract.load(contract.PayoutResultSchema, events.envelope(
            "payments", event_type, {"payout": payout, "order_id": order["id"], "error": error}))

    envelope, data = payout_event(sent, "payout_sent")
    assert store.apply_payout_result(envelope["event_id"], "orders.handle_payout_sent", data, True)[
        "status"] == "completed"
    # Announced again (payments re-announces a sent payout if asked twice): ignored, on the record.
    envelope, data = payout_event(sent, "payout_sent")
    assert store.apply_payout_result(envelope["event_id"], "orders.handle_payout_sent", data, True) is None
    audit = store.get_order(sent["id"], with_history=True)["audit"]
    assert audit[-1]["outcome"] == "ignored"

    envelope, data = payout_event(failed, "payout_failed", error="422 refused")
    result = store.apply_payout_result(envelope["event_id"], "orders.handle_payout_failed", data, False)
    assert result["status"] == "payout_error"
    assert store.transition("payout", STAFF, order_id=failed["id"])["status"] == "payout"


def test_reserve_follows_the_payout_accounts_balance_newest_wins(store):
    now = events.utcnow()

    def balance(value, at):
        return contract.load(contract.BalanceChangedSchema, events.envelope("payments", "balance_changed", {
            "system": "sandbox", "account": "EXCH-EUR", "currency": "EUR", "balance": value,
            "observed_at": at.isoformat()}))

    envelope, data = balance("12345.67", now + datetime.timedelta(days=1))
    assert store.apply_balance(envelope["event_id"], "orders.handle_balance_changed", data)
    envelope, data = balance("1", now)   # older observation, arriving late
    assert not store.apply_balance(envelope["event_id"], "orders.handle_balance_changed", data)
    reserve = next(c for c in Catalogue(store.db).list_currencies() if c["code"] == "EUR")["reserve"]
    assert D(reserve) == D("12345.67")
