"""Pure rules of the partner programme (docs/partners.md): which commission rule applies, how much it
pays, who may not earn on an order, withdrawal limits, referral codes, the checks of admins' changes. No I/O here.

Money is Decimal; a commission is rounded DOWN to the currency's precision (never more than the rule gives).
"""
import collections
import re
import secrets
from decimal import Decimal, ROUND_DOWN, localcontext

from libs import money
# Shared with the gateway, which keeps the code of a partner's link (libs/contracts/orders.py).
from libs.contracts.orders import normalise_partner_code as normalise_code  # noqa: F401
from services.orders.domain import RuleError

BASES = ("margin", "amount")
WITHDRAWAL_STATUSES = ("requested", "approved", "rejected", "paid", "failed")  # paid/failed: method payout
WITHDRAWAL_METHODS = ("manual", "payout")
HUNDRED = Decimal(100)

# A commission rule: `percent` of `base` ('margin' = the order's fee_amount, 'amount' = what was exchanged).
Rule = collections.namedtuple("Rule", "percent base source")


def applicable_rule(global_rule, partner_rule=None, direction_rule=None):
    """The most specific rule wins: direction, then partner, then global. A rule is taken whole (percent with its
    base): a partner's "1 % of the amount" never combines with a direction's "20 % of the margin"."""
    for rule in (direction_rule, partner_rule, global_rule):
        if rule is not None and rule.percent is not None:
            return rule
    raise ValueError("no commission rule")


def base_amount(order, base):
    """What the percent applies to, in the order's to-currency. `order` has Decimal amount_out and fee_amount.
    margin: the exchanger's fee on the order; amount: the whole amount exchanged (amount_out + fee_amount, i.e.
    amount_in at the direction's rate)."""
    if base == "margin":
        return order["fee_amount"]
    if base == "amount":
        return order["amount_out"] + order["fee_amount"]
    raise ValueError("unknown base %r" % base)


def commission(order, rule, precision):
    """(amount, base_amount) of the commission for `order` under `rule`, rounded down to `precision` places.
    The amount may be 0 (a tiny margin, or a 0 % rule): then nothing is credited."""
    base_value = base_amount(order, rule.base)
    if base_value <= 0 or rule.percent <= 0:
        return Decimal(0), base_value
    with localcontext() as ctx:
        ctx.prec = 60
        amount = (base_value * rule.percent / HUNDRED).quantize(money.quantum(precision), rounding=ROUND_DOWN)
    return amount, base_value


def normalise_email(email):
    return (email or "").strip().lower()


def is_self_referral(partner_account_id, partner_email, order_email, order_account_id=None):
    """No commission on a partner's own orders: the order belongs to the partner's account, or carries the
    partner's e-mail (orders join an account by its confirmed e-mail)."""
    if order_account_id is not None and order_account_id == partner_account_id:
        return True
    return normalise_email(order_email) != "" and normalise_email(order_email) == normalise_email(partner_email)


_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed without mistakes


def new_code(length=8):
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(length))


def parse_percent(value, field="percent"):
    """A percent 0..100 as a decimal string (or int), at most 6 places."""
    try:
        percent = money.parse_amount(value, allow_zero=True)
    except money.AmountError as exc:
        raise RuleError("invalid percent", {field: [str(exc)]})
    if percent > HUNDRED:
        raise RuleError("invalid percent", {field: ["must be at most 100"]})
    if money.fraction_digits(percent) > 6:
        raise RuleError("invalid percent", {field: ["at most 6 decimal places"]})
    return percent


def parse_base(value, field="base"):
    if value not in BASES:
        raise RuleError("invalid base", {field: ["must be one of %s" % ", ".join(BASES)]})
    return value


def check_withdrawal(amount, currency_precision, balance, minimum):
    """A withdrawal request: at least the minimum, within the currency's precision, not above the balance.
    The ledger enforces the balance again under a lock (two requests racing): this is the friendly message."""
    if money.fraction_digits(amount) > currency_precision:
        raise RuleError("too many decimal places", {"amount": ["at most %d decimal places" % currency_precision]})
    if amount < minimum:
        raise RuleError("amount below the minimum", {"amount": ["must be at least %s" % money.to_str(minimum)]})
    if amount > balance:
        raise RuleError("amount above the balance", {"amount": ["your balance is %s" % money.to_str(balance)]})


# requested -> approved | rejected; nothing leaves approved or rejected.
WITHDRAWAL_TRANSITIONS = {"approve": ("requested", "approved"), "reject": ("requested", "rejected")}


# What a late success does to a withdrawal (payments' `payout_succeeded_after_resolve`): `to_status` it settles in
# (None: it keeps its status), `debit` taken back out of the balance, `shortfall` the balance could not cover.
LatePaid = collections.namedtuple("LatePaid", "to_status debit shortfall")


def late_paid(status, method, amount, returned, balance):
    """The money of withdrawal `amount` went out after its payout was resolved failed.

    - still `approved` for a payout (the failed answer has not arrived, or never will): it settles `paid`, as on
      withdrawal_payout_sent; its amount is still held, so the balance does not move (and a failed answer that
      comes later finds it settled and returns nothing);
    - `failed` with the amount given back to the balance (`returned`): that amount is taken out again, as much as
      the balance has now (the partner may have asked for it meanwhile); what is missing is the `shortfall`;
    - anything else: the money never came back, nothing moves."""
    zero = Decimal(0)
    if status == "approved" and method == "payout":
        return LatePaid("paid", zero, zero)
    if status == "failed" and returned:
        debit = min(amount, max(balance, zero))
        return LatePaid(None, debit, amount - debit)
    return LatePaid(None, zero, zero)


def check_decision(action, method=None, reason=None):
    if action not in WITHDRAWAL_TRANSITIONS:
        raise RuleError("unknown action", {"action": ["approve or reject"]})
    if action == "approve" and method not in WITHDRAWAL_METHODS:
        raise RuleError("how was it paid?", {"method": ["must be one of %s" % ", ".join(WITHDRAWAL_METHODS)]})
    if action == "reject" and not (reason or "").strip():
        raise RuleError("a rejection needs a reason", {"reason": ["required"]})
    return WITHDRAWAL_TRANSITIONS[action]


_CURRENCY_CODE = re.compile(r"^[A-Z0-9]{2,16}$")


def withdrawal_request(amount, currency, to_account):
    """(amount as Decimal, to_account stripped) of a partner's request, or RuleError naming every bad field. The
    balance and the minimum are checked later, against the ledger (check_withdrawal)."""
    fields = {}
    try:
        amount = money.parse_amount(amount)
    except money.AmountError as exc:
        fields["amount"] = [str(exc)]
    if not isinstance(currency, str) or not _CURRENCY_CODE.match(currency):
        fields["currency"] = ["a currency code"]
    to_account = to_account.strip() if isinstance(to_account, str) else ""
    if not 1 <= len(to_account) <= 200:
        fields["to_account"] = ["1 to 200 characters: your account to be paid"]
    if fields:
        raise RuleError("invalid withdrawal", fields)
    return amount, to_account


def withdrawal_request_values(amount, currency, to_account):
    """The canonical withdrawal request a request id is bound to ("2.00" and "2" are one amount)."""
    return {"amount": money.to_str(amount), "currency": currency, "to_account": to_account}


def direction_rule(rule):
    """(percent, base) of a direction's own commission rule ({percent, base}; the base defaults to the margin)."""
    return parse_percent((rule or {}).get("percent")), parse_base((rule or {}).get("base") or "margin")


def partner_changes(changes):
    """The columns an admin changes on a partner: its own rule (percent + base; both null = use the global one)
    and whether it earns at all. RuleError naming every bad field."""
    changes = dict(changes or {})
    fields, values = {}, {}
    for key in sorted(set(changes) - {"percent", "base", "active"}):
        fields[key] = ["cannot be changed here"]
    if "percent" in changes or "base" in changes:
        percent, base = changes.get("percent"), changes.get("base")
        if percent is None and base is None:
            values.update(percent=None, base=None)
        else:
            try:
                values["percent"] = parse_percent(percent)
                values["base"] = parse_base(base or "margin")
            except RuleError as exc:
                fields.update(exc.fields)
    if "active" in changes:
        if not isinstance(changes["active"], bool):
            fields["active"] = ["true or false"]
        else:
            values["active"] = changes["active"]
    if fields:
        raise RuleError("invalid partner", fields)
    return values


def commission_changes(changes):
    """The columns an admin changes in the global commission settings: percent, base, min_withdrawal."""
    changes = dict(changes or {})
    fields, values = {}, {}
    for key in sorted(set(changes) - {"percent", "base", "min_withdrawal"}):
        fields[key] = ["cannot be changed here"]
    try:
        if "percent" in changes:
            values["percent"] = parse_percent(changes["percent"])
        if "base" in changes:
            values["base"] = parse_base(changes["base"])
    except RuleError as exc:
        fields.update(exc.fields)
    if "min_withdrawal" in changes:
        try:
            values["min_withdrawal"] = money.parse_amount(changes["min_withdrawal"])
        except money.AmountError as exc:
            fields["min_withdrawal"] = [str(exc)]
    if fields:
        raise RuleError("invalid commission settings", fields)
    return values
