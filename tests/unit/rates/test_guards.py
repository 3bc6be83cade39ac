"""Every guard of a direction's rate (services/rates/domain/guards.py) and the rounding of the rate."""
from decimal import Decimal

from services.rates.domain import formula, guards


def judge(expression, values, previous=None, quote="out_per_in", jump="10", spread="5", stale=None):
    return guards.judge(formula.parse(expression), {k: Decimal(v) for k, v in values.items()},
                        None if previous is None else Decimal(previous), quote, 2, 2, Decimal(jump),
                        Decimal(spread), stale)


def test_passes_and_rounds_down_out_per_in():
    verdict = judge("markup(cbr.USD, 1)", {"cbr.USD": "96.5432"})
    assert not verdict.frozen
    assert verdict.value == Decimal("97.508632")
    assert (verdict.rate_in, verdict.rate_out) == (Decimal(1), Decimal("97.50"))


def test_in_per_out_rounds_rate_in_up():
    verdict = judge("cbr.USD", {"cbr.USD": "96.5432"}, quote="in_per_out")
    assert (verdict.rate_in, verdict.rate_out) == (Decimal("96.55"), Decimal(1))


def test_no_fresh_value_freezes_and_says_which():
    verdict = judge("first(cbr.USD, ecb.USD)", {}, stale={"cbr.USD": "3h old, max age 1h"})
    assert verdict.frozen and verdict.code == "stale"
    assert "cbr.USD (3h old, max age 1h)" in verdict.reason and "ecb.USD" in verdict.reason


def test_fallback_keeps_the_direction_open():
    assert not judge("first(cbr.USD, ecb.USD)", {"ecb.USD": "95"}).frozen


def test_jump_from_previous_freezes():
    verdict = judge("cbr.USD", {"cbr.USD": "111"}, previous="100")
    assert verdict.frozen and verdict.code == "jump"
    assert "11%" in verdict.reason and "limit 10%" in verdict.reason
    assert not judge("cbr.USD", {"cbr.USD": "110"}, previous="100").frozen      # exactly the limit passes
    assert not judge("cbr.USD", {"cbr.USD": "91"}, previous="100").frozen


def test_a_source_off_the_median_of_its_alternatives_freezes():
    values = {"a.X": "100", "b.X": "101", "c.X": "120"}
    verdict = judge("median(a.X, b.X, c.X)", values)
    assert verdict.frozen and verdict.code == "spread" and verdict.reason.startswith("c.X = 120 is")
    assert not judge("median(a.X, b.X, c.X)", dict(values, **{"c.X": "104"})).frozen


def test_spread_is_checked_only_among_fresh_alternatives_of_first():
    # first() stops at the first fresh argument: the others are not evaluated, so not compared
    assert not judge("first(a.X, b.X)", {"a.X": "100", "b.X": "150"}).frozen


def test_a_failed_formula_freezes():
    verdict = judge("1 / (a.X - b.X)", {"a.X": "1", "b.X": "1"})
    assert verdict.frozen and verdict.code == "failed" and "division by zero" in verdict.reason
    assert judge("a.X - b.X", {"a.X": "1", "b.X": "2"}).code == "failed"
    assert judge("a.X", {"a.X": "0.001"}).code == "failed"    # rounds to 0.00


def test_percent_off():
    assert guards.percent_off(Decimal(90), Decimal(100)) == Decimal(10)
