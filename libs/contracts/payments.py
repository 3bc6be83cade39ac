"""The wire contract between payments and orders: the payload schemas of their events (the names are in
libs/contracts/events.py).

Pure module (no I/O), imported by both services. Amounts are strings; a broken payload raises
marshmallow.ValidationError, which `reliable_event_handler` sends straight to the dead-letter queue. The order
events payments consumes are in libs/contracts/orders.py (OrderEventSchema).
"""
from marshmallow import EXCLUDE, Schema, fields, validate

from libs.contracts import events
from libs.contracts.fields import Money
from libs.contracts.orders import PAYMENT_FLAGS

load = events.load

FLAGS = PAYMENT_FLAGS


class _Loose(Schema):
    class Meta:
        unknown = EXCLUDE


class PaymentSchema(_Loose):
    id = fields.Integer(required=True)
    system = fields.String(required=True)
    account = fields.String(required=True)
    external_id = fields.String(required=True)
    amount = Money(required=True)
    currency = fields.String(required=True)
    reference = fields.String(allow_none=True)
    occurred_at = fields.String(required=True)


class PaymentReceivedSchema(_Loose):
    payment = fields.Nested(PaymentSchema, required=True)
    order_id = fields.Integer(required=True)
    flag = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(FLAGS))
    on_time = fields.Boolean(load_default=True)
    assigned_by = fields.String(allow_none=True, load_default=None)


class PayoutSchema(_Loose):
    id = fields.Integer(required=True)
    order_id = fields.Integer(required=True)
    attempt = fields.Integer(required=True)
    idempotency_key = fields.String(required=True)
    amount = Money(required=True)
    currency = fields.String(required=True)
    to_account = fields.String(required=True)
    provider_id = fields.String(allow_none=True)
    error = fields.String(allow_none=True)


class PayoutResultSchema(_Loose):
    payout = fields.Nested(PayoutSchema, required=True)
    order_id = fields.Integer(required=True)
    error = fields.String(allow_none=True, load_default=None)


class PartnerPayoutRequestedSchema(_Loose):
    withdrawal_id = fields.Integer(required=True, validate=validate.Range(min=1))
    partner_id = fields.Integer(load_default=None, allow_none=True)
    currency = fields.String(required=True, validate=validate.Length(min=1, max=16))
    amount = Money(required=True, validate=validate.Range(min=0, min_inclusive=False))
    to_account = fields.String(required=True, validate=validate.Length(min=1, max=200))
    idempotency_key = fields.String(required=True, validate=validate.Length(min=1, max=200))


class WithdrawalPayoutResultSchema(_Loose):
    withdrawal_id = fields.Integer(required=True)
    idempotency_key = fields.String(required=True)
    amount = Money(required=True)
    currency = fields.String(required=True)
    to_account = fields.String(required=True)
    provider_id = fields.String(load_default=None, allow_none=True)
    error = fields.String(load_default=None, allow_none=True)


class PayoutSucceededAfterResolveSchema(_Loose):
    """A payout resolved `failed` (by an operator) that the provider then reported sent: the money went out.
    `kind` says which: an order's payout (`order_id`, and `payout` in PayoutSchema form) or a partner
    withdrawal's (`withdrawal_id`). The payout stays `failed`; the order or withdrawal must not be paid again."""
    kind = fields.String(required=True, validate=validate.OneOf(("order", "withdrawal")))
    payout_id = fields.Integer(required=True)
    order_id = fields.Integer(load_default=None, allow_none=True)
    withdrawal_id = fields.Integer(load_default=None, allow_none=True)
    idempotency_key = fields.String(required=True)
    amount = Money(required=True)
    currency = fields.String(required=True)
    to_account = fields.String(required=True)
    provider_id = fields.String(load_default=None, allow_none=True)
    resolved_by = fields.String(load_default=None, allow_none=True)
    payout = fields.Nested(PayoutSchema, load_default=None, allow_none=True)


class BalanceChangedSchema(_Loose):
    system = fields.String(required=True)
    account = fields.String(required=True)
    currency = fields.String(required=True)
    balance = Money(required=True)
    observed_at = fields.AwareDateTime(required=True)


class PaymentRejectedSchema(_Loose):
    payment_id = fields.Integer(required=True)
    order_id = fields.Integer(required=True)
    status = fields.String(allow_none=True)
    reason = fields.String(required=True)
