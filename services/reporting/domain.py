"""The reporting service's pure rules (no I/O, no SQL): what an event means for the read model, and how the
statistics queries' rows become the answer.

Order events carry the full order snapshot with its `version`, so a row is simply replaced by a newer snapshot.
Payment and payout events come from the payments service; their shape is read defensively (what is known is
kept in columns, everything else stays in `data`), so a new field there never breaks the read model.

Statistics (docs/reporting.md):
- requests, by status, never paid: orders *created* in [from, to). "Never paid" = expired, or canceled or deleted
  straight from `new`/`expired` (the customer or an operator gave up before any payment): the seed's "30% empty
  requests". Orders still `new` count as requests but not (yet) as never paid.
- completion time: created -> completed, in seconds, for orders *completed* in the window (p50, p90, p99).
- turnover and margin: orders completed in the window (money actually exchanged); turnover in = amount_in in
  currency_in, turnover out = amount_out in currency_out, margin = fee_amount in currency_out.
Days are UTC days. The queries themselves are in store.py.
"""
import datetime
from decimal import Decimal, InvalidOperation

from marshmallow import ValidationError

from libs import money
from libs.contracts import events
from libs.contracts.orders import OrderCreatedSchema, OrderSnapshotSchema, OrderStatusChangedSchema
from libs.contracts.reporting import MAX_STATS_DAYS, UTC

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


# -- statistics -------------------------------------------------------------------------------------------------
PERCENTILES = (0.5, 0.9, 0.99)


def _key(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def _completion(n, p):
    out = {"count": int(n)}
    for q, value in zip(PERCENTILES, p or [None] * len(PERCENTILES)):
        out["p%d" % round(q * 100)] = round(float(value), 3) if value is not None else None
    return out


def _share(part, whole):
    return round(part / whole, 4) if whole else None


def _money_map(sums):
    return {currency: money.to_str(amount) for currency, amount in sorted(sums.items())}


def _add(sums, currency, amount):
    sums[currency] = sums.get(currency, Decimal(0)) + (amount or Decimal(0))


def shape_stats(start, end, group, request_rows, completion_rows, turnover_rows):
    """The JSON answer of /api/v1/admin/reports/stats from the three queries' rows."""
    key_name = "day" if group == "day" else "direction_id"
    groups = {}

    def entry(key):
        if key not in groups:
            groups[key] = {key_name: _key(key), "requests": 0, "by_status": {}, "never_paid": 0,
                           "never_paid_share": None, "completion_seconds": _completion(0, None), "turnover": []}
        return groups[key]

    totals = {"requests": 0, "by_status": {}, "never_paid": 0}
    for r in request_rows:
        g = entry(r["key"])
        if group == "direction":
            g.setdefault("currency_in", r["currency_in"])
            g.setdefault("currency_out", r["currency_out"])
        g["requests"] += r["n"]
        g["by_status"][r["status"]] = r["n"]
        g["never_paid"] += r["never_paid"]
        totals["requests"] += r["n"]
        totals["by_status"][r["status"]] = totals["by_status"].get(r["status"], 0) + r["n"]
        totals["never_paid"] += r["never_paid"]
    totals["never_paid_share"] = _share(totals["never_paid"], totals["requests"])
    totals["completion_seconds"] = _completion(0, None)
    for r in completion_rows:
        if r["is_total"]:
            totals["completion_seconds"] = _completion(r["n"], r["p"])
        else:
            entry(r["key"])["completion_seconds"] = _completion(r["n"], r["p"])
    turnover_in, turnover_out, margin = {}, {}, {}
    for r in turnover_rows:
        item = {"completed": r["completed"], "currency_in": r["currency_in"], "currency_out": r["currency_out"],
                "amount_in": money.to_str(r["amount_in"]), "amount_out": money.to_str(r["amount_out"]),
                "margin": money.to_str(r["margin"])}
        if group == "day":
            g = entry(r["day"])
            item = {"direction_id": r["direction_id"], **item}
        else:
            g = entry(r["direction_id"])
            g.setdefault("currency_in", r["currency_in"])
            g.setdefault("currency_out", r["currency_out"])
            item = {"day": _key(r["day"]), **item}
        g["turnover"].append(item)
        _add(turnover_in, r["currency_in"], r["amount_in"])
        _add(turnover_out, r["currency_out"], r["amount_out"])
        _add(margin, r["currency_out"], r["margin"])
    totals["turnover_in"] = _money_map(turnover_in)
    totals["turnover_out"] = _money_map(turnover_out)
    totals["margin"] = _money_map(margin)
    for g in groups.values():
        g["never_paid_share"] = _share(g["never_paid"], g["requests"])
    return {"from": start.isoformat(), "to": end.isoformat(), "group": group, "totals": totals,
            "groups": [groups[k] for k in sorted(groups)]}


def stats_window(params, now=None):
    """Loaded StatsQuerySchema -> (start, end, group) with the defaults filled in."""
    now = now or datetime.datetime.now(UTC)
    end = params.get("to") or now
    try:
        start = params.get("from_") or end - datetime.timedelta(days=30)
    except OverflowError:
        raise ValidationError({"to": ["too early"]})
    if start >= end:
        raise ValidationError({"from": ["must be before to"]})
    if end - start > datetime.timedelta(days=MAX_STATS_DAYS):
        raise ValidationError({"from": ["at most %d days before to" % MAX_STATS_DAYS]})
    return start, end, params.get("group") or "day"



# -- the CSV endpoint's exposure -------------------------------------------------------------------------------------
LOOPBACK_HOSTS = ("localhost", "::1", "[::1]")


def is_loopback(address):
    """Whether a WEB_SERVER_ADDRESS (`host:port`, or a bare port which nameko binds on every interface) listens on
    loopback only."""
    text = str(address or "").strip()
    host = text.rsplit(":", 1)[0] if ":" in text else ""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def check_export_endpoint(address, token):
    """Refuse to serve exports off loopback without REPORTING_HTTP_TOKEN (anyone on the network could read every
    order); raises ValueError naming the setting."""
    if not is_loopback(address) and not (token or "").strip():
        raise ValueError("reporting: REPORTING_HTTP_ADDRESS=%s is not loopback, so REPORTING_HTTP_TOKEN must be "
                         "set (the gateway sends it as X-Internal-Token)" % address)
