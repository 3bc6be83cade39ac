import pytest
from marshmallow import ValidationError

from gateway.schemas import AdminOrdersQuerySchema, OrderCreateSchema

GOOD = {"direction_id": 1, "amount_in": "100.5", "email": "a@example.com", "recipient": "ALICE-EUR"}


def test_valid_order_loads_with_defaults():
    data = OrderCreateSchema().load(GOOD)
    assert data["amount_in"] == "100.5" and data["sms_opt_in"] is False and data["language"] == "en"


@pytest.mark.parametrize("change, field", [
    ({"amount_in": 100}, "amount_in"), ({"amount_in": 1.5}, "amount_in"), ({"amount_in": "-5"}, "amount_in"),
    ({"amount_in": "0"}, "amount_in"), ({"amount_in": "NaN"}, "amount_in"), ({"amount_in": "1e309"}, "amount_in"),
    ({"direction_id": "1"}, "direction_id"), ({"email": "nope"}, "email"), ({"recipient": ""}, "recipient"),
    ({"status": "completed"}, "status"), ({"fee": "0"}, "fee"), ({"phone": "12345"}, "phone"),
    ({"sms_opt_in": True}, "sms_opt_in"), ({"language": "de"}, "language"),
])
def test_bad_orders_name_the_field(change, field):
    with pytest.raises(ValidationError) as exc:
        OrderCreateSchema().load(dict(GOOD, **change))
    assert field in exc.value.messages


@pytest.mark.parametrize("missing", ["direction_id", "amount_in", "email", "recipient"])
def test_required_fields(missing):
    data = dict(GOOD)
    del data[missing]
    with pytest.raises(ValidationError) as exc:
        OrderCreateSchema().load(data)
    assert missing in exc.value.messages


def test_admin_query_rejects_unknown_status_and_params():
    assert AdminOrdersQuerySchema().load({"status": "new,paid", "limit": "10"})["limit"] == 10
    with pytest.raises(ValidationError):
        AdminOrdersQuerySchema().load({"status": "bogus"})
    with pytest.raises(ValidationError):
        AdminOrdersQuerySchema().load({"limit": "0"})
    with pytest.raises(ValidationError):
        AdminOrdersQuerySchema().load({"what": "x"})
