"""Event payloads as the owners publish them (services/orders/schemas.py order_to_wire, the payments contract)."""
import datetime
import uuid

T0 = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)


def order(order_id=1, version=1, status="new", **changes):
    snapshot = {
        "id": order_id, "token": "tok-%s" % order_id, "status": status, "exchange_type": "auto",
        "direction_id": 1, "currency_in": "USDT", "amount_in": "100", "currency_out": "EUR", "amount_out": "91.54",
        "rate_in": "1", "rate_out": "0.92", "fee": "0.5", "fee_amount": "0.46", "sms_fee": "0",
        "amount_received": None, "payment_flag": None,
        "pay_to": {"system": "sandbox", "account": "EXCH-USDT", "amount": "100", "currency": "USDT",
                   "reference": "EXREF%s" % order_id},
        "reference": "EXREF%s" % order_id, "email": "c%s@example.com" % order_id, "recipient": "ACC-%s" % order_id,
        "phone": None, "sms_opt_in": False, "partner_code": None, "language": "en", "notice": None,
        "cancel_reason": None, "version": version, "expires_at": (T0 + datetime.timedelta(minutes=30)).isoformat(),
        "created_at": T0.isoformat(), "updated_at": (T0 + datetime.timedelta(minutes=version)).isoformat(),
        "completed_at": None, "actions": [],
    }
    snapshot.update(changes)
    return snapshot


def envelope(event_type, data, source="orders", occurred_at=None, event_id=None):
    return {"event_id": str(event_id or uuid.uuid4()), "event_type": event_type, "source": source,
            "occurred_at": (occurred_at or T0).isoformat(), "data": data}


def created(snapshot, **kw):
    return envelope("order_created", {"order": snapshot}, **kw)


def changed(snapshot, from_status, action="finalize", **kw):
    return envelope("order_status_changed", {
        "order": snapshot, "from_status": from_status, "to_status": snapshot["status"], "action": action,
        "actor": {"kind": "staff", "name": "op", "role": "operator"}, "note": None}, **kw)


def payment(payment_id=7, order_id=1, amount="100", status="matched", **changes):
    wire = {"id": payment_id, "system": "sandbox", "account": "EXCH-USDT", "external_id": "tx-%s" % payment_id,
            "amount": amount, "currency": "USDT", "reference": "EXREF%s" % order_id, "match_reference": None,
            "counterparty": "cust", "occurred_at": T0.isoformat(), "detected_at": T0.isoformat(),
            "status": status, "order_id": order_id if status == "matched" else None,
            "candidate_order_id": order_id, "flag": None, "reason_code": None, "reason": None,
            "assigned_by": None, "updated_at": T0.isoformat()}
    wire.update(changes)
    return wire


def payment_received(wire, flag=None, **kw):
    return envelope("payment_received", {"payment": wire, "order_id": wire["order_id"], "flag": flag,
                                         "on_time": True, "assigned_by": None}, source="payments", **kw)


def payment_unmatched(wire, **kw):
    return envelope("payment_unmatched", {"payment": wire, "reason_code": "rejected", "reason": "x"},
                    source="payments", **kw)


def payout(payout_id=3, order_id=1, status="sent", attempt=1, **changes):
    wire = {"id": payout_id, "order_id": order_id, "attempt": attempt, "idempotency_key": "k-%s" % payout_id,
            "system": "sandbox", "from_account": "EXCH-EUR", "to_account": "ACC-1", "amount": "91.54",
            "currency": "EUR", "reference": "EXREF1", "received": "100", "status": status, "provider_id": "p1",
            "error": None, "sends": 1, "checks": 0, "created_at": T0.isoformat(), "attempted_at": T0.isoformat(),
            "sent_at": T0.isoformat() if status == "sent" else None, "failed_at": None, "resolved_by": None}
    wire.update(changes)
    return wire


def payout_result(wire, event_type="payout_sent", **kw):
    return envelope(event_type, {"payout": wire, "order_id": wire["order_id"], "error": wire["error"]},
                    source="payments", **kw)
