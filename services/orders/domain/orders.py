"""The order state machine and the pure rules of an exchange. No I/O here.

The action table is in libs/contracts/orders.py (the gateway shows the customer's buttons from it). The database
enforces the same table (migrations: orders.allowed_transitions + trigger); a unit test checks that both agree.
"""
import secrets
from decimal import Decimal, localcontext

from libs import money
# The enums and the action table are shared with the gateway (libs/contracts/orders.py).
from libs.contracts.orders import (ACTIONS, EXCHANGE_TYPES, FINAL_STATUSES, PAYMENT_FLAGS, STATUSES,  # noqa: F401
                                   Action, allowed_transitions, available_actions, normalise_partner_code)
from services.orders.domain import RuleError


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
    currencies: {code: {precision, reserve}}, `reserve` being what is available of the to-currency's reserve now
    (reserve - held; None for the from-currency); sms_fee_percent: the customer SMS fee when the customer opted in
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
    check_reserve(amount_out, cout["reserve"], direction["currency_out"])
    return amount_out, fee_amount


def check_reserve(amount_out, available, currency_out):
    """RuleError unless `amount_out` fits in what is available of the reserve (reserve - held). The store holds
    the amount with the same comparison in SQL, so concurrent orders cannot overbook (this is the message)."""
    if amount_out > available:
        raise RuleError("not enough reserve", {
            "amount_in": ["we can pay out at most %s %s now" % (money.to_str(max(available, Decimal(0))),
                                                                 currency_out)]})


# A payout an operator resolved `failed` that the provider then reported sent (payments'
# `payout_succeeded_after_resolve`): the money went out, so the order is flagged and no payout may follow; an
# operator finalizes it (docs/payments.md, "Resolving a payout by hand").
PAID_OUT_LATE = "the payout of this order went out after it was resolved failed: finalize it instead"


def check_not_paid_out_late(action_name, payout_late_success_at):
    """RuleError for a payout of an order whose earlier payout went out after it was resolved failed."""
    if action_name == "payout" and payout_late_success_at is not None:
        raise RuleError(PAID_OUT_LATE, {"payout": [PAID_OUT_LATE]})


def order_actions(status, exchange_type, payout_late_success_at=None):
    """The staff actions the admin page offers: the state machine's, without `payout` once the order is flagged."""
    actions = available_actions(status, exchange_type)
    if payout_late_success_at is not None:
        actions = [a for a in actions if a != "payout"]
    return actions


def late_success_note(provider_id, amount, currency, payout_id):
    """The status-history note of the flag (the status itself does not move)."""
    return ("payout %s of %s %s went out after it was resolved failed (provider transfer %s): do not pay it "
            "again; finalize it" % (payout_id, money.to_str(amount), currency, provider_id or "unknown"))


# Statuses in which an order holds its amount out of the to-currency's reserve: from its creation until it is paid
# out or can no longer be. payout_error keeps the hold: the customer is still owed the money, and an operator
# retries the payout, finalizes or cancels (docs/architecture.md, "Reserves").
HOLDING_STATUSES = frozenset(("new", "payment_claimed", "processing", "paid", "payout", "payout_error"))


def reserve_hold_after(to_status, amount_out, held):
    """What an order holds of the reserve once it is in `to_status`, given what it holds now (`held`): released
    (0) when it leaves the holding statuses (canceled, expired, deleted, completed: then the payout account's
    balance itself drops); an expired order paid late holds again, whatever is available, because the customer's
    money has arrived and the payout is owed."""
    if to_status not in HOLDING_STATUSES:
        return Decimal(0)
    return held if held > 0 else amount_out


# A direction the rate engine froze takes no orders (docs/rates.md, "Guards").
FROZEN_MESSAGE = ("this direction is not taking orders right now: its rate could not be confirmed from fresh "
                  "market data. Please try again later")


def floating_requote(order, direction):
    """(amount_out, note) of a floating order paid now at the direction's current rate, or None when nothing
    changes (same rate, or the direction is frozen: then the order keeps its own rate). amount_out is the order's
    scaled by the new rate over its own, so the direction's fee and the SMS fee (percentages) stay the same share;
    rounded down to the to-currency's precision."""
    if direction["rate_frozen"]:
        return None
    if direction["rate_in"] == order["rate_in"] and direction["rate_out"] == order["rate_out"]:
        return None
    with localcontext() as ctx:
        ctx.prec = 60
        scaled = order["amount_out"] * (direction["rate_out"] * order["rate_in"]) / (
            direction["rate_in"] * order["rate_out"])
    amount_out = money.round_down(scaled, direction["precision_out"])
    note = "floating rate: paid at %s/%s (created at %s/%s): %s %s instead of %s" % (
        money.to_str(direction["rate_in"]), money.to_str(direction["rate_out"]), money.to_str(order["rate_in"]),
        money.to_str(order["rate_out"]), money.to_str(amount_out), order["currency_out"],
        money.to_str(order["amount_out"]))
    return amount_out, note


# Who used an idempotency key when the caller does not say (the gateway always does): one namespace of their own.
UNSCOPED = "rpc"


def create_request(data):
    """The canonical create-order request an idempotency key is bound to: the loaded call without the key and its
    scope, the amount as a plain decimal ("50.00" and "50" are one request), the partner code as it is matched."""
    values = {k: v for k, v in data.items() if k not in ("request_id", "request_scope")}
    values["amount_in"] = money.to_str(money.parse_amount(values["amount_in"]))
    values["partner_code"] = normalise_partner_code(values.get("partner_code"))
    return values


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
