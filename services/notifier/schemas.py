"""Wire forms: what the notifier returns over RPC (amounts as strings, times ISO 8601). What it accepts in events
is defined by their producer (libs/contracts/orders.py)."""
import re

from libs import money
from libs.contracts.notifier import ACCOUNT_KINDS


_ACCOUNT_LINK = re.compile(r"token=[A-Za-z0-9_-]+")


def redact_account_link(text):
    """The send log shows account letters without their one-time token: a link an operator can read is a way
    into the customer's account."""
    return _ACCOUNT_LINK.sub("token=[hidden]", text) if text else text


def plain_order(order):
    """Decimals from the schema back to plain text for templates ('100', not '1E+2')."""
    out = dict(order)
    for key in ("amount_in", "amount_out", "rate_in", "rate_out"):
        out[key] = money.to_str(order[key])
    if out.get("pay_to"):
        out["pay_to"] = dict(out["pay_to"], amount=money.to_str(out["pay_to"].get("amount")))
    return out


def _iso(value):
    return value.isoformat() if value is not None else None


def settings_to_wire(row, sms_configured=None):
    wire = {
        "sms_enabled": row["sms_enabled"],
        "admin_email": row["admin_email"],
        "admin_phone": row["admin_phone"],
        "admin_language": row["admin_language"],
        "customer_sms_fee": money.to_str(row["customer_sms_fee"]),
        "enabled_kinds": list(row["enabled_kinds"]),
        "version": row["version"],
        "updated_by": row.get("updated_by"),
        "updated_at": _iso(row.get("updated_at")),
    }
    if sms_configured is not None:
        wire["sms_configured"] = sms_configured
    return wire


def notification_to_wire(row, with_html=True):
    """The log entry; lists leave out the HTML body (the detail has it)."""
    wire = {
        "id": row["id"],
        "order_id": row["order_id"],
        "kind": row["kind"],
        "channel": row["channel"],
        "audience": row["audience"],
        "recipient": row["recipient"],
        "language": row["language"],
        "subject": row["subject"],
        "status": row["status"],
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "next_attempt_at": _iso(row["next_attempt_at"]) if row["status"] == "pending" else None,
        "last_error": row["last_error"],
        "provider_id": row["provider_id"],
        "provider_status": row["provider_status"],
        "resends": row["resends"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "sent_at": _iso(row["sent_at"]),
    }
    wire["body_text"] = row["body_text"]
    if with_html:
        wire["body_html"] = row["body_html"]
    if row["kind"] in ACCOUNT_KINDS:  # the log never shows their one-time link
        wire["body_text"] = redact_account_link(wire["body_text"])
        if "body_html" in wire:
            wire["body_html"] = redact_account_link(wire["body_html"])
    return wire


def attempt_to_wire(row):
    return {"attempt": row["attempt"], "outcome": row["outcome"], "detail": row["detail"], "actor": row["actor"],
            "at": _iso(row["created_at"])}


def message_to_wire(row):
    return {"id": row["id"], "owner": row["owner"], "kind": row["kind"], "order_id": row["order_id"],
            "subject": row["subject"], "body": row["body"], "created_at": _iso(row["created_at"]),
            "read_at": _iso(row["read_at"])}
