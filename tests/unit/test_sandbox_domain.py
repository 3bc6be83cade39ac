"""Unit tests of the sandbox payment system's pure rules and wire forms (no database)."""
import datetime
import uuid
from decimal import Decimal as D

import pytest
from marshmallow import ValidationError

from sandbox import domain, schemas
from sandbox.web import amount_filter, utc_filter


def acct(account="A", currency="USD", precision=2, balance="100"):
    return {"account": account, "currency": currency, "precision": precision, "balance": D(balance)}


@pytest.mark.parametrize("currency, precision", [("USD", 2), ("EUR", 2), ("RUB", 2), ("USDT", 6), ("BTC", 8)])
def test_precision_per_currency(currency, precision):
    assert domain.precision_for(currency) == precision


@pytest.mark.parametrize("amount, precision, ok", [
    ("1", 2, True), ("1.5", 2, True), ("1.50", 2, True), ("1.500000", 2, True), ("0.01", 2, True),
    ("0.001", 2, False), ("1.005", 2, False),
    ("0.000001", 6, True), ("0.0000001", 6, False),
    ("0.00000001", 8, True), ("0.000000001", 8, False),
    ("10", 0, True), ("10.1", 0, False),
])
def test_check_precision(amount, precision, ok):
    if ok:
        domain.check_precision(D(amount), precision, "X")
    else:
        with pytest.raises(domain.ValidationFailed) as err:
            domain.check_precision(D(amount), precision, "X")
        assert "amount" in err.value.fields
        assert err.value.status == 422


def test_check_transfer_accepts_matching_currency():
    domain.check_transfer(acct("A"), acct("B"), D("10.25"), "USD")


@pytest.mark.parametrize("source, target, currency", [
    (acct("A", "USD"), acct("B", "EUR"), "USD"),
    (acct("A", "EUR"), acct("B", "USD"), "USD"),
    (acct("A", "USD"), acct("B", "USD"), "EUR"),
])
def test_check_transfer_currency_mismatch(source, target, currency):
    with pytest.raises(domain.ValidationFailed) as err:
        domain.check_transfer(source, target, D("1"), currency)
    assert "currency" in err.value.fields


def test_check_transfer_same_account():
    with pytest.raises(domain.ValidationFailed) as err:
        domain.check_transfer(acct("A"), acct("A"), D("1"), "USD")
    assert "to_account" in err.value.fields


def test_check_transfer_precision_follows_the_account():
    with pytest.raises(domain.ValidationFailed):
        domain.check_transfer(acct("A"), acct("B"), D("0.001"), "USD")
    domain.check_transfer(acct("A", "USDT", 6), acct("B", "USDT", 6), D("0.000001"), "USDT")


def test_check_funds():
    domain.check_funds(acct(balance="10.00"), D("10"))
    with pytest.raises(domain.InsufficientFunds) as err:
        domain.check_funds(acct(balance="9.99"), D("10"))
    assert err.value.to_wire()["error"] == "insufficient_funds"
    assert err.value.status == 422


def test_replay_same_and_different_parameters():
    existing = {"id": uuid.uuid4(), "from_account": "A", "to_account": "B", "amount": D("10.000000000000000000"),
                "currency": "USD", "reference": ""}
    assert domain.check_replay(existing, "A", "B", D("10"), "USD", None) is existing
    assert domain.same_transfer(existing, "A", "B", D("10.00"), "USD", "")
    for changed in [("A", "C", D("10"), "USD", ""), ("A", "B", D("10.01"), "USD", ""),
                    ("A", "B", D("10"), "EUR", ""), ("A", "B", D("10"), "USD", "ref"),
                    ("X", "B", D("10"), "USD", "")]:
        with pytest.raises(domain.IdempotencyKeyReused) as err:
            domain.check_replay(existing, *changed)
        wire = err.value.to_wire()
        assert wire["error"] == "idempotency_key_reused"
        assert wire["transfer_id"] == str(existing["id"])


@pytest.mark.parametrize("value", ["USD", "USDT", "BTC", "X1"])
def test_currency_codes_ok(value):
    assert domain.CURRENCY_RE.match(value)


@pytest.mark.parametrize("value", ["usd", "U", "US D", "TOOLONGCODE1", ""])
def test_currency_codes_bad(value):
    assert not domain.CURRENCY_RE.match(value)


@pytest.mark.parametrize("value, ok", [("EXCH-USD", True), ("a.b:c_d-1", True), ("-X", False), ("a b", False),
                                       ("x" * 64, True), ("x" * 65, False), ("", False), ("ü", False)])
def test_account_ids(value, ok):
    assert bool(domain.ACCOUNT_RE.match(value)) is ok


# --- schemas ------------------------------------------------------------------------------------------------

def transfer_body(**overrides):
    body = {"from_account": "A", "to_account": "B", "amount": "10.50", "currency": "USD"}
    body.update(overrides)
    return body


def test_transfer_schema_loads_decimal_and_defaults():
    data = schemas.TransferCreateSchema().load(transfer_body())
    assert data["amount"] == D("10.50") and isinstance(data["amount"], D)
    assert data["reference"] == ""
    assert data["idempotency_key"] is None


def test_transfer_schema_accepts_integer_amount():
    assert schemas.TransferCreateSchema().load(transfer_body(amount=7))["amount"] == D(7)


@pytest.mark.parametrize("amount", [10.5, True, "0", "-1", "abc", "NaN", "Infinity", "1e30", None, [], {}])
def test_transfer_schema_rejects_bad_amounts(amount):
    with pytest.raises(ValidationError) as err:
        schemas.TransferCreateSchema().load(transfer_body(amount=amount))
    assert "amount" in err.value.messages


def test_transfer_schema_rejects_unknown_and_missing_fields():
    with pytest.raises(ValidationError) as err:
        schemas.TransferCreateSchema().load({"from_account": "A", "extra": 1})
    assert set(err.value.messages) >= {"extra", "to_account", "amount", "currency"}


def test_account_schema_defaults_and_zero_balance():
    data = schemas.AccountCreateSchema().load({"currency": "USD"})
    assert data == {"currency": "USD", "balance": D(0), "account": None, "owner": "", "precision": None}
    assert schemas.AccountCreateSchema().load({"currency": "USD", "balance": "0"})["balance"] == D(0)
    with pytest.raises(ValidationError):
        schemas.AccountCreateSchema().load({"currency": "USD", "balance": "-1"})


def test_fault_schema_defaults_and_bounds():
    data = schemas.FaultCreateSchema().load({"operation": "transfer", "mode": "error"})
    assert data["count"] == 1 and data["apply"] == "before" and data["delay_s"] == D(30)
    assert data["account"] is None
    for bad in [{"operation": "nope", "mode": "error"}, {"operation": "any", "mode": "explode"},
                {"operation": "any", "mode": "error", "count": 0},
                {"operation": "any", "mode": "error", "apply": "during"},
                {"operation": "any", "mode": "timeout", "delay_s": -1}]:
        with pytest.raises(ValidationError):
            schemas.FaultCreateSchema().load(bad)


@pytest.mark.parametrize("query, ok", [({}, True), ({"limit": "1000"}, True), ({"limit": "1001"}, False),
                                       ({"limit": "0"}, False), ({"after": "-1"}, False), ({"after": "x"}, False),
                                       ({"after": "5", "limit": "3"}, True), ({"cursor": "1"}, False)])
def test_history_query(query, ok):
    if ok:
        data = schemas.HistoryQuerySchema().load(query)
        assert data["limit"] == int(query.get("limit", 100))
    else:
        with pytest.raises(ValidationError):
            schemas.HistoryQuerySchema().load(query)


def test_wire_forms_use_strings_for_money():
    now = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    tid = uuid.uuid4()
    transfer = schemas.transfer_to_wire({
        "id": tid, "from_account": "A", "to_account": "B", "amount": D("12.340000000000000000"),
        "currency": "USD", "reference": "R", "idempotency_key": "k", "status": "completed", "created_at": now})
    assert transfer["amount"] == "12.34" and transfer["id"] == str(tid)
    assert transfer["created_at"] == "2024-01-02T03:04:05+00:00"
    account = schemas.account_to_wire({"account": "A", "currency": "USD", "precision": 2,
                                       "balance": D("0E-18"), "owner": "o", "created_at": now})
    assert account["balance"] == "0"


def test_amount_filter_formats_at_precision():
    assert amount_filter(D("1234567.5"), 2) == "1\u202f234\u202f567.50"
    assert amount_filter(D("0.000001"), 6) == "0.000001"
    assert amount_filter(None) == ""


def test_utc_filter_converts_the_session_time_zone():
    moscow = datetime.timezone(datetime.timedelta(hours=3))
    assert utc_filter(datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=moscow)) == "2024-01-02 00:04 UTC"
    assert utc_filter(None) == ""
