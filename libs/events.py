"""Event names, the envelope every event carries, and payload schemas (blueprint §3).

Every event is published by a service's outbox relay to the nameko exchange `<source>.events` with the event
type as routing key, so plain nameko `@event_handler(source, type)` consumers receive it.
"""
import datetime
import uuid

from marshmallow import EXCLUDE, Schema, fields, validate

# Sources (service names) and event types.
ORDERS = "orders"
PAYMENTS = "payments"
NOTIFIER = "notifier"
REPORTING = "reporting"

ORDER_CREATED = "order_created"
ORDER_STATUS_CHANGED = "order_status_changed"
PARTNER_CREDITED = "partner_credited"      # orders (partner program): {partner_account_id, order_id, amount, ...}
ACCOUNT_SIGNUP_REQUESTED = "account_signup_requested"  # orders: {account_id, email, language, token_id, confirm_url}
PASSWORD_RESET_REQUESTED = "password_reset_requested"  # orders: {account_id, email, language, token_id, reset_url}
SETTINGS_CHANGED = "settings_changed"      # notifier: {settings, customer_sms_available, version}


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def envelope(source, event_type, data, event_id=None, occurred_at=None):
    """The wire form: {event_id, event_type, source, occurred_at, data}. `data` carries a full snapshot."""
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "event_type": event_type,
        "source": source,
        "occurred_at": (occurred_at or utcnow()).isoformat(),
        "data": data,
    }


Money = lambda **kw: fields.Decimal(as_string=True, **kw)  # noqa: E731  amounts are strings on the wire


class EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    event_id = fields.UUID(required=True)
    event_type = fields.String(required=True)
    source = fields.String(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    data = fields.Dict(required=True)


class OrderSnapshotSchema(Schema):
    """The order as every event carries it (consumers need no call back)."""
    class Meta:
        unknown = EXCLUDE

    id = fields.Integer(required=True)
    version = fields.Integer(required=True)
    status = fields.String(required=True)
    exchange_type = fields.String(required=True, validate=validate.OneOf(["auto", "semi_auto", "manual"]))
    direction_id = fields.Integer(required=True)
    currency_in = fields.String(required=True)
    currency_out = fields.String(required=True)
    amount_in = Money(required=True)
    amount_out = Money(required=True)
    rate_in = Money(required=True)
    rate_out = Money(required=True)
    payment_flag = fields.String(allow_none=True)
    email = fields.String(required=True)
    recipient = fields.String(required=True)
    reference = fields.String(required=True)
    token = fields.String(required=True)


class OrderStatusChangedSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    order = fields.Nested(OrderSnapshotSchema, required=True)
    from_status = fields.String(required=True, allow_none=True)
    to_status = fields.String(required=True)
    action = fields.String(required=True)
    actor = fields.Dict(allow_none=True)
    note = fields.String(allow_none=True)


def load_envelope(payload):
    """Validate an incoming event; a broken one raises marshmallow.ValidationError (a permanent error)."""
    return EnvelopeSchema().load(payload)
