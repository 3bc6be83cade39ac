"""The formula language (services/rates/domain/formula.py): precedence, functions, fallback, the checks at save."""
from decimal import Decimal

import pytest

from services.rates.domain import formula as f

SOURCES = {"cbr", "ecb", "binance", "manual"}


def value(expression, values=None):
    return f.evaluate(f.parse(expression), {k: Decimal(v) for k, v in (values or {}).items()}).value


@pytest.mark.parametrize("expression,expected", [
    ("1 + 2 * 3", "7"), ("(1 + 2) * 3", "9"), ("10 - 4 - 3", "3"), ("2 * 3 / 4", "1.5"), ("12 / 4 / 3", "1"),
    ("-2 * 3 + 10", "4"), ("- (2 + 3)", "-5"), ("1 - -1", "2"),
    ("min(3, 1, 2)", "1"), ("max(3, 1, 2)", "3"), ("avg(1, 2, 3, 4)", "2.5"), ("median(5, 1, 3)", "3"),
    ("limit(5, 1, 3)", "3"), ("limit(0.5, 1, 3)", "1"), ("limit(2, 1, 3)", "2"),
    ("markup(100, 1.5)", "101.5"), ("discount(100, 2)", "98"),
])
def test_arithmetic_and_functions(expression, expected):
    assert value(expression) == Decimal(expected)


def test_exact_decimal():
    assert value("0.1 + 0.2") == Decimal("0.3")
    assert value("cbr.USD * 1.000001", {"cbr.USD": "96.5432"}) == Decimal("96.5432965432")


def test_source_values_and_fallback_chain():
    values = {"ecb.USD": "1.08", "binance.EURUSDT.bid": "1.07"}
    assert value("first(cbr.USD, ecb.USD, binance.EURUSDT.bid)", values) == Decimal("1.08")
    assert value("first(cbr.USD, binance.EURUSDT.bid)", values) == Decimal("1.07")
    # a fallback is taken when ANY value of the earlier argument is stale
    assert value("first(ecb.USD * cbr.USD, 2)", values) == Decimal(2)
    with pytest.raises(f.Unavailable) as exc:
        value("first(cbr.USD, manual.x)", values)
    assert exc.value.names == ["cbr.USD", "manual.x"]


def test_a_missing_value_without_fallback_is_unavailable():
    with pytest.raises(f.Unavailable):
        value("ecb.USD + 1")


@pytest.mark.parametrize("expression", ["1 / 0", "cbr.USD / (2 - 2)", "cbr.USD / (1 * 0)", "1/0.0"])
def test_division_by_zero_refused_at_save(expression):
    with pytest.raises(f.FormulaError, match="division by zero"):
        f.check(f.parse(expression), SOURCES)


def test_division_by_zero_of_values_fails_at_evaluation():
    with pytest.raises(f.FormulaError, match="division by zero"):
        value("1 / (cbr.USD - ecb.USD)", {"cbr.USD": "1", "ecb.USD": "1"})


@pytest.mark.parametrize("expression,message", [
    ("", "empty"), ("1 +", "syntax error"), ("cbr.USD cbr.EUR", "syntax error"), ("(1", "syntax error"),
    ("__import__('os')", "syntax error"), ("foo(1)", "unknown function"), ("USD", "syntax error"),
    ("cbr", "not a source value"), ("min()", "arguments"), ("limit(1, 2)", "3 arguments"),
    ("nowhere.USD", "unknown source"), ("markup(cbr.USD, cbr.USD)", "must be a number"),
    ("markup(cbr.USD, 100)", "below 100"), ("limit(cbr.USD, 3, 1)", "low bound"), ("1" * 1001, "longer"),
])
def test_refused_at_save(expression, message):
    with pytest.raises(f.FormulaError, match=message):
        f.check(f.parse(expression), SOURCES)


def test_names_and_groups():
    tree = f.parse("avg(binance.BTCUSDT.bid, manual.btc) * cbr.USD")
    assert f.names(tree) == ["binance.BTCUSDT.bid", "manual.btc", "cbr.USD"]
    result = f.evaluate(tree, {"binance.BTCUSDT.bid": Decimal(100), "manual.btc": Decimal(102),
                               "cbr.USD": Decimal(2)})
    assert result.value == Decimal(202)
    assert result.groups == [[("binance.BTCUSDT.bid", Decimal(100)), ("manual.btc", Decimal(102))]]
