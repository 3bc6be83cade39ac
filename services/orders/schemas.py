"""Wire forms of the orders service's answers: orders and directions, currencies, customer accounts and the partner
programme. Amounts as strings (never floats, which would round money), times as ISO 8601 with their offset.
The order snapshot every event carries is the contract in libs/contracts/orders.py."""
from libs import money
from libs.contracts.orders import OrderSnapshotSchema
from services.orders.domain import orders as domain


def _iso(value):
    return value.isoformat() if value is not None else None


def plain(value):
    """A value for an audit row's detail: Decimals as strings."""
    return money.to_str(value) if isinstance(value, money.Decimal) else value


def plain_values(values):
    return {k: plain(v) for k, v in values.items()}


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
        # what new orders may still take: the reserve less what open orders hold (never shown below 0)
        "reserve_available": money.to_str(max(row["available"], money.Decimal(0))),
        "exchange_type": row["exchange_type"],
        "fee": money.to_str(row["fee"]),
        "payment_window_minutes": row["payment_window_minutes"],
        "precision_in": row["precision_in"],
        "precision_out": row["precision_out"],
        "name_in": row["name_in"],
        "name_out": row["name_out"],
        "active": row["active"],
        # the monitors' file (docs/monitors.md): the direction's own flags and its city (cash directions)
        "monitor_params": list(row["monitor_params"] or []),
        "city": row["city"],
        # the rate engine (docs/rates.md): a frozen direction takes no orders until fresh values return or an
        # operator accepts the rate; a floating one pays out at the rate of the moment the payment arrives
        "floating": row["floating"],
        "rate_frozen": row["rate_frozen"],
        "frozen_reason": row["frozen_reason"],
        "rate_updated_at": row["rate_updated_at"].isoformat() if row.get("rate_updated_at") else None,
    }


def currency_to_wire(row):
    return {"code": row["code"], "name": row["name"], "precision": row["precision"],
            "payment_system": row["payment_system"], "account": row["account"],
            "reserve": money.to_str(row["reserve"]), "held": money.to_str(row["held"]),
            # below 0 when the balance fell under what open orders are owed: admins see by how much
            "available": money.to_str(row["reserve"] - row["held"]),
            # false after the payout account changed, until its balance arrives (the reserve is 0 meanwhile)
            "reserve_known": row["reserve_observed_at"] is not None, "active": row["active"],
            # the code the monitors know the currency by (docs/monitors.md); None: left out of the file
            "monitor_code": row["monitor_code"]}


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
        "actions": domain.order_actions(row["status"], row["exchange_type"], row.get("payout_late_success_at")),
        "payout_late_success_at": row.get("payout_late_success_at"),
        "payout_late_success_provider_id": row.get("payout_late_success_provider_id"),
        "floating": bool(row.get("floating")),
    })


def history_to_wire(row):
    return {"from_status": row["from_status"], "to_status": row["to_status"], "action": row["action"],
            "actor": row["actor"], "note": row["note"], "at": _iso(row["created_at"])}


CUSTOMER_ACTIONS = ("create", "claim", "customer_cancel")


def public_history_to_wire(row):
    """The history a customer sees (GET /api/v1/orders/<token>, the order page): who acted only as `customer` or
    `exchanger`, never a staff member's name (docs/security.md)."""
    return {"from_status": row["from_status"], "to_status": row["to_status"], "action": row["action"],
            "by": "customer" if row["action"] in CUSTOMER_ACTIONS else "exchanger", "note": row["note"],
            "at": _iso(row["created_at"])}


def audit_to_wire(row):
    return {"id": row["id"], "actor": row["actor"], "actor_role": row["actor_role"], "actor_ip": row["actor_ip"],
            "action": row["action"], "order_id": row["order_id"], "from_status": row["from_status"],
            "to_status": row["to_status"], "outcome": row["outcome"], "detail": row["detail"],
            "at": _iso(row["created_at"])}


# -- customer accounts and the partner programme ----------------------------------------------------------------------
def account_to_wire(row, partner=None, totp_enabled=False):
    return {"id": row["id"], "email": row["email"], "language": row["language"],
            "email_confirmed": row["email_confirmed_at"] is not None, "created_at": _iso(row["created_at"]),
            "partner": partner_to_wire(partner) if partner else None, "totp_enabled": bool(totp_enabled)}


def partner_to_wire(row):
    return {"id": row["id"], "account_id": row["account_id"], "code": row["code"], "active": row["active"],
            "percent": money.to_str(row["percent"]) if row["percent"] is not None else None,
            "base": row["base"], "created_at": _iso(row["created_at"])}


def partner_joined(partner, created):
    """The answer of become_partner: the partner, and whether this call made it one."""
    return {"partner": partner, "created": created}


def admin_partner_to_wire(row, balances):
    """A partner as admins list it: with its e-mail, counts and balances."""
    wire = partner_to_wire(row)
    wire.update(email=row["email"], clicks=row["clicks"], referred_orders=row["referred_orders"],
                credits=row["credits"], balances=balances)
    return wire


def ledger_to_wire(row):
    return {"id": row["id"], "kind": row["kind"], "currency": row["currency"], "amount": money.to_str(row["amount"]),
            "balance_after": money.to_str(row["balance_after"]), "order_id": row["order_id"],
            "withdrawal_id": row["withdrawal_id"],
            "percent": money.to_str(row["percent"]) if row["percent"] is not None else None,
            "base": row["base"], "base_amount": money.to_str(row["base_amount"]),
            "created_at": _iso(row["created_at"])}


def withdrawal_to_wire(row):
    wire = {"id": row["id"], "partner_id": row["partner_id"], "currency": row["currency"],
            "amount": money.to_str(row["amount"]), "to_account": row["to_account"], "status": row["status"],
            "method": row["method"], "reference": row["reference"], "reason": row["reason"],
            "decided_by": row["decided_by"], "decided_at": _iso(row["decided_at"]),
            "created_at": _iso(row["created_at"]),
            # paid after its payout was resolved failed (store/partners.py apply_withdrawal_late_paid)
            "late_paid_at": _iso(row.get("late_paid_at")), "late_paid_provider_id": row.get("late_paid_provider_id"),
            "late_paid_shortfall": money.to_str(row["late_paid_shortfall"])
            if row.get("late_paid_shortfall") is not None else None}
    if "destination_confirmed" in row:
        # a withdrawal to a destination the partner has not confirmed from their mailbox waits (docs/partners.md)
        wire["destination_confirmed"] = bool(row["destination_confirmed"])
    if "partner_code" in row:
        wire["partner_code"] = row["partner_code"]
        wire["partner_email"] = row["partner_email"]
    return wire


def referred_order_to_wire(row):
    """What a partner may see of an order they referred: no customer e-mail, account or token."""
    return {"id": row["id"], "status": row["status"], "currency_in": row["currency_in"],
            "amount_in": money.to_str(row["amount_in"]), "currency_out": row["currency_out"],
            "created_at": _iso(row["created_at"]), "completed_at": _iso(row["completed_at"]),
            "commission": money.to_str(row["commission"]) if row["commission"] is not None else None}


def commission_to_wire(settings, directions):
    """The global commission rule, the minimum withdrawal and every direction's own rule."""
    return {"percent": money.to_str(settings["percent"]), "base": settings["base"],
            "min_withdrawal": money.to_str(settings["min_withdrawal"]), "version": settings["version"],
            "updated_by": settings["updated_by"], "updated_at": _iso(settings["updated_at"]),
            "directions": [{"direction_id": d["direction_id"], "percent": money.to_str(d["percent"]),
                            "base": d["base"], "pair": "%s-%s %s" % (d["currency_in"], d["currency_out"],
                                                                    d["exchange_type"]),
                            "updated_by": d["updated_by"]} for d in directions]}


def daily_clicks_to_wire(row):
    return {"day": row["day"].isoformat(), "clicks": row["n"]}


def daily_earnings_to_wire(row):
    return {"day": row["day"].isoformat(), "currency": row["currency"], "amount": money.to_str(row["amount"]),
            "orders": row["n"]}
