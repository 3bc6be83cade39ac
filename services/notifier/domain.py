"""What the notifier sends, to whom, and how it retries (docs/notifier.md). Pure functions, no I/O.

`RULES` is the notification matrix L1-L10, S1-S5 as data: one line per (kind, channel), the event that triggers
it and the exchange types it applies to. `decide()` turns one order event plus the settings into the sends.
"""
import collections
import hashlib
import html
import json
import re
from decimal import Decimal, InvalidOperation

from libs import money
from libs.contracts import events
# The kinds, channels and statuses are shared with the gateway (libs/contracts/notifier.py).
from libs.contracts.notifier import ACCOUNT_KINDS, ALERT, CHANNELS, KINDS, STATUSES  # noqa: F401
from libs.contracts.orders import EXCHANGE_TYPES, LANGUAGES

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PHONE_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
ALL = EXCHANGE_TYPES
CREATED = "created"  # pseudo status for order_created

# kind, channel, audience, to_status (or CREATED), from_statuses (None: any), exchange types
Rule = collections.namedtuple("Rule", "kind channel audience to_status from_statuses exchange_types")
RULES = [
    Rule("L1", "email", "customer", CREATED, None, ALL),                  # request created: where to pay
    Rule("L2", "email", "customer", "processing", ("payment_claimed",), ("manual",)),  # funds received + notice
    Rule("L3", "email", "customer", "completed", None, ALL),              # completed (+ notice if any)
    Rule("L4", "email", "customer", "canceled", None, ALL),               # canceled (+ reason)
    Rule("L6", "email", "admin", "completed", None, ("auto",)),           # auto exchange completed
    Rule("L7", "email", "admin", "paid", None, ("semi_auto",)),           # semi_auto paid: needs a payout
    Rule("L8", "email", "admin", CREATED, None, ("manual",)),             # manual order created
    Rule("L9", "email", "admin", "payment_claimed", None, ("manual",)),   # customer says they paid
    Rule("L10", "email", "admin", "payout_error", None, ALL),             # payout error
    Rule("S1", "sms", "admin", "completed", None, ("auto",)),
    Rule("S2", "sms", "admin", "paid", None, ("semi_auto",)),
    Rule("S3", "sms", "admin", CREATED, None, ("manual",)),
    Rule("S4", "sms", "admin", "payout_error", None, ALL),
    Rule("S5", "sms", "customer", "completed", None, ("manual", "semi_auto")),  # only with phone + opt-in
]
# L5 (partner commission credited -> private message) comes from its own event, not from an order status.
PARTNER_RULE = Rule("L5", "inbox", "partner", None, None, ALL)

Send = collections.namedtuple("Send", "kind channel audience recipient language")


def decide(event_type, data, settings, sms_configured):
    """The sends one order event causes. `data` is the event's data ({order, from_status, to_status, ...}),
    `settings` the notifier's settings row (dict), `sms_configured` whether Twilio credentials are present."""
    order = data["order"]
    if event_type == events.ORDER_CREATED:
        to_status, from_status = CREATED, None
    elif event_type == events.ORDER_STATUS_CHANGED:
        to_status, from_status = data["to_status"], data.get("from_status")
    else:
        return []
    enabled = set(settings.get("enabled_kinds") or ())
    sms_on = bool(settings.get("sms_enabled")) and sms_configured
    sends = []
    for rule in RULES:
        if rule.to_status != to_status or order["exchange_type"] not in rule.exchange_types:
            continue
        if rule.from_statuses is not None and from_status not in rule.from_statuses:
            continue
        if rule.kind not in enabled:
            continue
        send = _address(rule, order, settings, sms_on)
        if send is not None:
            sends.append(send)
    return sends


def _address(rule, order, settings, sms_on):
    if rule.channel == "sms" and not sms_on:
        return None
    if rule.audience == "customer":
        if rule.channel == "email":
            return Send(rule.kind, "email", "customer", order["email"], order.get("language") or "en")
        # S5: only when the customer gave a phone and agreed to pay for SMS
        if order.get("phone") and order.get("sms_opt_in"):
            return Send(rule.kind, "sms", "customer", order["phone"], order.get("language") or "en")
        return None
    language = settings.get("admin_language") or "en"
    if rule.channel == "email":
        return Send(rule.kind, "email", "admin", settings["admin_email"], language) \
            if settings.get("admin_email") else None
    return Send(rule.kind, "sms", "admin", settings["admin_phone"], language) \
        if settings.get("admin_phone") else None


def order_dedupe_key(order_id, kind, channel):
    return "order:%s:%s:%s" % (order_id, kind, channel)


# -- retries ---------------------------------------------------------------------------------------------------
def retry_delay(attempt, base_seconds, cap_seconds):
    """Seconds to wait after failed attempt number `attempt` (1-based): base, 2x, 4x ... capped."""
    return min(base_seconds * (2 ** max(attempt - 1, 0)), cap_seconds)


# -- Twilio delivery status: only ever forward (callbacks arrive out of order) ------------------------------------
PROVIDER_STATUS_RANK = {
    "accepted": 0, "scheduled": 0, "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3, "undelivered": 3, "failed": 3, "canceled": 3, "partially_delivered": 3,
    "read": 4,
}


def status_moves_forward(current, new):
    """True if `new` is a later delivery status than `current`. Two final ones never replace each other."""
    if new not in PROVIDER_STATUS_RANK:
        return False
    if current is None:
        return True
    return PROVIDER_STATUS_RANK[new] > PROVIDER_STATUS_RANK.get(current, -1)


# -- settings ----------------------------------------------------------------------------------------------------
class RuleError(Exception):
    def __init__(self, message, fields=None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


SETTING_FIELDS = ("sms_enabled", "admin_email", "admin_phone", "admin_language", "customer_sms_fee",
                  "enabled_kinds")


def validate_settings(changes):
    """Check a (partial) settings change; returns the cleaned values or raises RuleError with the fields."""
    fields, clean = {}, {}
    unknown = set(changes) - set(SETTING_FIELDS)
    for name in sorted(unknown):
        fields[name] = ["unknown setting"]
    if "sms_enabled" in changes:
        if not isinstance(changes["sms_enabled"], bool):
            fields["sms_enabled"] = ["must be true or false"]
        else:
            clean["sms_enabled"] = changes["sms_enabled"]
    if "admin_email" in changes:
        value = _optional_text(changes["admin_email"])
        if value is False or (value is not None and (len(value) > 254 or not EMAIL_RE.match(value))):
            fields["admin_email"] = ["must be an e-mail address"]
        else:
            clean["admin_email"] = value
    if "admin_phone" in changes:
        value = _optional_text(changes["admin_phone"])
        if value is False or (value is not None and not PHONE_RE.match(value)):
            fields["admin_phone"] = ["must be in international format, e.g. +4915112345678"]
        else:
            clean["admin_phone"] = value
    if "admin_language" in changes:
        if changes["admin_language"] not in LANGUAGES:
            fields["admin_language"] = ["must be en or ru"]
        else:
            clean["admin_language"] = changes["admin_language"]
    if "customer_sms_fee" in changes:
        try:
            fee = parse_fee(changes["customer_sms_fee"])
            clean["customer_sms_fee"] = fee
        except RuleError as exc:
            fields["customer_sms_fee"] = [exc.message]
    if "enabled_kinds" in changes:
        kinds = changes["enabled_kinds"]
        if not isinstance(kinds, (list, tuple)) or not all(isinstance(k, str) for k in kinds):
            fields["enabled_kinds"] = ["must be a list of kinds"]
        else:
            bad = [k for k in kinds if k not in KINDS]
            if bad:
                fields["enabled_kinds"] = ["unknown kinds: %s" % ", ".join(bad)]
            else:
                clean["enabled_kinds"] = [k for k in KINDS if k in set(kinds)]
    if fields:
        raise RuleError("invalid settings", fields)
    return clean


def _optional_text(value):
    """None or "" -> None; a string -> stripped; anything else -> False (invalid)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return False
    return value.strip() or None


def parse_fee(value):
    """The customer SMS fee: a percent (like a direction's fee), 0 <= fee < 100, at most 6 decimal places."""
    if isinstance(value, (bool, float)) or not isinstance(value, (str, int, Decimal)):
        raise RuleError("must be a decimal string, e.g. \"0.5\"")
    try:
        fee = Decimal(str(value).strip())
    except InvalidOperation:
        raise RuleError("must be a decimal string, e.g. \"0.5\"")
    if not fee.is_finite() or fee < 0 or fee >= 100:
        raise RuleError("must be at least 0 and below 100 (percent)")
    if money.fraction_digits(fee) > 6:
        raise RuleError("at most 6 decimal places")
    return fee


def changed_settings(current, clean):
    """The cleaned values that differ from the current settings row."""
    return {k: v for k, v in clean.items() if _comparable(current[k]) != _comparable(v)}


def _comparable(value):
    if isinstance(value, list):
        return list(value)
    return value


def settings_announcement(row, sms_configured):
    """The settings_changed payload: what other services need (orders: the customer SMS fee)."""
    return {
        "settings": {
            "sms_enabled": row["sms_enabled"],
            "customer_sms_fee": money.to_str(row["customer_sms_fee"]),
            "enabled_kinds": list(row["enabled_kinds"]),
            "admin_language": row["admin_language"],
        },
        # S5 would really go out: SMS on, Twilio configured, S5 enabled. Orders charges the fee only then.
        "customer_sms_available": bool(row["sms_enabled"] and sms_configured and "S5" in row["enabled_kinds"]),
        "customer_sms_fee": money.to_str(row["customer_sms_fee"]),
        "version": row["version"],
    }


def settings_change_text(before, after, actor, role, ip, at):
    """The body of the alert every settings change sends to the admin address: who, from where, when, and each
    changed setting as `name: old -> new`."""
    lines = ["Notification settings were changed by %s (%s) from %s at %s UTC." % (
        actor, role or "-", ip or "-", at.strftime("%Y-%m-%d %H:%M:%S")), ""]
    for key in SETTING_FIELDS:
        if before.get(key) != after.get(key):
            lines.append("%s: %s -> %s" % (key, _show(before.get(key)), _show(after.get(key))))
    return "\n".join(lines)


def _show(value):
    if value is None or value == "":
        return "(none)"
    if isinstance(value, list):
        return ",".join(value) or "(none)"
    return str(value)


# -- admin alerts and private messages -----------------------------------------------------------------------------
def alert_key(subject, body, also_to):
    """The occurrence key of an admin alert sent without one: the text itself, so a repeated call (nameko may run
    an RPC twice; callers retry) queues nothing new."""
    return "sha256-" + hashlib.sha256(json.dumps([subject, body, also_to]).encode()).hexdigest()


SID_CHARS = set("0123456789abcdefABCDEF")


def is_message_sid(value):
    """A Twilio MessageSid: two letters and 32 hex digits."""
    return (isinstance(value, str) and len(value) == 34 and value[:2].isalpha()
            and set(value[2:]) <= SID_CHARS)


def is_owner(value):
    """The owner of private messages, like `partner:<id>`."""
    return isinstance(value, str) and 3 <= len(value) <= 100 and ":" in value


# -- stuck work (docs/architecture.md, "Stuck work") ---------------------------------------------------------------
def stuck_work_alert(data, event_id):
    """(subject, body, key) of the admin letter for `stuck_work_found` (libs/contracts/stuck.py StuckWorkFoundSchema):
    the new items with their age and the repairs an operator may run from /admin/stuck. The key is the event's,
    so a redelivery queues nothing new."""
    items = data["items"]
    subject = "Stuck work in %s: %d new item%s" % (data["service"], len(items), "" if len(items) == 1 else "s")
    lines = ["%s found money work that should have moved on and has not:" % data["service"], ""]
    for item in items:
        lines.append("- %s #%s%s, %s old: %s (repair: %s)" % (
            item["kind"], item["id"], " (order %s)" % item["order_id"] if item.get("order_id") else "",
            _age_text(item["age_seconds"]), item["detail"], ", ".join(item.get("repair") or []) or "by hand"))
    if data.get("counts"):
        lines += ["", "Stuck now: " + ", ".join("%s %s" % (kind, n) for kind, n in sorted(data["counts"].items()))]
    lines += ["", "Operator panel: /admin/stuck"]
    return subject, "\n".join(lines), "stuck:%s" % event_id


# -- directions the rate engine froze (docs/rates.md, "Guards") ---------------------------------------------------
def directions_frozen_alert(data, event_id):
    """(subject, body, key) of the admin letter for the rate engine's `directions_frozen`
    (libs/contracts/rates.py): each direction, why it stopped taking orders, and where to look. Keyed by the event."""
    items = data["items"]
    subject = "Rates: %d direction%s stopped taking orders" % (len(items), "" if len(items) == 1 else "s")
    lines = ["A guard of the rate engine froze these directions: they take no orders and are left out of the "
             "monitors' file until fresh values return or an operator accepts the rate.", ""]
    for item in items:
        lines.append("- #%s %s: %s" % (item["direction_id"], item["pair"], item["reason"]))
    lines += ["", "Operator panel: /admin/rates"]
    return subject, "\n".join(lines), "rates-frozen:%s" % event_id


# -- a payout that went out after it was resolved failed (docs/payments.md, "Resolving a payout by hand") ----------
def late_success_alert(data, event_id):
    """(subject, body, key) of the admin letter for `payout_succeeded_after_resolve`
    (libs/contracts/payments.py PayoutSucceededAfterResolveSchema): which order or partner withdrawal, how much, to
    whom, the provider's transfer, and that it must not be paid again. The key is the event's, so a redelivery
    queues nothing new."""
    amount = "%s %s" % (money.to_str(data["amount"]), data["currency"])
    if data["kind"] == "withdrawal":
        what, page = "partner withdrawal #%s" % data["withdrawal_id"], "/admin/withdrawals"
        then = ("Orders has flagged the withdrawal; if its amount had gone back to the partner's balance, it has been "
                "taken out again (see the partner's ledger).")
    else:
        what, page = "request #%s" % data["order_id"], "/admin/orders/%s" % data["order_id"]
        then = "Orders has flagged the request and refuses another payout of it: finalize it."
    subject = "Paid after all: payout %s of %s (%s) went out after it was resolved failed" % (
        data["payout_id"], what, amount)
    lines = ["The payout of %s was resolved failed%s, and the payment system has now reported it SENT." % (
        what, " by %s" % data["resolved_by"] if data.get("resolved_by") else ""), "",
        "Amount: %s" % amount,
        "Recipient: %s" % data["to_account"],
        "Provider transfer: %s" % (data.get("provider_id") or "unknown"),
        "Payout: %s (key %s)" % (data["payout_id"], data["idempotency_key"]), "",
        "The money went out: do NOT pay it again.", then, "", "Operator panel: %s" % page]
    return subject, "\n".join(lines), "late-success:%s" % event_id


def _age_text(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    if seconds >= 60:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    return "%ds" % seconds


# -- one-time links and caps (docs/security.md, "Throttles and lockout") --------------------------------------------
# Stands for the one-time link in a stored sign-up or reset letter; the link itself is kept apart until sent.
LINK_PLACEHOLDER = "[one-time link]"


def fill_link(row):
    """The row as the provider must get it: the placeholder replaced by the link (HTML-escaped in the HTML)."""
    link = row.get("secret_link")
    if not link:
        return row
    filled = dict(row, body_text=(row["body_text"] or "").replace(LINK_PLACEHOLDER, link))
    if row.get("body_html"):
        filled["body_html"] = row["body_html"].replace(html.escape(LINK_PLACEHOLDER), html.escape(link, quote=True))
    return filled


def admin_sms_summary(language, held, window_seconds, site_name):
    """The one SMS sent instead of the admin SMS held back during a burst."""
    minutes = max(1, int(window_seconds // 60))
    if language == "ru":
        return "%s: ещё %d SMS администратору за %d мин. не отправлены (всплеск). Смотрите панель." % (
            site_name, held, minutes)
    return "%s: %d more admin SMS held back in the last %d min (a burst). See the admin panel." % (
        site_name, held, minutes)
