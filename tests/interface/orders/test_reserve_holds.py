"""Reserves are held, not only checked (docs/architecture.md, "Reserves"): an order holds its amount out of the
to-currency's reserve from its creation until it is cancelled, expires, is deleted or completes, so orders that
together exceed the reserve cannot all be accepted, even at once. Each test makes its own currency and direction,
so the shared database's seeded reserves are untouched."""
import uuid
from decimal import Decimal as D

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_hook

from libs import errors
from libs.contracts import events
from libs.contracts import payments as contract
from services.orders.dependencies import Orders
from tests.interface.orders_fixtures import db, orders  # noqa: F401  (fixtures)

ADMIN = {"name": "admin-reserves", "role": "admin"}
CUSTOMER = {"kind": "customer", "name": "customer"}






def call(container, method, *args):
    with entrypoint_hook(container, method) as hook:
        return hook(*args)


def own_direction(container, reserve="1000", exchange_type="manual"):
    """A fresh to-currency with `reserve`, and a 1:1 direction without fee into it from EUR."""
    code = "H" + uuid.uuid4().hex[:8].upper()
    call(container, "create_currency", {"code": code, "name": "Held %s" % code, "precision": 2,
                                        "payment_system": "sandbox", "account": "EXCH-%s" % code,
                                        "reserve": reserve}, ADMIN)
    return call(container, "create_direction", {
        "currency_in": "EUR", "currency_out": code, "exchange_type": exchange_type, "rate_in": "1",
        "rate_out": "1", "fee": "0", "min_amount": "10", "max_amount": "1000"}, ADMIN)


def order_body(direction, amount):
    return {"direction_id": direction["id"], "amount_in": amount, "email": "held@example.com", "recipient": "W"}


def currency(container, code):
    return next(c for c in call(container, "list_currencies") if c["code"] == code)


def available(container, direction):
    wire = call(container, "get_direction", direction["id"])
    held = currency(container, direction["currency_out"])
    assert D(held["available"]) == D(wire["reserve_available"])
    return D(wire["reserve_available"])


def test_reserves_are_checked_never_held(orders, nameko_config):
    """Five orders of 300 against a reserve of 1000, all in flight at once: three fit, two are refused with the
    field at fault; what the three hold is shown next to the reserve."""
    direction = own_direction(orders, reserve="1000")
    with ServiceRpcProxy("orders", nameko_config) as rpc:
        replies = [rpc.create_order.call_async(order_body(direction, "300"), {"ip": "127.0.0.1"})
                   for _ in range(5)]
        results = []
        for reply in replies:
            try:
                results.append(reply.result())
            except RemoteError as exc:
                results.append(exc)
    accepted = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if not isinstance(r, dict)]
    assert len(accepted) == 3 and len(refused) == 2, results
    for exc in refused:
        assert exc.exc_type == "ValidationFailed" and "reserve" in exc.value
    # the field error the gateway shows (422): what can still be paid out
    with pytest.raises(errors.ValidationFailed) as exc:
        call(orders, "create_order", order_body(direction, "300"), {})
    assert exc.value.fields == {"amount_in": ["we can pay out at most 100 %s now" % direction["currency_out"]]}
    held = currency(orders, direction["currency_out"])
    assert (D(held["reserve"]), D(held["held"]), D(held["available"])) == (D(1000), D(900), D(100))
    assert available(orders, direction) == D(100)
    assert call(orders, "create_order", order_body(direction, "100"), {})["status"] == "new"
    assert available(orders, direction) == D(0)


def test_a_release_on_cancel_expiry_or_delete_frees_the_reserve_again(orders, db):
    direction = own_direction(orders, reserve="600")
    store = Orders(db)
    first = call(orders, "create_order", order_body(direction, "300"), {})
    second = call(orders, "create_order", order_body(direction, "300"), {})
    with pytest.raises(errors.ValidationFailed):
        call(orders, "create_order", order_body(direction, "300"), {})

    call(orders, "cancel_by_customer", first["token"])                    # cancel releases
    assert available(orders, direction) == D(300)
    third = call(orders, "create_order", order_body(direction, "300"), {})
    assert available(orders, direction) == D(0)

    with db.transaction() as cur:                                         # expiry releases
        cur.execute("UPDATE orders SET expires_at = now() - interval '1 minute' WHERE id = %s", (second["id"],))
    store.expire_due()
    assert call(orders, "get_order", second["id"])["status"] == "expired"
    assert available(orders, direction) == D(300)

    call(orders, "delete", third["id"], ADMIN)                            # deleting an open order releases
    assert available(orders, direction) == D(600)
    # a second release of the same order (a repeated delete, cancel of an expired one) frees nothing more
    for action in (lambda: call(orders, "delete", third["id"], ADMIN),
                   lambda: call(orders, "cancel", second["id"], "again", ADMIN)):
        with pytest.raises(errors.Conflict):
            action()
    assert available(orders, direction) == D(600)


def _paid(store, order):
    data = {"payment": {"id": 1, "system": "sandbox", "account": order["pay_to"]["account"],
                        "external_id": uuid.uuid4().hex, "amount": order["amount_in"],
                        "currency": order["currency_in"], "reference": order["reference"],
                        "occurred_at": events.utcnow().isoformat()},
            "order_id": order["id"], "flag": None, "on_time": True, "assigned_by": None}
    envelope, data = contract.load(contract.PaymentReceivedSchema,
                                   events.envelope("payments", "payment_received", data))
    return store.apply_payment(envelope["event_id"], "orders.handle_payment_received", data)


def _payout_result(store, order, sent):
    event_type = "payout_sent" if sent else "payout_failed"
    data = {"payout": {"id": 1, "order_id": order["id"], "attempt": 1, "idempotency_key": "k-%s" % order["id"],
                       "amount": order["amount_out"], "currency": order["currency_out"], "to_account": "W",
                       "provider_id": "T-1" if sent else None, "error": None if sent else "refused"},
            "order_id": order["id"], "error": None if sent else "refused"}
    envelope, data = contract.load(contract.PayoutResultSchema, events.envelope("payments", event_type, data))
    return store.apply_payout_result(envelope["event_id"], "orders.handle_%s" % event_type, data, sent)


def test_a_payout_keeps_the_hold_until_sent_and_a_failed_one_keeps_it(orders, db):
    direction = own_direction(orders, reserve="1000", exchange_type="auto")
    store = Orders(db)
    sent = store.create_order(order_body(direction, "400"), CUSTOMER)
    failed = store.create_order(order_body(direction, "500"), CUSTOMER)
    assert _paid(store, sent)["status"] == "payout" and _paid(store, failed)["status"] == "payout"
    assert available(orders, direction) == D(100)                        # paid, being paid out: still held
    assert _payout_result(store, failed, sent=False)["status"] == "payout_error"
    assert available(orders, direction) == D(100)                        # owed to the customer: still held
    assert _payout_result(store, sent, sent=True)["status"] == "completed"
    assert available(orders, direction) == D(500)                        # paid out: the balance drops instead
    store.transition("cancel", dict(ADMIN, kind="staff"), order_id=failed["id"], note="refund by hand")
    assert available(orders, direction) == D(1000)


def _balance(store, code, account, value, at):
    envelope, data = contract.load(contract.BalanceChangedSchema, events.envelope("payments", "balance_changed", {
        "system": "sandbox", "account": account, "currency": code, "balance": value, "observed_at": at.isoformat()}))
    return store.apply_balance(envelope["event_id"], "orders.handle_balance_changed", data)


def test_a_reserve_stays_stale_after_a_currency_edit(orders, db):
    """The reserve is the payout account's balance: when an admin points the currency at another account (or
    payment system), the old account's balance is no longer the reserve. It is 0 and unknown, and the answer says
    so, until the new account's balance arrives (or the admin states it in the same change)."""
    import datetime
    store = Orders(db)
    direction = own_direction(orders, reserve="1000")
    code = direction["currency_out"]
    old_account, new_account = "EXCH-%s" % code, "NEW-%s" % code
    before_edit = events.utcnow()
    assert _balance(store, code, old_account, "800", before_edit)
    call(orders, "create_order", order_body(direction, "300"), {})

    renamed = call(orders, "update_currency", code, {"name": "Renamed"}, ADMIN)   # not the account: nothing resets
    assert D(renamed["reserve"]) == D(800) and "notice" not in renamed

    moved = call(orders, "update_currency", code, {"account": new_account}, ADMIN)
    assert (D(moved["reserve"]), D(moved["held"])) == (D(0), D(300)), moved
    assert renamed["reserve_known"] is True and moved["reserve_known"] is False
    assert new_account in moved["notice"] and "until" in moved["notice"]
    with pytest.raises(errors.ValidationFailed):
        call(orders, "create_order", order_body(direction, "10"), {})
    # the old account's balance, however new, is not this currency's reserve any more
    assert not _balance(store, code, old_account, "5000", events.utcnow() + datetime.timedelta(seconds=1))
    # the new account's balance counts, even one observed before the edit; then newer observations win
    assert _balance(store, code, new_account, "700", before_edit)
    assert not _balance(store, code, new_account, "1", before_edit - datetime.timedelta(seconds=1))
    now = currency(orders, code)
    assert (D(now["reserve"]), D(now["available"]), now["reserve_known"]) == (D(700), D(400), True)

    # an admin who states the new account's reserve in the same change keeps it
    stated = call(orders, "update_currency", code, {"account": old_account, "reserve": "900"}, ADMIN)
    assert (D(stated["reserve"]), stated["reserve_known"]) == (D(900), True) and "notice" not in stated
    audit = db.fetchall("SELECT detail FROM audit_log WHERE action = 'currency_update' AND detail->>'code' = %s "
                        "ORDER BY id", (code,))
    assert audit[1]["detail"]["reserve_reset"] is True and "reserve_reset" not in audit[2]["detail"]
