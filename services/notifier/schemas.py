"""Wire forms: what the notifier accepts in events and returns over RPC (amounts as strings, times ISO 8601)."""
import re

from marshmallow import EXCLUDE, Schema, fields, validate

from libs import money


class PayToSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    system = fields.String(allow_none=True)
    account = fields.String(allow_none=True)
    amount = fields.String(allow_none=True)
    currency = fields.String(allow_none=True)
    reference = fields.String(allow_none=True)


class OrderSnapshotSchema(Schema):
    """The parts of the order snapshot (services/orders/schemas.py order_to_wire) a letter needs.

    Amounts stay strings: they are shown, never computed with; marshmallow checks they are decimals."""
    class Meta:
        unknown = EXCLUDE

    id = fields.Integer(required=True)
    token = fields.String(required=True, validate=validate.Length(min=8, max=64))
    status = fields.String(required=True)
    exchange_type = fields.String(required=True, validate=validate.OneOf(["auto", "semi_auto", "manual"]))
    currency_in = fields.String(required=True)
    currency_out = fields.String(required=True)
    amount_in = fields.Decimal(required=True, as_string=True)
    amount_out = fields.Decimal(required=True, as_string=True)
    rate_in = fields.Decimal(required=True, as_string=True)
    rate_out = fields.Decimal(required=True, as_string=True)
    email = fields.String(required=True)
    recipient = fields.String(required=True)
    phone = fields.String(allow_none=True, load_default=None)
    sms_opt_in = fields.Boolean(load_default=False)
    language = fields.String(load_default="en", validate=validate.OneOf(["en", "ru"]))
    notice = fields.String(allow_none=True, load_default=None)
    cancel_reason = fields.String(allow_none=True, load_default=None)
    payment_flag = fields.String(allow_none=True, load_default=None)
    reference = fields.String(allow_none=True, load_default=None)
    pay_to = fields.Nested(PayToSchema, allow_none=True, load_default=None)
    version = fields.Integer(load_default=None)
    created_at = fields.String(allow_none=True, load_default=None)


class OrderCreatedSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    order = fields.Nested(OrderSnapshotSchema, required=True)


class OrderStatusChangedSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    order = fields.Nested(OrderSnapshotSchema, required=True)
    from_status = fields.String(required=True, allow_none=True)
    to_status = fields.String(required=True)
    action = fields.String(load_default=None)
    actor = fields.Dict(allow_none=True, load_default=None)
    note = fields.String(allow_none=True, load_default=None)


class PartnerCreditedSchema(Schema):
    """orders' `partner_credited` event (services/orders/partners.py): a partner's commission was credited."""
    class Meta:
        unknown = EXCLUDE

    partner_account_id = fields.Raw(required=True)
    order_id = fields.Integer(required=True)
    amount = fields.Decimal(required=True, as_string=True)
    currency = fields.String(required=True)
    language = fields.String(load_default="en", validate=validate.OneOf(["en", "ru"]))
    balance = fields.Decimal(as_string=True, allow_none=True, load_default=None)


class AccountLetterSchema(Schema):
    """orders' `account_signup_requested` (confirm_url) and `password_reset_requested` (reset_url): a letter with a
    one-time link to the account's e-mail (issue 7)."""
    class Meta:
        unknown = EXCLUDE

    account_id = fields.Integer(required=True)
    email = fields.Email(required=True)
    language = fields.String(load_default="en", validate=validate.OneOf(["en", "ru"]))
    token_id = fields.Integer(required=True)
    confirm_url = fields.Url(require_tld=False, load_default=None)
    reset_url = fields.Url(require_tld=False, load_default=None)
    expires_at = fields.AwareDateTime(required=True)


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
    if row["kind"] in ("SIGNUP", "RESET"):  # domain.ACCOUNT_KINDS: the log never shows their one-time link
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
