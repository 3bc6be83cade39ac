"""The one order snapshot: what orders produces (order_to_wire) every consumer loads with the same schema, and
the create-order input is checked alike at the gateway and in orders."""
import datetime
from decimal import Decimal as D

import pytest
from marshmallow import ValidationError

from libs.contracts.orders import OrderCreateCallSchema, OrderCreateSchema, OrderSnapshotSchema
from services.orders.schemas import order_to_wire

T0 = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
ROW = {
    "id": 7, "token": "t" * 32, "status": "new", "exchange_type": "auto", "direction_id": 3,
    "currency_in": "USDT", "amount_in": D("100.000000"), "currency_out": "EUR", "amount_out": D("91.54"),
    "rate_in": D("1"), "rate_out": D("0.9200"), "fee": D("0.5"), "fee_amount": D("0.46"), "sms_fee": D("0"),
    "amount_received": None, "payment_flag": None, "pay_system": "sandbox", "pay_account": "EXCH-USDT",
    "reference": "EXABCDEFGHJK", "email": "c@example.com", "recipient": "ACC-1", "phone": None,
    "sms_opt_in": False, "partner_code": None, "language": "en", "notice": None, "cancel_reason": None,
    "version": 1, "expires_at": T0 + datetime.timedelta(minutes=30), "created_at": T0, "updated_at": T0,
    "completed_at": None,
}


def test_the_snapshot_carries_amounts_as_plain_strings_and_times_as_iso():
    wire = order_to_wire(ROW)
    assert (wire["amount_in"], wire["rate_out"], wire["pay_to"]["amount"]) == ("100", "0.92", "100")
    assert wire["amount_received"] is None and wire["created_at"] == T0.isoformat()
    assert wire["actions"] == ["cancel", "delete"]   # what staff may do now


def test_what_the_producer_dumps_every_consumer_loads_back():
    wire = order_to_wire(ROW)
    loaded = OrderSnapshotSchema().load(wire)
    assert loaded["amount_out"] == D("91.54") and loaded["expires_at"] == ROW["expires_at"]
    assert OrderSnapshotSchema().dump(loaded) == wire


def test_a_snapshot_missing_a_required_field_is_refused_at_the_producer():
    row = dict(ROW)
    del row["version"]
    with pytest.raises(KeyError):
        order_to_wire(row)
    with pytest.raises(ValueError):
        loaded = OrderSnapshotSchema().load(order_to_wire(ROW))
        OrderSnapshotSchema().dump({k: v for k, v in loaded.items() if k != "token"})


GOOD = {"direction_id": 1, "amount_in": "100.50", "email": "a@example.com", "recipient": " ALICE "}


def test_orders_loads_what_the_gateway_loaded_plus_the_idempotency_key():
    at_gateway = OrderCreateSchema().load(GOOD)
    assert at_gateway["recipient"] == "ALICE" and at_gateway["amount_in"] == "100.5"
    in_orders = OrderCreateCallSchema().load(dict(at_gateway, request_id="key-1"))
    assert in_orders == dict(at_gateway, request_id="key-1")
    with pytest.raises(ValidationError):
        OrderCreateSchema().load(dict(GOOD, request_id="key-1"))


@pytest.mark.parametrize("change, messages", [
    ({"recipient": "   "}, {"recipient": ["must be 1 to 200 characters"]}),
    ({"email": "a@localhost"}, {"email": ["must be an e-mail address"]}),
    ({"sms_opt_in": True}, {"sms_opt_in": ["needs a phone number"]}),
])
def test_checks_of_the_whole_order_keep_their_messages(change, messages):
    with pytest.raises(ValidationError) as exc:
        OrderCreateSchema().load(dict(GOOD, **change))
    assert exc.value.messages == messages
