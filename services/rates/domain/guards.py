"""The guards of a direction's rate (docs/rates.md, "Guards") and the rounding of a computed value into the
direction's (rate_in, rate_out). A direction is frozen while any guard fails; it thaws by itself at the first
recompute that passes them all, or when an operator accepts the new value (it then becomes the previous one).

- stale:  a value the formula needs is older than its source's maximum age (and no fallback is fresh);
- failed: the formula cannot be computed (division by zero with these values, a rate of zero or below);
- spread: an alternative (an argument of min/max/avg/median/first) is further from the median of its group than
          `max_spread_percent`: one source disagrees with the others;
- jump:   the new value is further from the last accepted value than `max_jump_percent`.
"""
from decimal import ROUND_DOWN, ROUND_UP, Decimal, localcontext

from libs import money
from services.rates.domain import formula as language

QUOTES = ("out_per_in", "in_per_out")


class Verdict:
    def __init__(self, value=None, rate_in=None, rate_out=None, reason=None, code=None):
        self.value, self.rate_in, self.rate_out = value, rate_in, rate_out
        self.reason, self.code = reason, code

    @property
    def frozen(self):
        return self.reason is not None


def percent_off(value, reference):
    with localcontext() as ctx:
        ctx.prec = 30
        return abs(value - reference) * 100 / abs(reference)


def beyond(value, reference, limit_percent):
    """|value - reference| is more than limit_percent of |reference|: compared by multiplication, without a
    division on the hot path (the percent itself is computed only for the message)."""
    return abs(value - reference) * 100 > limit_percent * abs(reference)


_QUANTA = {p: money.quantum(p) for p in range(0, 19)}


def _pct(value):
    return money.to_str(value.quantize(Decimal("0.01"), rounding=ROUND_UP))


def to_rates(value, quote, precision_in, precision_out):
    """(rate_in, rate_out) of a computed value, rounded once to the currencies' precision, in the exchanger's
    favour: `out_per_in` (value = to-currency per 1 from): rate_in 1, rate_out rounded down; `in_per_out`
    (value = from-currency per 1 to): rate_out 1, rate_in rounded up. FormulaError if it rounds to nothing."""
    if quote == "out_per_in":
        rate_out = value.quantize(_QUANTA[precision_out], rounding=ROUND_DOWN)
        if rate_out <= 0:
            raise language.FormulaError("the rate rounds to 0 at %d decimal places" % precision_out)
        return Decimal(1), rate_out
    rate_in = value.quantize(_QUANTA[precision_in], rounding=ROUND_UP)
    return rate_in, Decimal(1)


def judge(tree, fresh_values, previous, quote, precision_in, precision_out, max_jump_percent, max_spread_percent,
          stale_detail=None):
    """The verdict on a formula now. `fresh_values`: {name: Decimal} of the values within their maximum age;
    `previous`: the last accepted value (None at first); `stale_detail`: {name: text} saying how old a stale
    value is, for the reason."""
    try:
        result = language.evaluate(tree, fresh_values)
    except language.Unavailable as exc:
        detail = "; ".join("%s%s" % (n, " (%s)" % stale_detail[n] if stale_detail and n in stale_detail else "")
                           for n in exc.names)
        return Verdict(reason="no fresh value: %s" % detail, code="stale")
    except language.FormulaError as exc:
        return Verdict(reason="the formula failed: %s" % exc, code="failed")
    value = result.value
    if value <= 0:
        return Verdict(value=value, reason="the formula gives %s: not a rate" % money.to_str(value), code="failed")
    for group in result.groups:
        centre = language.median([v for _, v in group])
        if centre <= 0:
            continue
        for text, v in group:
            if beyond(v, centre, max_spread_percent):
                off = percent_off(v, centre)
                return Verdict(value=value, code="spread", reason=(
                    "%s = %s is %s%% off the median %s of its alternatives (limit %s%%)" % (
                        text, money.to_str(v), _pct(off), money.to_str(+centre), money.to_str(max_spread_percent))))
    if previous is not None and previous > 0 and beyond(value, previous, max_jump_percent):
        off = percent_off(value, previous)
        return Verdict(value=value, code="jump", reason="the rate moved %s%% from the last accepted %s to %s "
                       "(limit %s%%)" % (_pct(off), money.to_str(previous), money.to_str(+value),
                                         money.to_str(max_jump_percent)))
    try:
        rate_in, rate_out = to_rates(value, quote, precision_in, precision_out)
    except language.FormulaError as exc:
        return Verdict(value=value, reason=str(exc), code="failed")
    return Verdict(value=value, rate_in=rate_in, rate_out=rate_out)
