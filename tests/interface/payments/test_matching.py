"""Polling and matching with the payments service in a nameko container: real sandbox, PostgreSQL, RabbitMQ."""
import datetime
from decimal import Decimal as D

import pytest

from tests.conftest import eventually
from tests.interface.payments.harness import utcnow

pytestmark = pytest.mark.timeout(60)


def received(env, order_id):
    return eventually(lambda: env.events_for("payment_received", order_id), message="payment_received")


def test_exact_payment_is_matched_and_announced_once(env, service):
    service()
    order = env.order()
    env.created(order)
    eventually(lambda: env.db.fetchone("SELECT 1 FROM orders WHERE id = %s", (order["id"],)))
    transfer = env.pay(order)

    [event] = received(env, order["id"])
    data = event["data"]
    assert data["flag"] is None and data["on_time"] is True
    assert data["payment"]["external_id"] == transfer["id"]
    assert data["payment"]["amount"] == "100" and data["payment"]["currency"] == "USDT"
    [payment] = env.payments(order["id"])
    assert payment["status"] == "matched" and payment["order_id"] == order["id"]
    # Polls go on (overlap window re-reads the entry): still one payment, one event.
    polled = env.db.fetchone("SELECT polled_ok_at FROM accounts WHERE currency = 'USDT'")["polled_ok_at"]
    eventually(lambda: env.db.fetchone("SELECT polled_ok_at FROM accounts WHERE currency = 'USDT'")[
        "polled_ok_at"] > polled + datetime.timedelta(seconds=0.5))
    assert len(env.payments(order["id"])) == 1
    assert len(env.events_for("payment_received", order["id"])) == 1


@pytest.mark.parametrize("paid, flag", [("60", "partial"), ("150.5", "over")])
def test_partial_and_over_payments_are_flagged(env, service, paid, flag):
    service()
    order = env.order()
    env.created(order)
    eventually(lambda: env.db.fetchone("SELECT 1 FROM orders WHERE id = %s", (order["id"],)))
    env.pay(order, amount=paid)
    [event] = received(env, order["id"])
    assert event["data"]["flag"] == flag
    assert D(event["data"]["payment"]["amount"]) == D(paid)


def test_payment_after_expiry_is_late_and_before_expiry_is_on_time(env, service):
    """The rule of docs/reliability.md, T11, without downtime: the payment system's time of the payment decides, not
    when we saw it."""
    service()
    late = env.order(expires_in=-60)          # expired a minute ago; the copy says status expired
    late["status"] = "expired"
    on_time = env.order(expires_in=3600)
    env.created(late)
    env.created(on_time)
    eventually(lambda: len(env.db.fetchall("SELECT 1 FROM orders")) == 2)
    env.pay(late)
    env.pay(on_time)
    assert received(env, late["id"])[0]["data"]["flag"] == "late"
    assert received(env, late["id"])[0]["data"]["on_time"] is False
    assert received(env, on_time["id"])[0]["data"]["flag"] is None


def test_unmatched_payments_wait_for_an_operator_and_can_be_assigned(env, service):
    container = service()
    order = env.order()
    env.created(order)
    eventually(lambda: env.db.fetchone("SELECT 1 FROM orders WHERE id = %s", (order["id"],)))
    env.pay(order, reference="for the exchange, thanks")
    unmatched = eventually(lambda: [p for p in env.payments() if p["status"] == "unmatched"])
    assert unmatched[0]["reason_code"] == "unknown_reference"
    assert env.events("payment_unmatched")
    assert not env.events_for("payment_received", order["id"])

    from nameko.testing.services import entrypoint_hook
    with entrypoint_hook(container, "list_unmatched") as list_unmatched:
        listed = list_unmatched()
    assert [p["id"] for p in listed["items"]] == [unmatched[0]["id"]]

    with entrypoint_hook(container, "assign_payment") as assign:
        with pytest.raises(Exception) as refused:
            assign(unmatched[0]["id"], 999999, {"name": "olga", "role": "operator"})
        assert "NotFound" in type(refused.value).__name__ or "not known" in str(refused.value)
        payment = assign(unmatched[0]["id"], order["id"], {"name": "olga", "role": "operator", "ip": "10.0.0.1"},
                         "customer sent the reference by e-mail")
    assert payment["status"] == "matched" and payment["assigned_by"] == "olga"
    [event] = env.events_for("payment_received", order["id"])
    assert event["data"]["assigned_by"] == "olga" and event["data"]["flag"] is None
    audit = env.db.fetchall("SELECT actor, action, outcome FROM audit_log ORDER BY id")
    assert [(a["actor"], a["outcome"]) for a in audit] == [("olga", "rejected"), ("olga", "ok")]


def test_payment_before_the_order_event_is_matched_when_the_order_arrives(env, service):
    """The customer paid faster than order_created travelled: unmatched at first, matched when it arrives."""
    service()
    order = env.order()
    env.pay(order)
    eventually(lambda: [p for p in env.payments() if p["reason_code"] == "unknown_reference"])
    env.created(order)
    [event] = received(env, order["id"])
    assert event["data"]["flag"] is None
    [payment] = env.payments(order["id"])
    assert payment["status"] == "matched"


def test_orders_rejection_puts_the_payment_back_on_the_unmatched_list(env, service):
    service()
    order = env.order()
    env.created(order)
    eventually(lambda: env.db.fetchone("SELECT 1 FROM orders WHERE id = %s", (order["id"],)))
    env.pay(order)
    [event] = received(env, order["id"])
    env.publish("payment_rejected", {"payment_id": event["data"]["payment"]["id"], "order_id": order["id"],
                                     "status": "canceled", "reason": "order 1 is canceled: cannot pay"})
    payment = eventually(lambda: [p for p in env.payments(order["id"]) if p["status"] == "unmatched"])[0]
    assert payment["reason_code"] == "rejected" and payment["candidate_order_id"] == order["id"]
    assert payment["order_id"] is None


def test_a_second_payment_for_a_paid_order_is_unmatched(env, service):
    service()
    order = env.order()
    env.created(order)
    eventually(lambda: env.db.fetchone("SELECT 1 FROM orders WHERE id = %s", (order["id"],)))
    env.pay(order)
    received(env, order["id"])
    env.pay(order)
    second = eventually(lambda: [p for p in env.payments(order["id"]) if p["status"] == "unmatched"])[0]
    assert second["reason_code"] == "already_paid"
    assert len(env.events_for("payment_received", order["id"])) == 1


def test_balance_of_payout_accounts_is_announced(env, service):
    service()
    events = eventually(lambda: len(env.events("balance_changed")) >= 2 and env.events("balance_changed"))
    by_account = {e["data"]["account"]: e["data"] for e in events}
    assert by_account[env.accounts["EUR"]]["balance"] == "100000"
    order = env.order()
    env.created(order)
    env.pay(order)
    eventually(lambda: any(e["data"]["balance"] == "100100" for e in env.events("balance_changed")
                           if e["data"]["account"] == env.accounts["USDT"]), message="balance after payment")
    assert utcnow()


def test_payment_to_manual_order_gets_the_same_checks(env, service):
    """A manual exchange's fitting payment is noted on the order for the operator (nothing announced), as
    before; a second payment, one in another currency or to another account, or one for a closed manual order
    goes to the unmatched list with its reason, as for the other exchange types."""
    service()
    manual = env.order(exchange_type="manual")
    closed = env.order(exchange_type="manual", status="canceled")
    env.created(manual)
    env.created(closed)
    eventually(lambda: len(env.db.fetchall("SELECT 1 FROM orders")) == 2)
    env.pay(manual)
    [first] = eventually(lambda: env.payments(manual["id"]), message="manual payment noted")
    assert (first["status"], first["order_id"], first["reason_code"]) == ("manual", manual["id"], "manual_order")
    env.pay(manual, amount="5")                                 # a second payment
    env.pay(manual, currency="EUR", amount="100")               # another currency (to our EUR account)
    env.pay(closed)                                             # a closed order
    unmatched = eventually(lambda: len(env.payments()) == 4 and [p for p in env.payments()
                                                                 if p["status"] == "unmatched"],
                           message="the misfits unmatched")
    assert sorted(p["reason_code"] for p in unmatched) == ["already_paid", "order_canceled", "wrong_currency"]
    assert all(p["candidate_order_id"] in (manual["id"], closed["id"]) and p["order_id"] is None
               for p in unmatched)
    events = eventually(lambda: len(env.events("payment_unmatched")) == 3 and env.events("payment_unmatched"))
    assert sorted(e["data"]["reason_code"] for e in events) == ["already_paid", "order_canceled", "wrong_currency"]
    assert not env.events("payment_received")
