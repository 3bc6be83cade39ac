"""The order state machine and the pure rules of an exchange. No I/O here.

The action table is in libs/contracts/orders.py (the gateway shows the customer's buttons from it). The database
enforces the same table (migrations: orders.allowed_transitions + trigger); a unit test checks that both agree.
"""
import secrets

from libs import money
# The enums and the action table are shared with the gateway (libs/contracts/orders.py).
from libs.contracts.orders import (ACTIONS, EXCHANGE_TYPES, FINAL_STATUSES, PAYMENT_FLAGS, STATUSES,  # noqa: F401
                                   Action, allowed_transitions, available_actions)
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
