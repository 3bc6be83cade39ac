"""Realistic order events for the notifier tests: the same shapes services/orders/schemas.py order_to_wire and
libs/outbox.write_event produce."""
import itertools
import secrets
import time
import uuid

from libs.contracts import events

_ids = itertools.count(int(time.time() * 1000) % 10**9 * 1000)


def order(exchange_type="manual", status="new", language="en", phone=None, sms_opt_in=False, email=None,
          notice=None, cancel_reason=None, payment_flag=None, order_id=None, **extra):
    oid = order_id or next(_ids)
    snapshot = {
        "id": oid, "token": secrets.token_urlsafe(24), "status": status, "exchange_type": exchange_type,
        "direction_id": 3, "currency_in": "EUR", "amount_in": "100", "currency_out": "USDT",
        "amount_out": "106.465", "rate_in": "1", "rate_out": "1.07", "fee": "0.5", "fee_amount": "0.535",
        "sms_fee": "0", "amount_received": None, "payment_flag": payment_flag,
        "pay_to": {"system": "sandbox", "account": "EXCH-EUR", "amount": "100", "currency": "EUR",
                   "reference": "EXAB23CD45EF"},
        "reference": "EXAB23CD45EF", "email": email or "customer-%s@example.com" % uuid.uuid4().hex[:8],
        "recipient": "USDT-ACC-42", "phone": phone, "sms_opt_in": sms_opt_in, "partner_code": None,
        "language": language, "notice": notice, "cancel_reason": cancel_reason, "version": 1,
        "expires_at": "2030-01-01T00:00:00+00:00", "created_at": "2026-01-01T10:00:00+00:00",
        "updated_at": "2026-01-01T10:00:00+00:00", "completed_at": None, "actions": [],
    }
    snapshot.update(extra)
    return snapshot


def created(order_snapshot):
    return events.envelope(events.ORDERS, events.ORDER_CREATED, {"order": order_snapshot})


def changed(order_snapshot, from_status, to_status, action="x", note=None, actor_kind="staff"):
    snap = dict(order_snapshot, status=to_status, version=order_snapshot.get("version", 1) + 1)
    if to_status == "canceled" and note:
        snap["cancel_reason"] = note
    if action in ("process", "finalize") and note:
        snap["notice"] = note
    return snap, events.envelope(events.ORDERS, events.ORDER_STATUS_CHANGED, {
        "order": snap, "from_status": from_status, "to_status": to_status, "action": action,
        "actor": {"kind": actor_kind, "name": "op1" if actor_kind == "staff" else actor_kind, "role": None},
        "note": note})
