"""Money is Decimal in Python, NUMERIC in PostgreSQL and a string on the wire. Never float."""
from decimal import Decimal, InvalidOperation, ROUND_DOWN, ROUND_HALF_EVEN, localcontext

# Enough integer digits for any real balance; NUMERIC(38, 18) columns hold every amount we store.
MAX_INTEGER_DIGITS = 20
MAX_FRACTION_DIGITS = 18


class AmountError(ValueError):
    """An amount that is not a finite, positive, bounded decimal number."""


def parse_amount(value, *, allow_zero=False):
    """Parse a wire value (string or int; never float) into a Decimal, rejecting what is not money."""
    if isinstance(value, bool) or isinstance(value, float):
        raise AmountError("must be a decimal string, not a float")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, (int, str)):
        text = str(value).strip()
        if not text or len(text) > 60:
            raise AmountError("not a number")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise AmountError("not a number")
    else:
        raise AmountError("must be a decimal string")
    if not amount.is_finite():
        raise AmountError("must be finite")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise AmountError("must be greater than zero")
    sign, digits, exponent = amount.as_tuple()
    integer_digits = len(digits) + exponent if exponent < 0 else len(digits) + exponent
    if integer_digits > MAX_INTEGER_DIGITS:
        raise AmountError("is too large")
    if fraction_digits(amount) > MAX_FRACTION_DIGITS:
        raise AmountError("has too many decimal places")
    return amount


def fraction_digits(amount):
    """Number of significant decimal places (1.50 has 1, 2E+1 has 0), counted exactly from the digits.

    Not `Decimal.normalize()`: it rounds to the context's 28 significant digits, so "40.000…0001" with 29 zeros
    would count as 0 places and pass any precision check, then be rounded to 40 (docs/reliability.md, P18)."""
    _, digits, exponent = amount.as_tuple()
    if exponent >= 0 or not any(digits):
        return 0
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -exponent - trailing_zeros)


def quantum(precision):
    return Decimal(1).scaleb(-precision)


def round_down(amount, precision):
    """Round towards zero to the currency's precision: the customer never gets a fraction we do not have."""
    return amount.quantize(quantum(precision), rounding=ROUND_DOWN)


def to_str(amount):
    """Plain fixed-point text, no exponent: '100', '0.00012345'."""
    if amount is None:
        return None
    if not isinstance(amount, Decimal):
        raise TypeError("money must be Decimal, got %r" % type(amount))
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def convert(amount_in, rate_in, rate_out, fee_percent, precision_out):
    """What the customer gets for amount_in at "give rate_in, get rate_out", less fee_percent, rounded down.

    Returns (amount_out, fee_amount) where fee_amount is in the to-currency.
    """
    with localcontext() as ctx:
        ctx.prec = 60
        ctx.rounding = ROUND_HALF_EVEN
        gross = amount_in * rate_out / rate_in
        fee = gross * fee_percent / Decimal(100)
        amount_out = round_down(gross - fee, precision_out)
        return amount_out, gross - amount_out
