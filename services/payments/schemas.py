"""Wire forms of payments, payouts and accounts: amounts as strings (never floats, which would round money) and
times as ISO 8601 with their offset."""
import datetime

from libs import money


def _iso(value):
    return value.isoformat() if value is not None else None


def payment_to_wire(row):
    return {
        "id": row["id"],
        "system": row["system"],
        "account": row["account"],
        "external_id": row["external_id"],
        "amount": money.to_str(row["amount"]),
        "currency": row["currency"],
        "reference": row["reference"],
        "match_reference": row["match_reference"],
        "counterparty": row["counterparty"],
        "occurred_at": _iso(row["occurred_at"]),
        "detected_at": _iso(row["detected_at"]),
        "status": row["status"],
        "order_id": row["order_id"],
        "candidate_order_id": row["candidate_order_id"],
        "flag": row["flag"],
        "reason_code": row["reason_code"],
        "reason": row["reason"],
        "assigned_by": row["assigned_by"],
        "updated_at": _iso(row["updated_at"]),
    }


def _transfer_to_wire(row):
    """What an order's payout and a withdrawal's payout share: one transfer we send, its key and its fate."""
    return {
        "id": row["id"],
        "idempotency_key": row["idempotency_key"],
        "system": row["system"],
        "from_account": row["from_account"],
        "to_account": row["to_account"],
        "amount": money.to_str(row["amount"]),
        "currency": row["currency"],
        "reference": row["reference"],
        "status": row["status"],
        "provider_id": row["provider_id"],
        "error": row["error"],
        "sends": row["sends"],
        "checks": row["checks"],
        "created_at": _iso(row["created_at"]),
        "attempted_at": _iso(row["attempted_at"]),
        "sent_at": _iso(row["sent_at"]),
        "failed_at": _iso(row["failed_at"]),
        "resolved_by": row["resolved_by"],
        "late_success": row["late_success"],
        "late_success_at": _iso(row["late_success_at"]),
    }


def payout_to_wire(row):
    return dict(_transfer_to_wire(row), order_id=row["order_id"], attempt=row["attempt"],
                received=money.to_str(row["received"]))


def withdrawal_payout_to_wire(row):
    return dict(_transfer_to_wire(row), withdrawal_id=row["withdrawal_id"], partner_id=row["partner_id"])


def account_to_wire(row, now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    ok = row["polled_ok_at"]
    return {
        "system": row["system"],
        "account": row["account"],
        "currency": row["currency"],
        "payout": row["payout"],
        "balance": money.to_str(row["balance"]),
        "balance_at": _iso(row["balance_at"]),
        "cursor": row["cursor"],
        "polled_at": _iso(row["polled_at"]),
        "polled_ok_at": _iso(ok),
        "poll_age_seconds": round((now - ok).total_seconds(), 3) if ok else None,
        "poll_error": row["poll_error"],
        "ingested": row["ingested"],
    }
