"""The wire contract between payments and orders: event names and payload schemas (blueprint §3).

Pure module (no I/O), imported by both services. Amounts are strings; a broken payload raises
marshmallow.ValidationError, which `reliable_event_handler` sends straight to the dead-letter queue.
"""
from marshmallow import EXCLUDE, Schema, fields, validate

from libs import events

PAYMENTS = events.PAYMENTS
ORDERS = events.ORDERS

# payments -> orders (and anyone else: notifier, reporting)
PAYMENT_RECEIVED = "payment_received"      # a payment matched to an order: orders marks it paid
PAYMENT_UNMATCHED = "payment_unmatched"    # a payment no order can take: waits for an operator
PAYOUT_SENT = "payout_sent"                # the payment system confirmed the payout: orders completes
PAYOUT_FAILED = "payout_failed"            # the payment system definitely refused: orders payout_error
BALANCE_CHANGED = "balance_changed"        # a payout account's balance: orders sets the currency's reserve

# orders -> payments
PAYMENT_REJECTED = "payment_rejected"      # orders could not take a matched payment: back to unmatched
PARTNER_PAYOUT_REQUESTED = "partner_payout_requested"  # an approved partner withdrawal to pay (issue 7)

# payments -> orders: the outcome of a partner withdrawal's payout (docs/partners.md)
WITHDRAWAL_PAYOUT_SENT = "withdrawal_payout_sent"      # orders marks the withdrawal paid
WITHDRAWAL_PAYOUT_FAILED = "withdrawal_payout_failed"  # definitely not paid: orders returns it to the balance

FLAGS = ("partial", "over", "late")

Money = events.Money


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


class PayToSchema(_Loose):
    system = fields.String(required=True)
    account = fields.String(required=True)


class OrderCopySchema(_Loose):
    """What payments keeps of an order snapshot (services/orders/schemas.py order_to_wire)."""
    id = fields.Integer(required=True)
    version = fields.Integer(required=True)
    reference = fields.String(required=True)
    status = fields.String(required=True)
    exchange_type = fields.String(required=True)
    pay_to = fields.Nested(PayToSchema, required=True)
    currency_in = fields.String(required=True)
    amount_in = Money(required=True)
    currency_out = fields.String(required=True)
    amount_out = Money(required=True)
    rate_in = Money(required=True)
    rate_out = Money(required=True)
    fee = Money(load_default=None, allow_none=True)
    recipient = fields.String(required=True)
    expires_at = fields.AwareDateTime(required=True)


class OrderEventSchema(_Loose):
    order = fields.Nested(OrderCopySchema, required=True)
    to_status = fields.String(load_default=None, allow_none=True)
    action = fields.String(load_default=None, allow_none=True)


def load(schema_cls, payload):
    """Validate an event envelope and its data; returns (envelope, data)."""
    envelope = events.load_envelope(payload)
    return envelope, schema_cls().load(envelope["data"])
