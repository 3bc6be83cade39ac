"""The order state machine and the pure rules of an exchange (blueprint §4). No I/O here.

The database enforces the same table (migrations: orders.allowed_transitions + trigger); a unit test checks
that both agree.
"""
import collections
import secrets

from libs import money

EXCHANGE_TYPES = ("auto", "semi_auto", "manual")
PAYMENT_FLAGS = ("partial", "over", "late")

STATUSES = ("new", "payment_claimed", "processing", "paid", "payout", "payout_error", "completed", "canceled",
            "expired", "deleted")
FINAL_STATUSES = ("completed", "canceled", "deleted")

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
    """Actions that may be taken now: drives the admin pages' buttons."""
    return [a.name for a in ACTIONS.values()
            if status in a.from_statuses and exchange_type in a.exchange_types and actor_kind in a.actor_kinds]


class RuleError(Exception):
    def __init__(self, message, fields=None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


def check_action(action_name, exchange_type, actor_kind):
    action = ACTIONS[action_name]
    if exchange_type not in action.exchange_types:
        raise RuleError("'%s' is not possible for %s exchanges" % (action_name, exchange_type))
    if actor_kind not in action.actor_kinds:
        raise RuleError("'%s' cannot be done by %s" % (action_name, actor_kind))
    return action


def quote(direction, currencies, amount_in, sms_fee_percent=0):
    """Validate an amount against a direction and compute what the customer gets.

    direction: dict with rate_in, rate_out, fee, min_amount, max_amount, currency_in, currency_out, active;
    currencies: {code: {precision, reserve}}; sms_fee_percent: the customer SMS fee when the customer opted in
    (added to the direction's fee). Raises RuleError with the fields at fault.
    Returns (amount_out, fee_amount), fee_amount being everything withheld (SMS fee included).
    """
    cin = currencies[direction["currency_in"]]
    cout = currencies[direction["currency_out"]]
    if money.fraction_digits(amount_in) > cin["precision"]:
        raise RuleError("too many decimal places", {
            "amount_in": ["%s allows at most %d decimal places" % (direction["currency_in"], cin["precision"])]})
    if amount_in < direction["min_amount"]:
        raise RuleError("amount below the minimum", {
            "amount_in": ["must be at least %s %s" % (money.to_str(direction["min_amount"]),
                                                       direction["currency_in"])]})
    if amount_in > direction["max_amount"]:
        raise RuleError("amount above the maximum", {
            "amount_in": ["must be at most %s %s" % (money.to_str(direction["max_amount"]),
                                                      direction["currency_in"])]})
    amount_out, fee_amount = money.convert(amount_in, direction["rate_in"], direction["rate_out"],
                                           direction["fee"] + sms_fee_percent, cout["precision"])
    if amount_out <= 0:
        raise RuleError("amount too small to exchange", {"amount_in": ["gives nothing after fees"]})
    if amount_out > cout["reserve"]:
        raise RuleError("not enough reserve", {
            "amount_in": ["we can pay out at most %s %s now" % (money.to_str(cout["reserve"]),
                                                                 direction["currency_out"])]})
    return amount_out, fee_amount


def sms_fee_amount(direction, amount_in, sms_fee_percent, precision_out):
    """The SMS part of what is withheld, in the to-currency, rounded down (shown to the customer and audited)."""
    gross, _ = money.convert(amount_in, direction["rate_in"], direction["rate_out"], 0, 18)
    return money.round_down(gross * sms_fee_percent / 100, precision_out)


def new_token():
    """Unguessable order token for the customer's URL (192 bits)."""
    return secrets.token_urlsafe(24)


_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: people type it into bank forms


def new_reference():
    return "EX" + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(10))
