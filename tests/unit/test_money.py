from decimal import Decimal as D

import pytest

from libs import money


@pytest.mark.parametrize("text, expected", [("100", D("100")), ("0.5", D("0.5")), (" 12.340 ", D("12.340")),
                                            ("1e2", D("100"))])
def test_parse_amount_accepts_decimal_strings(text, expected):
    assert money.parse_amount(text) == expected


@pytest.mark.parametrize("value, message", [
    (1.5, "float"), ("abc", "not a number"), ("NaN", "finite"), ("Infinity", "finite"), ("-1", "greater"),
    ("0", "greater"), ("1e309", "too large"), ("123456789012345678901", "too large"),
    ("0.0000000000000000001", "decimal places"), ("", "not a number"), (None, "decimal string"), (True, "float"),
])
def test_parse_amount_rejects_what_is_not_money(value, message):
    with pytest.raises(money.AmountError) as exc:
        money.parse_amount(value)
    assert message in str(exc.value)


def test_to_str_is_plain_fixed_point():
    assert money.to_str(D("1E+2")) == "100"
    assert money.to_str(D("0.00012300")) == "0.000123"
    assert money.to_str(D("5.000")) == "5"
    with pytest.raises(TypeError):
        money.to_str(1.5)


def test_convert_rounds_down_in_favour_of_the_exchanger():
    out, fee = money.convert(D("100"), D("1"), D("0.92"), D("0.5"), 2)
    assert out == D("91.54")          # 92 - 0.46 = 91.54 exactly
    assert fee == D("0.46")
    out, fee = money.convert(D("3"), D("7"), D("1"), D("0"), 2)
    assert out == D("0.42")           # 0.428571... rounded down, never up
    assert out + fee == D("3") / D("7")


def test_fraction_digits():
    assert money.fraction_digits(D("1.50")) == 1
    assert money.fraction_digits(D("2E+1")) == 0
    assert money.fraction_digits(D("0.001")) == 3


def test_fraction_digits_are_counted_exactly_beyond_the_context_precision():
    """Defect: normalize() rounded to 28 digits, so 40.<29 zeros>1 counted 0 places, passed every precision check
    and became 40. Now it is refused like any other too-precise amount."""
    too_precise = "40." + "0" * 29 + "1"
    assert money.fraction_digits(D(too_precise)) == 30
    with pytest.raises(money.AmountError, match="too many decimal places"):
        money.parse_amount(too_precise)
    assert money.fraction_digits(D("40." + "0" * 29)) == 0
    assert money.fraction_digits(D("1.50")) == 1
    assert money.fraction_digits(D("2E+1")) == 0
    assert money.fraction_digits(D("0.000")) == 0
    assert money.fraction_digits(D("0.12345678")) == 8
