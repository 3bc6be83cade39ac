"""The partner program's pure rules (services/orders/domain/partners.py): which rule applies, what it pays, who
earns nothing, withdrawal limits. Plus the service wiring checked with nameko's worker_factory."""
import os
import re
from decimal import Decimal as D

import pytest
from nameko.testing.services import worker_factory

from libs import errors
from services.orders.domain import accounts, partners as rules
from services.orders.service import OrdersService

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# 100 EUR -> USDT at 1.07 with a 0.5 % fee: gross 107, margin (fee_amount) 0.535, the customer gets 106.465
ORDER = {"amount_out": D("106.465"), "fee_amount": D("0.535")}
GLOBAL = rules.Rule(D("10"), "margin", "global")
PARTNER = rules.Rule(D("1"), "amount", "partner")
DIRECTION = rules.Rule(D("20"), "margin", "direction")


# -- which rule -------------------------------------------------------------------------------------------------
def test_the_most_specific_rule_wins_direction_then_partner_then_global():
    assert rules.applicable_rule(GLOBAL) is GLOBAL
    assert rules.applicable_rule(GLOBAL, PARTNER) is PARTNER
    assert rules.applicable_rule(GLOBAL, PARTNER, DIRECTION) is DIRECTION
    assert rules.applicable_rule(GLOBAL, None, DIRECTION) is DIRECTION


def test_a_rule_is_taken_whole_never_mixing_one_percent_with_another_base():
    # the partner's "1 % of the amount" and the direction's "20 % of the margin" do not make "20 % of the amount"
    rule = rules.applicable_rule(GLOBAL, PARTNER, DIRECTION)
    assert (rule.percent, rule.base) == (D("20"), "margin")


def test_without_any_rule_it_refuses():
    with pytest.raises(ValueError):
        rules.applicable_rule(None)


# -- what it pays -------------------------------------------------------------------------------------------------
def test_percent_of_the_margin_is_the_default_and_rounds_down_to_the_currency():
    amount, base = rules.commission(ORDER, GLOBAL, 6)
    assert (amount, base) == (D("0.0535"), D("0.535"))
    amount, _ = rules.commission(ORDER, rules.Rule(D("33.333333"), "margin", "x"), 2)
    assert amount == D("0.17")            # 0.178333... rounded DOWN, never up
    amount, _ = rules.commission(ORDER, rules.Rule(D("33.333333"), "margin", "x"), 6)
    assert amount == D("0.178333")


def test_percent_of_the_amount_is_of_the_whole_amount_exchanged_in_the_to_currency():
    amount, base = rules.commission(ORDER, PARTNER, 6)
    assert base == D("107") and amount == D("1.07")


def test_nothing_for_a_zero_rule_or_a_zero_margin():
    assert rules.commission(ORDER, rules.Rule(D("0"), "margin", "x"), 6)[0] == 0
    assert rules.commission({"amount_out": D("92"), "fee_amount": D("0")}, GLOBAL, 2)[0] == 0
    # a commission smaller than the currency's smallest unit is nothing, not a rounded-up cent
    assert rules.commission({"amount_out": D("10"), "fee_amount": D("0.01")}, GLOBAL, 2)[0] == 0


def test_commission_is_exact_decimal_arithmetic():
    order = {"amount_out": D("0.000000000000000001"), "fee_amount": D("123456789012345678.123456789012345678")}
    amount, _ = rules.commission(order, rules.Rule(D("12.345678"), "margin", "x"), 18)
    assert amount == D("15241577640603577.668038417640603577")   # 38 significant digits, none lost
    assert isinstance(amount, D)


def test_an_unknown_base_is_an_error():
    with pytest.raises(ValueError):
        rules.base_amount(ORDER, "profit")


# -- who earns nothing ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("order_email,order_account,expected", [
    ("p@example.com", None, True),           # the partner's own e-mail
    ("  P@Example.COM ", None, True),        # whatever its case and spaces
    ("c@example.com", 7, True),              # the partner's own account
    ("c@example.com", 8, False),             # someone else's
    ("c@example.com", None, False),
    ("", None, False),
])
def test_no_commission_on_a_partners_own_orders(order_email, order_account, expected):
    assert rules.is_self_referral(7, "p@example.com", order_email, order_account) is expected


# -- codes ----------------------------------------------------------------------------------------------------------
def test_codes_are_matched_without_case_and_refused_when_malformed():
    assert rules.normalise_code(" abCD12 ") == "ABCD12"
    for bad in (None, "", "a b", "x" * 33, "<script>", 12):
        assert rules.normalise_code(bad) is None
    code = rules.new_code()
    assert re.match(r"^[A-HJ-NP-Z2-9]{8}$", code) and rules.normalise_code(code) == code


# -- percents, withdrawals, decisions ---------------------------------------------------------------------------------
def test_percent_parsing_bounds():
    assert rules.parse_percent("0") == 0 and rules.parse_percent("100") == 100 and rules.parse_percent(5) == 5
    for bad in ("100.000001", "-1", "abc", "1.1234567", 1.5, None):
        with pytest.raises(rules.RuleError) as info:
            rules.parse_percent(bad)
        assert "percent" in info.value.fields


def test_withdrawal_needs_the_minimum_the_precision_and_the_balance():
    rules.check_withdrawal(D("10"), 2, D("10"), D("10"))       # exactly the minimum, exactly the balance
    for amount, precision, balance, minimum in [(D("9.99"), 2, D("100"), D("10")),
                                                (D("10.001"), 2, D("100"), D("10")),
                                                (D("10.01"), 2, D("10"), D("10"))]:
        with pytest.raises(rules.RuleError) as info:
            rules.check_withdrawal(amount, precision, balance, minimum)
        assert "amount" in info.value.fields


def test_decisions_approve_needs_a_method_reject_needs_a_reason():
    assert rules.check_decision("approve", "manual") == ("requested", "approved")
    assert rules.check_decision("approve", "payout") == ("requested", "approved")
    assert rules.check_decision("reject", reason="wrong account") == ("requested", "rejected")
    for args in (("approve", None), ("approve", "cash"), ("reject", None, "  "), ("cancel", None)):
        with pytest.raises(rules.RuleError):
            rules.check_decision(*args)


def test_passwords():
    accounts.check_password("correct horse battery")
    for bad in ("short", "a" * 12, " " * 12, "x" * 257, None):
        with pytest.raises(rules.RuleError):
            accounts.check_password(bad)


# -- the database says the same ---------------------------------------------------------------------------------------
def test_the_migration_knows_the_same_bases_statuses_and_methods():
    sql = open(os.path.join(ROOT, "services/orders/migrations/0002_accounts_partners.sql")).read()
    assert "base IN ('margin', 'amount')" in sql
    assert "status IN ('requested', 'approved', 'rejected')" in sql
    assert "method IN ('manual', 'payout')" in sql
    assert "CHECK (balance_after >= 0)" in sql and "order_id      bigint UNIQUE" in sql


# -- the service routes to its stores --------------------------------------------------------------------------------
def test_operator_commands_need_an_actor_and_are_passed_on():
    service = worker_factory(OrdersService)
    with pytest.raises(errors.Forbidden):
        service.update_partner(1, {"active": False}, {})
    service.decide_withdrawal(5, "reject", {"name": "op", "role": "operator"}, reason="no")
    args, kwargs = service.partners.decide_withdrawal.call_args
    assert args[:2] == (5, "reject") and args[2]["kind"] == "staff" and args[5] == "no"
    service.partners.become_partner.return_value = ({"code": "ABCD2345"}, True)
    assert service.become_partner(3) == {"partner": {"code": "ABCD2345"}, "created": True}
