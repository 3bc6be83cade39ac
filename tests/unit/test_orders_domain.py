import os
import re
from decimal import Decimal as D

import pytest

from services.orders.domain import orders as domain

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DIRECTION = {"currency_in": "USDT", "currency_out": "EUR", "rate_in": D("1"), "rate_out": D("0.92"),
             "fee": D("0.5"), "min_amount": D("10"), "max_amount": D("5000")}
CURRENCIES = {"USDT": {"precision": 6, "reserve": None}, "EUR": {"precision": 2, "reserve": D("1000")}}


def test_the_database_trigger_allows_exactly_the_domain_transitions():
    sql = open(os.path.join(ROOT, "services/orders/migrations/0001_initial.py")).read()
    block = sql.split("INSERT INTO allowed_transitions")[1].split(";")[0]
    pairs = sorted(re.findall(r"\('(\w+)', '(\w+)'\)", block))
    assert pairs == domain.allowed_transitions()


def test_every_transition_of_the_state_machine_is_there():
    allowed = set(domain.allowed_transitions())
    for pair in [("new", "paid"), ("new", "payment_claimed"), ("new", "expired"), ("new", "canceled"),
                 ("expired", "paid"), ("payment_claimed", "processing"), ("payment_claimed", "completed"),
                 ("processing", "completed"), ("payment_claimed", "canceled"), ("processing", "canceled"),
                 ("paid", "payout"), ("paid", "completed"), ("paid", "canceled"), ("payout", "completed"),
                 ("payout", "payout_error"), ("payout_error", "payout"), ("payout_error", "completed"),
                 ("payout_error", "canceled")]:
        assert pair in allowed
    # any status but payout (and deleted itself) can be deleted
    assert {f for f, t in allowed if t == "deleted"} == set(domain.STATUSES) - {"payout", "deleted"}
    # nothing leaves a final state except to deleted
    for final in domain.FINAL_STATUSES:
        assert all(t == "deleted" for f, t in allowed if f == final)


def test_available_actions_follow_status_and_type():
    assert domain.available_actions("payment_claimed", "manual") == ["process", "finalize", "cancel", "delete"]
    assert domain.available_actions("paid", "semi_auto") == ["finalize", "cancel", "payout", "delete"]
    assert domain.available_actions("payout", "auto") == []
    assert "payout" not in domain.available_actions("paid", "manual")


def test_claim_is_for_manual_customers_only():
    domain.check_action("claim", "manual", "customer")
    with pytest.raises(domain.RuleError):
        domain.check_action("claim", "auto", "customer")
    with pytest.raises(domain.RuleError):
        domain.check_action("finalize", "manual", "customer")


@pytest.mark.parametrize("amount, field_message", [
    (D("9.99"), "at least 10"), (D("5000.000001"), "at most 5000"), (D("10.0000001"), "decimal places"),
    (D("2000"), "at most 1000 EUR"),   # 1835.6 EUR needed, reserve 1000
])
def test_quote_rejects_with_the_field_at_fault(amount, field_message):
    with pytest.raises(domain.RuleError) as exc:
        domain.quote(DIRECTION, CURRENCIES, amount)
    assert field_message in exc.value.fields["amount_in"][0]


def test_quote_boundaries_are_inclusive():
    assert domain.quote(DIRECTION, CURRENCIES, D("10"))[0] == D("9.15")
    big = dict(CURRENCIES, EUR={"precision": 2, "reserve": D("100000")})
    assert domain.quote(DIRECTION, big, D("5000"))[0] == D("4577")


def test_tokens_and_references_are_unguessable_and_distinct():
    tokens = {domain.new_token() for _ in range(1000)}
    refs = {domain.new_reference() for _ in range(1000)}
    assert len(tokens) == 1000 and len(refs) == 1000
    assert all(len(t) >= 32 for t in tokens)
    assert all(re.match(r"^EX[A-HJ-NP-Z2-9]{10}$", r) for r in refs)


def test_sms_fee_is_part_of_what_is_withheld():
    big = dict(CURRENCIES, EUR={"precision": 2, "reserve": D("100000")})
    out, withheld = domain.quote(DIRECTION, big, D("100"), sms_fee_percent=D("1"))
    assert out == D("90.62")                                   # 92 - 0.5 % - 1 %
    assert domain.sms_fee_amount(DIRECTION, D("100"), D("1"), 2) == D("0.92")
    assert out + withheld == D("92")
