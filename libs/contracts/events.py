"""Event sources, every event type of the system, and the envelope every event carries (docs/architecture.md).

Every event is published by a service's outbox relay to the nameko exchange `<source>.events` with the event
type as routing key, so plain nameko `@event_handler(source, type)` consumers receive it. Payload schemas live in
the module of the service that publishes the event (orders.py, payments.py, notifier.py).
"""
import datetime
import uuid

from marshmallow import EXCLUDE, Schema, fields

from libs.contracts.fields import Money  # noqa: F401  (re-exported: payload schemas build on it)

# Sources (service names): the exchange of each is `<source>.events`.
ORDERS = "orders"
PAYMENTS = "payments"
NOTIFIER = "notifier"
REPORTING = "reporting"
RATES = "rates"
SOURCES = (ORDERS, PAYMENTS, NOTIFIER, REPORTING, RATES)

# orders ->
ORDER_CREATED = "order_created"                # {order}
ORDER_STATUS_CHANGED = "order_status_changed"  # {order, from_status, to_status, action, actor, note}
PARTNER_CREDITED = "partner_credited"          # {partner_account_id, order_id, amount, ...} (partner program)
ACCOUNT_SIGNUP_REQUESTED = "account_signup_requested"  # {account_id, email, language, token_id, confirm_url}
PASSWORD_RESET_REQUESTED = "password_reset_requested"  # {account_id, email, language, token_id, reset_url}
# a security letter to an account: password changed or reset, withdrawal requested (with the link that confirms a
# new destination); {account_id, email, language, notice, key, link?, expires_at?, withdrawal?}
ACCOUNT_NOTICE = "account_notice"
PAYMENT_REJECTED = "payment_rejected"          # orders could not take a matched payment: back to unmatched
PARTNER_PAYOUT_REQUESTED = "partner_payout_requested"  # an approved partner withdrawal to pay (docs/partners.md)

# payments -> (orders, and anyone else: notifier, reporting)
PAYMENT_RECEIVED = "payment_received"      # a payment matched to an order: orders marks it paid
PAYMENT_UNMATCHED = "payment_unmatched"    # a payment no order can take: waits for an operator
PAYOUT_SENT = "payout_sent"                # the payment system confirmed the payout: orders completes
PAYOUT_FAILED = "payout_failed"            # the payment system definitely refused: orders payout_error
BALANCE_CHANGED = "balance_changed"        # a payout account's balance: orders sets the currency's reserve
WITHDRAWAL_PAYOUT_SENT = "withdrawal_payout_sent"      # orders marks the partner withdrawal paid
WITHDRAWAL_PAYOUT_FAILED = "withdrawal_payout_failed"  # definitely not paid: orders returns it to the balance
# A payout (of an order or a withdrawal) resolved `failed` that the provider then reported sent: orders flags the
# order or withdrawal so it is never paid again, the notifier tells the admin; payments also logs an error and
# counts exchanger_payout_late_success_total.
PAYOUT_SUCCEEDED_AFTER_RESOLVE = "payout_succeeded_after_resolve"

# orders -> rates export (and anyone who caches the catalogue): a direction's rate, limits, activity or frozen
# state changed, or a currency's monitor code or reserve did. {direction_ids: [int], reason}
DIRECTIONS_CHANGED = "directions_changed"

# payments and orders -> notifier: money work that should have moved on and has not (libs/contracts/stuck.py)
STUCK_WORK_FOUND = "stuck_work_found"      # {service, items, counts}: one letter to the admin address

# orders and payments -> notifier: a change that moves money, or who may move it, was made (libs/contracts/security.py)
SECURITY_CHANGE = "security_change"        # {action, what, actor, actor_role, actor_ip, at, detail}
# rates -> orders: the rate engine's verdicts on directions with a formula (libs/contracts/rates.py)
RATES_COMPUTED = "rates_computed"          # {items: [{direction_id, seq, rate_in, rate_out, frozen, reason}]}
# rates -> notifier: directions a guard has just frozen: one letter to the admin address
DIRECTIONS_FROZEN = "directions_frozen"    # {items: [{direction_id, pair, reason, code}]}

# notifier ->
SETTINGS_CHANGED = "settings_changed"      # {settings, customer_sms_available, version}


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


class EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    event_id = fields.UUID(required=True)
    event_type = fields.String(required=True)
    source = fields.String(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    data = fields.Dict(required=True)


_SCHEMAS = {}


def schema_instance(schema_cls):
    """One instance per schema class, built at first use: building a marshmallow schema (it deep-copies its
    fields, nested ones included) cost more than loading with it, and consumers load every event."""
    schema = _SCHEMAS.get(schema_cls)
    if schema is None:
        schema = _SCHEMAS[schema_cls] = schema_cls()
    return schema


def load_envelope(payload):
    """Validate an incoming event; a broken one raises marshmallow.ValidationError (a permanent error)."""
    return schema_instance(EnvelopeSchema).load(payload)


def load(schema_cls, payload):
    """Validate an event envelope and its data; returns (envelope, data)."""
    meta = load_envelope(payload)
    return meta, schema_instance(schema_cls).load(meta["data"])
