"""Pure rules of the payments service: reference extraction, the matching decision, the payout limit and key."""
import datetime
from decimal import Decimal as D

import pytest

from services.payments import domain

T0 = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("text, expected", [
    ("EXABCDEFGH23", "EXABCDEFGH23"),
    ("ex-abcd-efgh-23 thanks", "EXABCDEFGH23"),
    ("order EXAB CDEF GH23", "EXABCDEFGH23"),
    ("pay for EXABCDEFGH23.", "EXABCDEFGH23"),
    ("EXABCDEFGH23 and again EXABCDEFGH23", "EXABCDEFGH23"),
    ("EXABCDEFGH23 EXABCDEFGH24", None),          # two orders: ambiguous, an operator decides
    ("EXABCDEFGH2O", None),                        # O is not in the alphabet
    ("NEXT payment", None),
    ("", None),
    (None, None),
])
def test_find_reference(text, expected):
    assert domain.find_reference(text) == expected


def order(**kw):
    base = {"id": 7, "status": "new", "exchange_type": "auto", "currency_in": "USDT", "amount_in": D("100"),
            "pay_system": "sandbox", "pay_account": "EXCH-USDT", "expires_at": T0}
    base.update(kw)
    return base


def payment(**kw):
    base = {"system": "sandbox", "account": "EXCH-USDT", "currency": "USDT", "amount": D("100"),
            "occurred_at": T0 - datetime.timedelta(minutes=1)}
    base.update(kw)
    return base


@pytest.mark.parametrize("amount, flag", [(D("100"), None), (D("100.000"), None), (D("99.99"), "partial"),
                                          (D("100.01"), "over")])
def test_amount_decides_the_flag(amount, flag):
    d = domain.decide(payment(amount=amount), order())
    assert (d.status, d.flag, d.on_time) == ("matched", flag, True)


def test_the_payment_systems_time_decides_late_not_our_clock():
    on_time = domain.decide(payment(occurred_at=T0), order(status="expired"))
    assert (on_time.status, on_time.flag, on_time.on_time) == ("matched", None, True)
    late = domain.decide(payment(occurred_at=T0 + datetime.timedelta(microseconds=1)), order(status="new"))
    assert (late.status, late.flag, late.on_time) == ("matched", "late", False)
    # late wins over the amount: an operator looks at it anyway
    assert domain.decide(payment(occurred_at=T0 + datetime.timedelta(hours=1), amount=D("1")), order()).flag == "late"
    # a configured grace for clock skew
    assert domain.decide(payment(occurred_at=T0 + datetime.timedelta(seconds=5)), order(),
                         grace_seconds=10).flag is None


@pytest.mark.parametrize("kw, pay_kw, code", [
    ({"status": "paid"}, {}, "order_paid"),
    ({"status": "canceled"}, {}, "order_canceled"),
    ({"status": "completed"}, {}, "order_completed"),
    ({}, {"currency": "EUR"}, "wrong_currency"),
    ({}, {"account": "EXCH-OTHER"}, "wrong_account"),
])
def test_orders_that_cannot_take_the_payment_leave_it_unmatched(kw, pay_kw, code):
    d = domain.decide(payment(**pay_kw), order(**kw))
    assert (d.status, d.reason_code) == ("unmatched", code)


def test_unknown_reference_second_payment_and_manual_orders():
    assert domain.decide(payment(), None).reason_code == "unknown_reference"
    assert domain.decide(payment(), order(), order_has_payment=True).reason_code == "already_paid"
    assert domain.decide(payment(), order(exchange_type="manual")).status == "manual"
    assert domain.decide(payment(), order(exchange_type="manual"), operator=True).status == "unmatched"


def test_an_operator_may_assign_a_payment_that_reached_another_account():
    assert domain.decide(payment(account="EXCH-OTHER"), order(), operator=True).status == "matched"


def test_payout_limit_is_what_the_rate_gives_for_what_was_received():
    # 100 USDT at 1 : 0.92, 0.5 % fee -> 91.54 (the order's amount_out, rounded down, never exceeds it)
    assert domain.payout_limit(D("100"), D("1"), D("0.92"), D("0.5")) == D("91.54")
    assert domain.payout_limit(D("50"), D("1"), D("0.92"), D("0.5")) == D("45.77")
    assert domain.payout_limit(D("1000"), D("100"), D("1"), D("0")) == D("10")


def test_payout_key_is_deterministic_per_attempt():
    assert domain.payout_key("ab12", 42, 1) == "payout-ab12-42-1"
    assert domain.payout_key("ab12", 42, 1) == domain.payout_key("ab12", 42, 1)
    assert domain.payout_key("ab12", 42, 2) != domain.payout_key("ab12", 42, 1)


@pytest.mark.parametrize("kw, pay_kw, has_payment, code", [
    ({}, {"currency": "EUR"}, False, "wrong_currency"),
    ({}, {"account": "EXCH-OTHER"}, False, "wrong_account"),
    ({"status": "completed"}, {}, False, "order_completed"),
    ({"status": "canceled"}, {}, False, "order_canceled"),
    ({"status": "deleted"}, {}, False, "order_deleted"),
    ({}, {}, True, "already_paid"),
])
def test_payment_to_manual_order_gets_the_same_checks(kw, pay_kw, has_payment, code):
    """A manual order's payment is noted for the operator only when it fits the order: another currency,
    another account, a closed order or a second payment goes to the unmatched list with its reason."""
    d = domain.decide(payment(**pay_kw), order(exchange_type="manual", **kw), order_has_payment=has_payment)
    assert (d.status, d.reason_code) == ("unmatched", code)


@pytest.mark.parametrize("status", ["new", "payment_claimed", "processing"])
def test_fitting_payment_to_manual_order_is_still_noted_for_the_operator(status):
    """The customer may press "I paid" before the money arrives, or the operator may already be processing."""
    d = domain.decide(payment(), order(exchange_type="manual", status=status))
    assert (d.status, d.flag) == ("manual", None)


def test_payout_keys_carry_the_installation_prefix():
    assert domain.payout_key("a1b2c3", 42, 2) == "payout-a1b2c3-42-2"
    assert domain.withdrawal_payout_key("a1b2c3", 42) == "partner-withdrawal-a1b2c3-42"
