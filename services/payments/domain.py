"""Pure rules of the payments service: finding the order reference in a payment, deciding what a payment does
to an order (exact, partial, over, late, or unmatched), the payout limit and the payout key. No I/O here.
"""
import collections
import datetime
import re
from decimal import Decimal, localcontext

from libs import money
from libs.contracts import stuck

# Orders' references: "EX" + 10 characters of an alphabet without 0/O and 1/I (services/orders/domain/orders.py).
REFERENCE_RE = re.compile(r"EX[A-HJ-NP-Z2-9]{10}")
_SEPARATORS = re.compile(r"[\s\-_.:/#]+")

# Statuses of an order in which it can take a payment (the orders state machine's `pay` action).
PAYABLE_STATUSES = ("new", "expired")
AUTO_TYPES = ("auto", "semi_auto")
# A manual exchange is paid while it is open: the customer may press "I paid" (`claim`) before the money
# arrives, and the operator may already be processing it (libs/contracts/orders.py, the action table).
MANUAL_PAYABLE_STATUSES = ("new", "payment_claimed", "processing")

Decision = collections.namedtuple("Decision", "status flag reason_code reason on_time")


def find_reference(text):
    """The one order reference in a payment's free text, or None.

    People type references into bank forms: case, spaces and dashes vary ("ex-abcd efgh 23"). Two different
    references in one text are ambiguous: None, and an operator decides.
    """
    if not text:
        return None
    upper = text.upper()
    # First word by word ("EX-ABCD-EFGH-23"), then the whole text run together ("EXAB CDEF GH23").
    for candidates in ([_SEPARATORS.sub("", word) for word in upper.split()], [_SEPARATORS.sub("", upper)]):
        found = {ref for c in candidates for ref in REFERENCE_RE.findall(c)}
        if len(found) == 1:
            return found.pop()
        if len(found) > 1:
            return None
    return None


def is_late(occurred_at, expires_at, grace_seconds=0):
    """The payment system's clock decides "late": a payment is on time when the payment system says it happened
    before the order's expiry (plus a configured grace for clock skew), whatever our processes saw, and when."""
    return occurred_at > expires_at + datetime.timedelta(seconds=grace_seconds)


def amount_flag(amount, expected):
    if amount < expected:
        return "partial"
    if amount > expected:
        return "over"
    return None


def decide(payment, order, order_has_payment=False, grace_seconds=0, operator=False):
    """What an incoming payment does.

    payment: dict with system, account, amount, currency, occurred_at; order: the local copy (dict) or None.
    order_has_payment: another payment was already matched to this order.
    operator: an operator assigns the payment by hand (the account need not be the order's pay_to account).

    Returns Decision(status, flag, reason_code, reason, on_time): status 'matched' (announce to orders with
    `flag`), 'manual' (a manual order's payment, noted for the operator) or 'unmatched'. A manual order's
    payment passes the same checks (currency, account, an open order, the first payment) before it is noted;
    what does not fit is unmatched, as for the other exchange types.
    """
    if order is None:
        return Decision("unmatched", None, "unknown_reference", "no order has this reference", None)
    manual = order["exchange_type"] not in AUTO_TYPES
    if manual and operator:
        return Decision("unmatched", None, "manual_order",
                        "order %s is a manual exchange: process it by hand" % order["id"], None)
    if payment["currency"] != order["currency_in"]:
        return Decision("unmatched", None, "wrong_currency", "paid %s, the order expects %s" % (
            payment["currency"], order["currency_in"]), None)
    if not operator and (payment["system"], payment["account"]) != (order["pay_system"], order["pay_account"]):
        return Decision("unmatched", None, "wrong_account", "paid to %s, the order's account is %s" % (
            payment["account"], order["pay_account"]), None)
    if order["status"] not in (MANUAL_PAYABLE_STATUSES if manual else PAYABLE_STATUSES):
        return Decision("unmatched", None, "order_%s" % order["status"],
                        "order %s is %s and cannot take a payment" % (order["id"], order["status"]), None)
    if order_has_payment:
        return Decision("unmatched", None, "already_paid",
                        "order %s already has a payment" % order["id"], None)
    late = is_late(payment["occurred_at"], order["expires_at"], grace_seconds)
    if manual:
        return Decision("manual", None, "manual_order", "manual exchange: the operator checks the payment", not late)
    flag = "late" if late else amount_flag(payment["amount"], order["amount_in"])
    return Decision("matched", flag, None, None, not late)


def payout_limit(received, rate_in, rate_out, fee_percent):
    """The most the order's rate gives for what was received, fee taken (money out never exceeds money in):
    received * rate_out / rate_in, less fee_percent. Not rounded: the payout must not exceed it."""
    with localcontext() as ctx:
        ctx.prec = 60
        gross = received * rate_out / rate_in
        return gross - gross * (fee_percent or Decimal(0)) / Decimal(100)


def payout_key(prefix, order_id, attempt):
    """Deterministic idempotency key: the same payout attempt always carries the same key."""
    return "payout-%s-%d-%d" % (prefix, order_id, attempt)


def withdrawal_payout_key(prefix, withdrawal_id):
    """A partner withdrawal's payout key: one payout per withdrawal, with the installation's prefix as order
    payouts have (withdrawal ids restart after a database reset too)."""
    return "partner-withdrawal-%s-%d" % (prefix, withdrawal_id)


# -- stuck work (docs/architecture.md, "Stuck work") --------------------------------------------------------------
# A payment matched to an order is settled while the order is in one of these. `deleted` counts as settled: an
# operator hid an order they had dealt with (completed ones too), and the copy no longer says from which status.
PAYMENT_SETTLED_ORDER_STATUSES = ("paid", "payout", "payout_error", "completed", "deleted")


def payout_answers(order_version, payout_status, payout_order_version):
    """Whether the order's latest payout attempt answers its current payout request: a live attempt (sending or
    sent) always does; a failed one only if it was made for this version of the order (a retry after
    payout_error is a newer version and needs a new attempt)."""
    if payout_status is None:
        return False
    return payout_status != "failed" or payout_order_version >= order_version


def stuck_payments_work(orders_in_payout, matched_payments, sending_payouts, after_seconds, sending_after_seconds):
    """The stuck items among the candidates the store found (rows with `age_seconds` from the database's clock):

    - orders_in_payout: copies in `payout` {id, version, age_seconds, payout_status, payout_order_version}
      (the latest attempt's, or None) -> `payout_missing` when no attempt answers and it is `after_seconds` old;
    - matched_payments: {id, order_id, order_status, amount, currency, age_seconds} -> `payment_on_unpaid_order`
      when the order is not in a settled status and it is `after_seconds` old;
    - sending_payouts: {id, order_id, age_seconds, sends, checks, error} -> `payout_in_doubt` when it is
      `sending_after_seconds` old (the reconciler's reach and then some: it should have settled it).
    """
    items = []
    for row in orders_in_payout:
        if row["age_seconds"] >= after_seconds and not payout_answers(
                row["version"], row["payout_status"], row["payout_order_version"]):
            items.append(stuck.item("payout_missing", row["id"], row["id"], row["age_seconds"],
                                    "order %s is in payout and no payout was made for it" % row["id"]))
    for row in matched_payments:
        if row["age_seconds"] >= after_seconds and row["order_status"] not in PAYMENT_SETTLED_ORDER_STATUSES:
            items.append(stuck.item(
                "payment_on_unpaid_order", row["id"], row["order_id"], row["age_seconds"],
                "payment %s of %s %s is matched to order %s, which is %s" % (
                    row["id"], money.to_str(row["amount"]), row["currency"], row["order_id"], row["order_status"])))
    for row in sending_payouts:
        if row["age_seconds"] >= sending_after_seconds:
            items.append(stuck.item(
                "payout_in_doubt", row["id"], row["order_id"], row["age_seconds"],
                "payout %s of order %s is still sending after %d calls and %d lookups%s" % (
                    row["id"], row["order_id"], row["sends"], row["checks"],
                    ": %s" % row["error"] if row.get("error") else "")))
    return items


def deposit_to_wire(address_row, deposits, required, network_fee=None):
    """An order's chain deposit as the order page shows it: where to pay, and each transfer seen with its depth
    (docs/chains.md). `network_fee`: what one payout costs in the chain's coin now (None when not known)."""
    return {
        "system": address_row["system"],
        "address": address_row["address"],
        "required_confirmations": required,
        "network_fee_estimate": money.to_str(network_fee) if network_fee is not None else None,
        "deposits": [{
            "txid": d["txid"], "index": d["output_index"], "amount": money.to_str(d["amount"]),
            "currency": d["currency"], "confirmations": max(0, d["confirmations"]) if d["block_height"] else 0,
            "required": d["required"], "status": d["status"], "block_height": d["block_height"],
        } for d in deposits],
    }
