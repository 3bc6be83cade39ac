"""Wire forms: marshmallow schemas for requests (unknown fields rejected) and dumpers for responses.

Amounts travel as decimal strings; a JSON float is refused so no binary rounding ever touches money.
"""
from decimal import Decimal

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from libs import money
from sandbox import domain


class Amount(fields.Field):
    """A decimal string (or a JSON integer) that parses as money; floats are refused."""

    def __init__(self, *, allow_zero=False, **kwargs):
        super().__init__(**kwargs)
        self.allow_zero = allow_zero

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return money.parse_amount(value, allow_zero=self.allow_zero)
        except money.AmountError as exc:
            raise ValidationError(str(exc)) from exc


def _currency():
    return fields.String(required=True, validate=validate.Regexp(
        domain.CURRENCY_RE, error="must be 2-10 upper-case letters or digits, e.g. USD"))


def _account(**kwargs):
    return fields.String(validate=validate.Regexp(
        domain.ACCOUNT_RE, error="must be 1-64 letters, digits or _.:- and start with a letter or digit"), **kwargs)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class AccountCreateSchema(StrictSchema):
    currency = _currency()
    balance = Amount(allow_zero=True, load_default=Decimal(0))
    account = _account(load_default=None)
    owner = fields.String(load_default="", validate=validate.Length(max=domain.MAX_OWNER))
    precision = fields.Integer(strict=True, load_default=None, validate=validate.Range(0, 18))


class AccountListQuerySchema(StrictSchema):
    owner = fields.String(load_default=None)
    currency = fields.String(load_default=None)
    limit = fields.Integer(load_default=1000, validate=validate.Range(1, 10000))


class TransferCreateSchema(StrictSchema):
    from_account = _account(required=True)
    to_account = _account(required=True)
    amount = Amount(required=True)
    currency = _currency()
    reference = fields.String(load_default="", validate=validate.Length(max=domain.MAX_REFERENCE))
    # The header Idempotency-Key is the documented way; the body field is accepted for clients that cannot set it.
    idempotency_key = fields.String(load_default=None, validate=validate.Regexp(domain.IDEMPOTENCY_KEY_RE))


class TransferLookupQuerySchema(StrictSchema):
    idempotency_key = fields.String(required=True, validate=validate.Regexp(domain.IDEMPOTENCY_KEY_RE))


class HistoryQuerySchema(StrictSchema):
    after = fields.Integer(load_default=None, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=domain.HISTORY_DEFAULT_LIMIT,
                           validate=validate.Range(1, domain.HISTORY_MAX_LIMIT))


class FaultCreateSchema(StrictSchema):
    operation = fields.String(required=True, validate=validate.OneOf(domain.FAULT_OPERATIONS))
    mode = fields.String(required=True, validate=validate.OneOf(domain.FAULT_MODES))
    count = fields.Integer(strict=True, load_default=1, validate=validate.Range(1, 1_000_000))
    apply = fields.String(load_default="before", validate=validate.OneOf(domain.FAULT_APPLY))
    # Seconds, not money; Decimal keeps it exact in NUMERIC.
    delay_s = fields.Decimal(load_default=domain.DEFAULT_TIMEOUT_DELAY, places=3,
                             validate=validate.Range(0, domain.MAX_FAULT_DELAY))
    # Optional scope: only calls that involve this account fail (keeps parallel tests apart).
    account = fields.String(load_default=None)


class FaultDeleteQuerySchema(StrictSchema):
    account = fields.String(load_default=None)


def _iso(value):
    return value.isoformat() if value is not None else None


def account_to_wire(row):
    return {
        "account": row["account"],
        "currency": row["currency"],
        "balance": money.to_str(row["balance"]),
        "owner": row["owner"],
        "precision": row["precision"],
        "created_at": _iso(row.get("created_at")),
    }


def transfer_to_wire(row):
    return {
        "id": str(row["id"]),
        "from_account": row["from_account"],
        "to_account": row["to_account"],
        "amount": money.to_str(row["amount"]),
        "currency": row["currency"],
        "reference": row["reference"],
        "idempotency_key": row["idempotency_key"],
        "created_at": _iso(row["created_at"]),
        "status": row["status"],
    }


def entry_to_wire(row):
    return {
        "id": str(row["id"]),
        "cursor": row["cursor"],
        "type": row["type"],
        "transfer_id": str(row["transfer_id"]),
        "account": row["account"],
        "counterparty": row["counterparty"],
        "amount": money.to_str(row["amount"]),
        "currency": row["currency"],
        "reference": row["reference"],
        "created_at": _iso(row["created_at"]),
    }


def fault_to_wire(row):
    return {
        "id": row["id"],
        "operation": row["operation"],
        "mode": row["mode"],
        "apply": row["apply"],
        "count": row["count"],
        "remaining": row["remaining"],
        "delay_s": money.to_str(row["delay_s"]),
        "account": row["account"],
        "created_at": _iso(row["created_at"]),
    }
