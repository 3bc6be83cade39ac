"""Wire forms: what the notifier accepts over RPC (checked here, with the messages the gateway relays) and what it
returns (amounts as strings, times ISO 8601). What it accepts in events is defined by their producer
(libs/contracts/orders.py, payments.py, stuck.py); the schema instances are built here once."""
import re

from libs import errors, money
from libs.contracts import events
from libs.contracts.notifier import ACCOUNT_KINDS
from libs.contracts.orders import (AccountLetterSchema, AccountNoticeSchema, OrderCreatedSchema,
                                   OrderStatusChangedSchema, PartnerCreditedSchema)
from libs.contracts.payments import PayoutSucceededAfterResolveSchema
from libs.contracts.security import SecurityChangeSchema
from libs.contracts.rates import DirectionsFrozenSchema
from libs.contracts.stuck import StuckWorkFoundSchema
from services.notifier import domain

# Built once: a marshmallow schema instance is reusable and costly to build per event.
ORDER_EVENT_SCHEMAS = {events.ORDER_CREATED: OrderCreatedSchema(),
                       events.ORDER_STATUS_CHANGED: OrderStatusChangedSchema()}
PARTNER_CREDITED_SCHEMA = PartnerCreditedSchema()
ACCOUNT_LETTER_SCHEMA = AccountLetterSchema()
ACCOUNT_NOTICE_SCHEMA = AccountNoticeSchema()
STUCK_WORK_FOUND_SCHEMA = StuckWorkFoundSchema()
PAYOUT_LATE_SUCCESS_SCHEMA = PayoutSucceededAfterResolveSchema()
SECURITY_CHANGE_SCHEMA = SecurityChangeSchema()
DIRECTIONS_FROZEN_SCHEMA = DirectionsFrozenSchema()


def load_event(schema, payload):
    """(envelope, loaded data) of one event; marshmallow's ValidationError for a malformed one (dead-lettered)."""
    envelope = events.load_envelope(payload)
    return envelope, schema.load(envelope["data"])


# -- RPC arguments -------------------------------------------------------------------------------------------------
def check_log_filters(filters):
    """The send log's filters: known kinds, channels and statuses only."""
    filters = dict(filters or {})
    bad = {}
    if filters.get("kind") and filters["kind"] not in domain.KINDS + (domain.ALERT,) + domain.ACCOUNT_KINDS:
        bad["kind"] = ["unknown kind"]
    if filters.get("channel") and filters["channel"] not in domain.CHANNELS:
        bad["channel"] = ["must be one of %s" % ", ".join(domain.CHANNELS)]
    if filters.get("status") and filters["status"] not in domain.STATUSES:
        bad["status"] = ["must be one of %s" % ", ".join(domain.STATUSES)]
    if bad:
        raise errors.ValidationFailed("invalid filter", bad)
    return filters


def check_operator(actor):
    if not (actor or {}).get("name"):
        raise errors.Forbidden("operator actions need an actor")


def check_admin(actor):
    if (actor or {}).get("role") != "admin":
        raise errors.Forbidden("only an admin may change notification settings")


def load_settings_change(changes):
    """A (partial) settings change -> the cleaned values (domain.validate_settings), or ValidationFailed."""
    try:
        return domain.validate_settings(changes or {})
    except domain.RuleError as exc:
        raise errors.ValidationFailed(exc.message, exc.fields)


def check_alert(subject, body, key, also_to):
    bad = {}
    if not isinstance(subject, str) or not 1 <= len(subject) <= 200:
        bad["subject"] = ["1 to 200 characters"]
    if not isinstance(body, str) or not 1 <= len(body) <= 20000:
        bad["body"] = ["1 to 20000 characters"]
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 200):
        bad["key"] = ["1 to 200 characters"]
    if also_to is not None and (not isinstance(also_to, str) or not domain.EMAIL_RE.match(also_to)):
        bad["also_to"] = ["an e-mail address"]
    if bad:
        raise errors.ValidationFailed("invalid alert", bad)


def load_alert_recipients(emails):
    """The admins' own addresses: a list of e-mail addresses, at most 100 -> sorted, without repeats."""
    if not isinstance(emails, list) or len(emails) > 100 or not all(
            isinstance(e, str) and len(e) <= 254 and domain.EMAIL_RE.match(e) for e in emails):
        raise errors.ValidationFailed("invalid recipients", {"emails": ["a list of up to 100 e-mail addresses"]})
    return sorted(set(emails))


def check_message_sid(message_sid):
    if not domain.is_message_sid(message_sid):
        raise errors.ValidationFailed("invalid callback", {"MessageSid": ["not a message SID"]})


def check_owner(owner):
    if not domain.is_owner(owner):
        raise errors.ValidationFailed("invalid owner", {"owner": ["like partner:<id>"]})


def check_message_ids(message_ids):
    if not isinstance(message_ids, list) or not all(isinstance(i, int) for i in message_ids):
        raise errors.ValidationFailed("invalid ids", {"message_ids": ["a list of message ids"]})


# -- answers -------------------------------------------------------------------------------------------------------


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
