"""Wire forms of orders and directions: amounts as strings (never floats, which would round money), times as
ISO 8601 with their offset."""
from libs import money
from libs.contracts.orders import OrderSnapshotSchema
from services.orders import domain


def _iso(value):
    return value.isoformat() if value is not None else None


def direction_to_wire(row):
    return {
        "id": row["id"],
        "currency_in": row["currency_in"],
        "currency_out": row["currency_out"],
        "rate_in": money.to_str(row["rate_in"]),
        "rate_out": money.to_str(row["rate_out"]),
        "min_amount": money.to_str(row["min_amount"]),
        "max_amount": money.to_str(row["max_amount"]),
        "reserve": money.to_str(row["reserve"]),
        "exchange_type": row["exchange_type"],
        "fee": money.to_str(row["fee"]),
        "payment_window_minutes": row["payment_window_minutes"],
        "precision_in": row["precision_in"],
        "precision_out": row["precision_out"],
        "name_in": row["name_in"],
        "name_out": row["name_out"],
        "active": row["active"],
    }


_SNAPSHOT = OrderSnapshotSchema()


def order_to_wire(row):
    """The full order: what the customer sees by token, what operators see, and what every event carries. Built
    through the one snapshot schema every consumer loads with, so producer and consumers cannot drift apart."""
    return _SNAPSHOT.dump({
        "id": row["id"],
        "token": row["token"],
        "status": row["status"],
        "exchange_type": row["exchange_type"],
        "direction_id": row["direction_id"],
        "currency_in": row["currency_in"],
        "amount_in": row["amount_in"],
        "currency_out": row["currency_out"],
        "amount_out": row["amount_out"],
        "rate_in": row["rate_in"],
        "rate_out": row["rate_out"],
        "fee": row["fee"],
        "fee_amount": row["fee_amount"],
        "sms_fee": row["sms_fee"],
        "amount_received": row["amount_received"],
        "payment_flag": row["payment_flag"],
        "pay_to": {
            "system": row["pay_system"],
            "account": row["pay_account"],
            "amount": row["amount_in"],
            "currency": row["currency_in"],
            "reference": row["reference"],
        },
        "reference": row["reference"],
        "email": row["email"],
        "recipient": row["recipient"],
        "phone": row["phone"],
        "sms_opt_in": row["sms_opt_in"],
        "partner_code": row["partner_code"],
        "language": row["language"],
        "notice": row["notice"],
        "cancel_reason": row["cancel_reason"],
        "version": row["version"],
        "expires_at": row["expires_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "completed_at": row["completed_at"],
        "actions": domain.available_actions(row["status"], row["exchange_type"]),
    })


def history_to_wire(row):
    return {"from_status": row["from_status"], "to_status": row["to_status"], "action": row["action"],
            "actor": row["actor"], "note": row["note"], "at": _iso(row["created_at"])}


def audit_to_wire(row):
    return {"id": row["id"], "actor": row["actor"], "actor_role": row["actor_role"], "actor_ip": row["actor_ip"],
            "action": row["action"], "order_id": row["order_id"], "from_status": row["from_status"],
            "to_status": row["to_status"], "outcome": row["outcome"], "detail": row["detail"],
            "at": _iso(row["created_at"])}
