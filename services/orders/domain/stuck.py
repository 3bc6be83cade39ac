"""Pure rules of stuck work in the orders service (docs/architecture.md, "Stuck work"). No I/O here.

A partner withdrawal approved for a payout is handed to payments by `partner_payout_requested` and ends `paid` or
`failed` when payments answers. One still `approved` long after the decision was never answered: the event, the
payout or its answer is stuck somewhere. (Approved with method `manual` is final: the operator paid by hand.)
"""
from libs import money
from libs.contracts import stuck

# What an approved withdrawal waits for, by method: only a payout has an answer to wait for.
AWAITS_ANSWER = ("payout",)


def stuck_withdrawals(rows, after_seconds):
    """`rows`: withdrawals {id, status, method, amount, currency, partner_id, age_seconds} (age since the decision,
    by the database's clock) -> the `withdrawal_not_paid` items."""
    items = []
    for row in rows:
        if row["status"] == "approved" and row["method"] in AWAITS_ANSWER and row["age_seconds"] >= after_seconds:
            items.append(stuck.item(
                "withdrawal_not_paid", row["id"], None, row["age_seconds"],
                "withdrawal %s of %s %s (partner %s) was approved for a payout and is neither paid nor failed" % (
                    row["id"], money.to_str(row["amount"]), row["currency"], row["partner_id"])))
    return items
