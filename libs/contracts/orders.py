"""The orders service's contracts: its enums and action table, the ONE order snapshot (what order_to_wire dumps
and every consumer loads), the payloads of its events, and the create-order input the gateway and orders both
load with.

The snapshot schema is a superset: it names every field the producer sends. Consumers ignore what they do not
need, and fields unknown to this version are excluded, so adding a field never breaks a consumer.
"""
import collections
import re

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, post_dump, post_load, validate, \
    validates_schema

from libs.contracts.fields import AmountString, Money, StrictMoney

EXCHANGE_TYPES = ("auto", "semi_auto", "manual")
PAYMENT_FLAGS = ("partial", "over", "late")
LANGUAGES = ("en", "ru")

STATUSES = ("new", "payment_claimed", "processing", "paid", "payout", "payout_error", "completed", "canceled",
            "expired", "deleted")
FINAL_STATUSES = ("completed", "canceled", "deleted")

# The state machine's actions: who may take each, from which statuses, on which exchange types. The orders
# service enforces it (services/orders/domain/orders.py, and the database trigger); the gateway shows the customer's
# buttons from it.
Action = collections.namedtuple("Action", "name from_statuses to_status exchange_types actor_kinds")

_ALL = EXCHANGE_TYPES
ACTIONS = {a.name: a for a in [
    # payments service: an exact (or, on expired orders, late) payment was detected
    Action("pay", ("new", "expired"), "paid", ("auto", "semi_auto"), ("system",)),
    Action("claim", ("new",), "payment_claimed", ("manual",), ("customer",)),
    Action("expire", ("new",), "expired", _ALL, ("system",)),
    Action("customer_cancel", ("new",), "canceled", _ALL, ("customer",)),
    Action("process", ("payment_claimed",), "processing", ("manual",), ("staff",)),
    Action("finalize", ("payment_claimed", "processing", "paid", "payout_error"), "completed", _ALL, ("staff",)),
    Action("cancel", ("new", "payment_claimed", "processing", "paid", "payout_error"), "canceled", _ALL,
           ("staff",)),
    # auto: at once on an exact payment (system); semi_auto or a retry after an error: an operator
    Action("payout", ("paid", "payout_error"), "payout", ("auto", "semi_auto"), ("staff", "system")),
    Action("payout_sent", ("payout",), "completed", ("auto", "semi_auto"), ("system",)),
    Action("payout_failed", ("payout",), "payout_error", ("auto", "semi_auto"), ("system",)),
    Action("delete", tuple(s for s in STATUSES if s not in ("payout", "deleted")), "deleted", _ALL, ("staff",)),
]}


def allowed_transitions():
    """Every (from, to) pair any action allows: what the database trigger permits."""
    return sorted({(f, a.to_status) for a in ACTIONS.values() for f in a.from_statuses})


def available_actions(status, exchange_type, actor_kind="staff"):
    """Actions that may be taken now: drives the admin pages' buttons (and the customer's, with "customer")."""
    return [a.name for a in ACTIONS.values()
            if status in a.from_statuses and exchange_type in a.exchange_types and actor_kind in a.actor_kinds]



# What the customer is told of the history: the operator's notice or cancel reason, which were written for them;
# the other notes are for staff (payment ids, payout keys, provider error codes), and so is who acted.
CUSTOMER_NOTE_ACTIONS = ("process", "finalize", "cancel")


def for_customer(order):
    """The order as its customer sees it (by its token): the history without actors and internal notes; who acted
    only as `customer` or `exchanger` (`by`, set by orders' public history), never a staff member's name."""
    shown = dict(order)
    if "history" in order:
        shown["history"] = [{"from_status": h.get("from_status"), "to_status": h["to_status"], "action": h["action"],
                             "by": h.get("by"),
                             "note": h.get("note") if h["action"] in CUSTOMER_NOTE_ACTIONS else None,
                             "at": h["at"]} for h in order["history"] or []]
    return shown

# -- the order snapshot ------------------------------------------------------------------------------------------
class PayToSchema(Schema):
    """Where the customer pays: the account, the exact amount and the reference to quote."""
    class Meta:
        unknown = EXCLUDE

    system = fields.String(required=True)
    account = fields.String(required=True)
    amount = StrictMoney(allow_none=True, load_default=None)
    currency = fields.String(allow_none=True, load_default=None)
    reference = fields.String(allow_none=True, load_default=None)


class OrderSnapshotSchema(Schema):
    """The full order: what the customer sees by token, what operators see, and what every order event carries
    (consumers need no call back). Amounts are decimal strings, times ISO 8601 with their offset."""
    class Meta:
        unknown = EXCLUDE

    id = fields.Integer(required=True)
    token = fields.String(required=True, validate=validate.Length(min=1, max=64))
    status = fields.String(required=True)
    exchange_type = fields.String(required=True, validate=validate.OneOf(EXCHANGE_TYPES))
    direction_id = fields.Integer(required=True)
    currency_in = fields.String(required=True)
    amount_in = StrictMoney(required=True)
    currency_out = fields.String(required=True)
    amount_out = StrictMoney(required=True)
    rate_in = StrictMoney(required=True)
    rate_out = StrictMoney(required=True)
    fee = StrictMoney(allow_none=True, load_default=None)
    fee_amount = StrictMoney(allow_none=True, load_default=None)
    sms_fee = StrictMoney(allow_none=True, load_default=None)
    amount_received = StrictMoney(allow_none=True, load_default=None)
    payment_flag = fields.String(allow_none=True, load_default=None)
    pay_to = fields.Nested(PayToSchema, required=True)
    reference = fields.String(required=True)
    email = fields.String(required=True)
    recipient = fields.String(required=True)
    phone = fields.String(allow_none=True, load_default=None)
    sms_opt_in = fields.Boolean(load_default=False)
    partner_code = fields.String(allow_none=True, load_default=None)
    language = fields.String(load_default="en", validate=validate.OneOf(LANGUAGES))
    notice = fields.String(allow_none=True, load_default=None)
    cancel_reason = fields.String(allow_none=True, load_default=None)
    version = fields.Integer(required=True)
    expires_at = fields.AwareDateTime(required=True)
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)
    completed_at = fields.AwareDateTime(allow_none=True, load_default=None)
    actions = fields.List(fields.String(), load_default=list)
    # Set when a payout resolved `failed` went out after all (payments' payout_succeeded_after_resolve): the money
    # is with the customer, the order must not be paid again (docs/payments.md, "Resolving a payout by hand").
    payout_late_success_at = fields.AwareDateTime(allow_none=True, load_default=None)
    payout_late_success_provider_id = fields.String(allow_none=True, load_default=None)
    # Created on a floating direction: the direction's rate when the payment arrives decides amount_out (the
    # customer was told); otherwise the order keeps its own rate for its payment window (docs/rates.md).
    floating = fields.Boolean(load_default=False)
    # Only in the pages of orders' export_orders RPC (events carry them as from_status / action).
    previous_status = fields.String(allow_none=True)
    last_action = fields.String(allow_none=True)

    @post_dump
    def _complete(self, data, **kwargs):
        # A dump leaves out what the source lacks; a snapshot without a required field is a bug at the producer.
        missing = [name for name, field in self.dump_fields.items() if field.required and name not in data]
        if missing:
            raise ValueError("order snapshot without %s" % ", ".join(missing))
        return data


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
    action = fields.String(required=True)
    actor = fields.Dict(allow_none=True, load_default=None)
    note = fields.String(allow_none=True, load_default=None)


class OrderEventSchema(Schema):
    """Either order event, for a consumer that treats both alike (payments keeps its copy of the order)."""
    class Meta:
        unknown = EXCLUDE

    order = fields.Nested(OrderSnapshotSchema, required=True)
    to_status = fields.String(load_default=None, allow_none=True)
    action = fields.String(load_default=None, allow_none=True)


class PartnerCreditedSchema(Schema):
    """`partner_credited` (services/orders/store/partners.py): a partner's commission was credited."""
    class Meta:
        unknown = EXCLUDE

    partner_account_id = fields.Raw(required=True)
    order_id = fields.Integer(required=True)
    amount = Money(required=True)
    currency = fields.String(required=True)
    language = fields.String(load_default="en", validate=validate.OneOf(LANGUAGES))
    balance = Money(allow_none=True, load_default=None)


class AccountLetterSchema(Schema):
    """`account_signup_requested` (confirm_url) and `password_reset_requested` (reset_url): a letter with a
    one-time link to the account's e-mail (docs/partners.md)."""
    class Meta:
        unknown = EXCLUDE

    account_id = fields.Integer(required=True)
    email = fields.Email(required=True)
    language = fields.String(load_default="en", validate=validate.OneOf(LANGUAGES))
    token_id = fields.Integer(required=True)
    confirm_url = fields.Url(require_tld=False, load_default=None)
    reset_url = fields.Url(require_tld=False, load_default=None)
    expires_at = fields.AwareDateTime(required=True)


class AccountNoticeWithdrawalSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.Integer(required=True)
    amount = Money(required=True)
    currency = fields.String(required=True)
    to_account = fields.String(required=True)


class AccountNoticeSchema(Schema):
    """`account_notice`: a security letter to an account's address (docs/partners.md): `notice` password_changed,
    password_reset or withdrawal_requested (with `withdrawal`, and `link` + `expires_at` when its destination is
    new and must be confirmed); `key` names the occurrence (the notifier sends one letter per key)."""
    class Meta:
        unknown = EXCLUDE

    account_id = fields.Integer(required=True)
    email = fields.Email(required=True)
    language = fields.String(load_default="en", validate=validate.OneOf(LANGUAGES))
    notice = fields.String(required=True, validate=validate.OneOf(
        ["password_changed", "password_reset", "withdrawal_requested"]))
    key = fields.String(required=True, validate=validate.Length(min=1, max=200))
    link = fields.Url(require_tld=False, load_default=None, allow_none=True)
    expires_at = fields.AwareDateTime(load_default=None, allow_none=True)
    withdrawal = fields.Nested(AccountNoticeWithdrawalSchema, load_default=None, allow_none=True)


# -- create an order ---------------------------------------------------------------------------------------------
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")   # stricter than marshmallow's: a real domain
PHONE_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
PARTNER_CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")   # what an order's partner_code may look like


def normalise_partner_code(code):
    """Codes are matched without regard to case; None for something that cannot be a code. The gateway keeps
    the code of a partner's link in a cookie; orders credits the partner it names."""
    if not isinstance(code, str):
        return None
    code = code.strip()
    return code.upper() if PARTNER_CODE_RE.match(code) else None


class OrderCreateSchema(Schema):
    """POST /api/v1/orders: the gateway loads the body with it, and orders loads the call with it again (the RPC
    is not the public edge, but it trusts nobody)."""
    class Meta:
        unknown = RAISE

    direction_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=2**31 - 1))
    amount_in = AmountString(required=True, metadata={"example": "100.00"})
    email = fields.Email(required=True, validate=validate.Length(max=254))
    recipient = fields.String(required=True, validate=validate.Length(min=1, max=200),
                              metadata={"description": "the customer's account to be paid"})
    phone = fields.String(allow_none=True, validate=validate.Regexp(PHONE_RE.pattern,
                                                                    error="international format, e.g. +4915112345678"))
    sms_opt_in = fields.Boolean(load_default=False)
    partner_code = fields.String(allow_none=True, validate=validate.Regexp(PARTNER_CODE_RE.pattern))
    language = fields.String(load_default="en", validate=validate.OneOf(list(LANGUAGES)))

    @validates_schema
    def _whole_order(self, data, **kwargs):
        # Runs once every field is valid on its own (marshmallow skips it otherwise).
        if data.get("sms_opt_in") and not data.get("phone"):
            raise ValidationError("needs a phone number", "sms_opt_in")
        fields_at_fault = {}
        if not EMAIL_RE.match(data["email"]):
            fields_at_fault["email"] = ["must be an e-mail address"]
        if not data["recipient"].strip():
            fields_at_fault["recipient"] = ["must be 1 to 200 characters"]
        if fields_at_fault:
            raise ValidationError(fields_at_fault)

    @post_load
    def _trim(self, data, **kwargs):
        data["recipient"] = data["recipient"].strip()
        return data


class OrderCreateCallSchema(OrderCreateSchema):
    """orders.create_order(data): the body plus the client's Idempotency-Key and whose it is (the caller's scope:
    account, bearer token or session), which the gateway adds. docs/architecture.md, "Idempotency keys"."""
    request_id = fields.String(allow_none=True, load_default=None)
    request_scope = fields.String(allow_none=True, validate=validate.Length(min=1, max=200))
