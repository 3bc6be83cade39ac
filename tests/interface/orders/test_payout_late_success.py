"""payments' `payout_succeeded_after_resolve` for an order (docs/payments.md, "Resolving a payout by hand"): the
payout an operator resolved `failed` went out after all. Published to `payments.events` as the relay does, to the
orders service in a real nameko container: the order is flagged with a history note and an audit row, once however
often it is delivered; its status stays, no payout of it is allowed any more, and finalizing it still is."""
import uuid

import pytest
from nameko.testing.services import entrypoint_hook, entrypoint_waiter

from libs import errors
from libs.contracts import events
from tests.interface.event_publishing import publish
from tests.interface.orders_fixtures import db, orders  # noqa: F401  (fixtures)
from libs.contracts import payments as contract
from services.orders.dependencies import Catalogue, Orders

STAFF = {"name": "op-late", "role": "operator"}
CUSTOMER = {"kind": "customer", "name": "customer"}
REFUSAL = "the payout of this order went out after it was resolved failed: finalize it instead"
HANDLER = "handle_payout_succeeded_after_resolve"






def call(container, method, *args):
    with entrypoint_hook(container, method) as hook:
        return hook(*args)


def paid_auto_order(store):
    """An auto order paid exactly: it goes straight on to `payout`."""
    direction = next(d for d in Catalogue(store.db).list_directions() if d["exchange_type"] == "auto")
    order = store.create_order({"direction_id": direction["id"], "amount_in": "100", "email": "c@example.com",
                                "recipient": "ALICE-LATE"}, CUSTOMER)
    envelope, data = contract.load(contract.PaymentReceivedSchema, events.envelope("payments", "payment_received", {
        "payment": {"id": 1, "system": "sandbox", "account": order["pay_to"]["account"],
                    "external_id": uuid.uuid4().hex, "amount": order["amount_in"], "currency": order["currency_in"],
                    "reference": order["reference"], "occurred_at": events.utcnow().isoformat()},
        "order_id": order["id"], "flag": None, "on_time": True, "assigned_by": None}))
    assert store.apply_payment(envelope["event_id"], "orders.handle_payment_received", data)["status"] == "payout"
    return order


def payout(order, provider_id=None, error=None):
    return {"id": 900 + order["id"], "order_id": order["id"], "attempt": 1,
            "idempotency_key": "late-order-%s-1" % order["id"], "amount": order["amount_out"],
            "currency": order["currency_out"], "to_account": "ALICE-LATE", "provider_id": provider_id,
            "error": error}


def payout_failed(store, order):
    envelope, data = contract.load(contract.PayoutResultSchema, events.envelope("payments", "payout_failed", {
        "payout": payout(order, error="resolved failed by admin"), "order_id": order["id"],
        "error": "resolved failed by admin"}))
    return store.apply_payout_result(envelope["event_id"], "orders.handle_payout_failed", data, False)


def late_success(order, provider_id="T-LATE-1"):
    """The event as payments announces it (services/payments/payouts.py _announce_late_success)."""
    return events.envelope("payments", events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, {
        "kind": "order", "order_id": order["id"], "payout": payout(order, provider_id=provider_id),
        "payout_id": 900 + order["id"], "idempotency_key": "late-order-%s-1" % order["id"],
        "amount": order["amount_out"], "currency": order["currency_out"], "to_account": "ALICE-LATE",
        "provider_id": provider_id, "resolved_by": "admin-late"})



def late_rows(db, order_id):
    history = db.fetchall("SELECT * FROM status_history WHERE order_id = %s AND action = %s ORDER BY id",
                          (order_id, events.PAYOUT_SUCCEEDED_AFTER_RESOLVE))
    audit = db.fetchall("SELECT * FROM audit_log WHERE order_id = %s AND action = %s ORDER BY id",
                        (order_id, events.PAYOUT_SUCCEEDED_AFTER_RESOLVE))
    return history, audit


def test_a_late_success_flags_the_order_once_refuses_another_payout_and_allows_finalize(orders, db):
    store = Orders(db)
    order = paid_auto_order(store)
    failed = payout_failed(store, order)
    assert failed["status"] == "payout_error"
    envelope = late_success(order)
    for _ in range(2):   # delivered twice: one effect
        with entrypoint_waiter(orders, HANDLER, timeout=20):
            publish(envelope)

    flagged = call(orders, "get_order", order["id"])
    assert flagged["status"] == "payout_error" and flagged["version"] == failed["version"]   # not moved
    assert flagged["payout_late_success_at"] and flagged["payout_late_success_provider_id"] == "T-LATE-1"
    assert "payout" not in flagged["actions"] and "finalize" in flagged["actions"]
    history, audit = late_rows(db, order["id"])
    assert len(history) == 1 and len(audit) == 1
    assert (history[0]["from_status"], history[0]["to_status"], history[0]["actor"]) == (
        "payout_error", "payout_error", "payments")
    assert "T-LATE-1" in history[0]["note"] and "do not pay it again" in history[0]["note"]
    assert (audit[0]["actor"], audit[0]["outcome"]) == ("payments", "ok")
    assert audit[0]["detail"]["provider_id"] == "T-LATE-1" and audit[0]["detail"]["resolved_by"] == "admin-late"
    assert db.fetchone("SELECT count(*) AS n FROM processed_events WHERE event_id = %s",
                       (envelope["event_id"],))["n"] == 1

    with pytest.raises(errors.Conflict) as refused:
        call(orders, "request_payout", order["id"], STAFF)
    assert REFUSAL in str(refused.value)
    rejected = db.fetchone("SELECT * FROM audit_log WHERE order_id = %s AND action = 'payout' ORDER BY id DESC "
                           "LIMIT 1", (order["id"],))
    assert rejected["outcome"] == "rejected" and rejected["detail"]["reason"] == REFUSAL
    assert call(orders, "get_order", order["id"])["status"] == "payout_error"

    done = call(orders, "finalize", order["id"], "paid by the late transfer T-LATE-1", STAFF)
    assert done["status"] == "completed" and done["payout_late_success_provider_id"] == "T-LATE-1"


def test_a_late_success_before_the_failed_answer_still_keeps_the_order_from_a_second_payout(orders, db):
    """The two events travel on separate queues: the late success may come while the order is still in `payout`."""
    store = Orders(db)
    order = paid_auto_order(store)
    with entrypoint_hook(orders, HANDLER) as hook:
        hook(late_success(order, provider_id="T-LATE-2"))
    assert call(orders, "get_order", order["id"])["status"] == "payout"
    assert payout_failed(store, order)["status"] == "payout_error"
    with pytest.raises(errors.Conflict, match="finalize it instead"):
        call(orders, "request_payout", order["id"], STAFF)
    history, audit = late_rows(db, order["id"])
    assert [(h["from_status"], h["to_status"]) for h in history] == [("payout", "payout")] and len(audit) == 1


def test_a_late_success_of_an_unknown_order_is_on_the_record(orders, db):
    ghost = {"id": 2**40, "amount_out": "5", "currency_out": "USDT"}
    with entrypoint_hook(orders, HANDLER) as hook:
        hook(late_success(ghost))
    [row] = db.fetchall("SELECT * FROM audit_log WHERE order_id = %s", (ghost["id"],))
    assert (row["action"], row["outcome"], row["detail"]["reason"]) == (
        events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, "ignored", "order not found")
