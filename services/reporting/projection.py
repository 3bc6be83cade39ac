"""Pure mapping from events to read-model rows (no I/O): what an event means for the `reporting` tables.

Order events carry the full order snapshot with its `version`, so a row is simply replaced by a newer snapshot.
Payment and payout events come from the payments service; their shape is read defensively (what is known is
kept in columns, everything else stays in `data`), so a new field there never breaks the read model.
"""
import datetime
from decimal import Decimal, InvalidOperation

from libs.contracts import events
from libs.contracts.orders import OrderCreatedSchema, OrderSnapshotSchema, OrderStatusChangedSchema

ORDER_COLUMNS = (
    "id", "version", "status", "previous_status", "last_action", "exchange_type", "direction_id", "currency_in",
    "currency_out", "amount_in", "amount_out", "rate_in", "rate_out", "fee", "fee_amount", "sms_fee",
    "amount_received", "payment_flag", "email", "recipient", "phone", "partner_code", "language", "reference",
    "created_at", "updated_at", "expires_at", "completed_at", "event_at",
)


def order_row(order, previous_status=None, last_action=None, event_at=None):
    """A loaded OrderSnapshotSchema dict -> {column: value} for reporting.orders."""
    row = {c: order.get(c) for c in ORDER_COLUMNS}
    row["previous_status"] = previous_status if previous_status is not None else order.get("previous_status")
    row["last_action"] = last_action if last_action is not None else order.get("last_action")
    row["event_at"] = event_at or order.get("updated_at")
    return row


def row_from_order_event(envelope):
    """(event_id, occurred_at, row) from an order_created / order_status_changed envelope.

    Raises marshmallow.ValidationError for a malformed event: the handler sends it to the dead-letter queue.
    """
    meta = events.load_envelope(envelope)
    if meta["event_type"] == events.ORDER_STATUS_CHANGED:
        data = events.schema_instance(OrderStatusChangedSchema).load(meta["data"])
        row = order_row(data["order"], data.get("from_status"), data.get("action"), meta["occurred_at"])
    else:
        data = events.schema_instance(OrderCreatedSchema).load(meta["data"])
        row = order_row(data["order"], None, "create", meta["occurred_at"])
    return meta["event_id"], meta["occurred_at"], row


def row_from_snapshot(order):
    """A row from one item of the orders service's export_orders page (the rebuild command)."""
    data = events.schema_instance(OrderSnapshotSchema).load(order)
    return order_row(data)


# -- payments (defensive) -----------------------------------------------------------------------------------------
def _first(mapping, *keys):
    for key in keys:
        value = mapping.get(key)
        if value not in (None, ""):
            return value
    return None


def _amount(value):
    if value is None or isinstance(value, (bool, float)):
        return None  # never accept a float as money: a malformed amount is left empty, the raw payload kept
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def _time(value):
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _subject(data, *names):
    """The nested object an event is about (data['payment'], data['payout'], ...) or the data itself."""
    for name in names:
        if isinstance(data.get(name), dict):
            return data[name]
    return data


def _order_id(data, subject):
    order = data.get("order") if isinstance(data.get("order"), dict) else {}
    return _int(_first(subject, "order_id") or _first(data, "order_id") or order.get("id"))


def payment_row(envelope):
    """(event_id, occurred_at, row) for reporting.payments from a payments-service event about an incoming payment.

    A payload without a payment id is malformed (KeyError: dead-lettered); other missing fields stay NULL.
    """
    meta = events.load_envelope(envelope)
    data = meta["data"]
    p = _subject(data, "payment", "incoming_payment")
    payment_id = _first(p, "id", "payment_id") or _first(data, "payment_id")
    if payment_id is None:
        raise KeyError("payment event without a payment id")
    row = {
        "id": str(payment_id),
        "order_id": _order_id(data, p),
        "status": _first(p, "status") or meta["event_type"],
        "amount": _amount(_first(p, "amount", "amount_received")),
        "currency": _first(p, "currency", "currency_code"),
        "flag": _first(p, "flag", "payment_flag") or _first(data, "flag", "payment_flag"),
        "received_at": _time(_first(p, "received_at", "occurred_at", "created_at")) or meta["occurred_at"],
        "version": _int(_first(p, "version")) or 0,
        "data": data,
        "event_at": meta["occurred_at"],
    }
    return meta["event_id"], meta["occurred_at"], row


# Payments publishes payout_sent and payout_failed; the other names are read too, should it announce more steps.
PAYOUT_STATUS_BY_EVENT = {events.PAYOUT_SENT: "sent", events.PAYOUT_FAILED: "failed",
                          "payout_started": "sending", "payout_requested": "pending", "payout_sending": "sending"}


def payout_row(envelope):
    """(event_id, occurred_at, row) for reporting.payouts from a payments-service event about a payout."""
    meta = events.load_envelope(envelope)
    data = meta["data"]
    p = _subject(data, "payout")
    payout_id = _first(p, "id", "payout_id") or _first(data, "payout_id")
    order_id = _order_id(data, p)
    if payout_id is None:
        if order_id is None:
            raise KeyError("payout event without a payout or order id")
        payout_id = "order-%s" % order_id  # one payout per order (UNIQUE(order_id) at the owner)
    row = {
        "id": str(payout_id),
        "order_id": order_id,
        "status": _first(p, "status") or PAYOUT_STATUS_BY_EVENT.get(meta["event_type"], meta["event_type"]),
        "amount": _amount(_first(p, "amount")),
        "currency": _first(p, "currency", "currency_code"),
        "error": _first(p, "error", "last_error", "reason"),
        "sent_at": _time(_first(p, "sent_at", "completed_at")),
        # A retried payout is a new attempt (a new row at the owner): the latest attempt is the order's payout.
        "version": _int(_first(p, "version", "attempt")) or 0,
        "data": data,
        "event_at": meta["occurred_at"],
    }
    return meta["event_id"], meta["occurred_at"], row
