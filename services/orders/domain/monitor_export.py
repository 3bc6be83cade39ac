"""The monitors' rates file from the catalogue (docs/monitors.md): which directions are listed and how each is
written. Pure: rows in, items out (libs/monitor_rates.py writes them).

- Listed: the direction and both its currencies active, the direction not frozen by the rate engine, and both
  currencies with a monitor code (the code the monitors know them by; without one the monitor cannot place the
  direction). The store's query applies the same filter; `listed` states it for the tests and for rows read whole.
- `in`/`out`: what the customer gives and gets at the direction's rate less its fee (the fee is in the rate, not an
  extra charge, so the monitors compare like with like). One side is 1, the other rounded against us (the customer
  never finds a better rate in the file than the order gives).
- `amount`: what new orders may still take of the to-currency's reserve (reserve - held, never below 0).
- `minamount`/`maxamount`: the direction's limits, in the from-currency (the monitors' convention).
- `param`: `manual` when an operator takes part in every exchange (exchange types `semi_auto`, whose payout an
  operator starts, and `manual`, whose payment an operator checks; only `auto` runs alone), then the direction's
  own flags (juridical, verifying, cardverify), then `floating` when the rate at payment decides.
"""
import json
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

from libs import money
from libs.monitor_rates import render_rates_xml

OPERATOR_TYPES = ("semi_auto", "manual")
DIRECTION_FLAGS = ("juridical", "verifying", "cardverify")
RATE_PLACES = 8   # decimals of the side of in/out that is not 1
_ONE = Decimal(1)


def listed(row):
    return bool(row["active"] and row["active_in"] and row["active_out"] and not row["rate_frozen"]
                and row["monitor_code_in"] and row["monitor_code_out"])


def in_out(rate_in, rate_out, fee_percent):
    """(in, out) of a direction, its fee taken: 1 -> what one unit of the from-currency buys (rounded down) when
    that is at least 1, else what buys one unit of the to-currency (rounded up) -> 1. Each division rounds in the
    same direction as its result, so the file never promises more than the order gives."""
    give = rate_in * Decimal(100)
    get = rate_out * (Decimal(100) - fee_percent)
    quantum = Decimal(1).scaleb(-RATE_PLACES)
    with localcontext() as ctx:
        ctx.prec = 60
        if get >= give:
            ctx.rounding = ROUND_FLOOR
            return _ONE, _trim((get / give).quantize(quantum, rounding=ROUND_FLOOR))
        ctx.rounding = ROUND_CEILING
        return _trim((give / get).quantize(quantum, rounding=ROUND_CEILING)), _ONE


def _trim(value):
    """The same number without trailing zeros (94.06750000 -> 94.0675), never in exponent form."""
    return Decimal(money.to_str(value))


def params(row):
    flags = ["manual"] if row["exchange_type"] in OPERATOR_TYPES else []
    flags += [flag for flag in DIRECTION_FLAGS if flag in (row["monitor_params"] or ())]
    if row["floating"]:
        flags.append("floating")
    return flags


def item(row):
    """The item of a listed direction (libs/monitor_rates.py form: amounts as Decimal)."""
    give, get = in_out(row["rate_in"], row["rate_out"], row["fee"])
    return {
        "from": row["monitor_code_in"],
        "to": row["monitor_code_out"],
        "in": give,
        "out": get,
        "amount": _trim(money.round_down(max(row["available"], Decimal(0)), row["precision_out"])),
        "minamount": _trim(row["min_amount"]),
        "maxamount": _trim(row["max_amount"]),
        "param": params(row),
        "city": row["city"],
    }


def items(rows, maintenance=False):
    """The listed items in the order of the rows; none while the exchanger is in maintenance."""
    if maintenance:
        return []
    return [item(row) for row in rows if listed(row)]


def render(rows, maintenance=False):
    """(xml bytes, json text, number of items) of the file."""
    listed_items = items(rows, maintenance)
    return render_rates_xml(listed_items), render_json(listed_items), len(listed_items)


def render_json(listed_items):
    """The JSON twin: {"rates": [item...]}, numbers as strings written as in the XML, `param` as in the XML
    (comma-separated, left out when none), `city` left out when none."""
    out = []
    for one in listed_items:
        entry = {"from": one["from"], "to": one["to"]}
        entry.update((key, money.to_str(one[key])) for key in ("in", "out", "amount", "minamount", "maxamount"))
        if one["param"]:
            entry["param"] = ", ".join(one["param"])
        if one["city"]:
            entry["city"] = one["city"]
        out.append(entry)
    return json.dumps({"rates": out}, separators=(",", ":"))


MONITOR_CODE_RULE = "2 to 20 capital letters or digits (the monitors' code, e.g. USDTTRC20, SBERRUB, CARDRUB)"
CITY_RULE = "2 to 16 capital letters or digits (the monitors' city code, e.g. MSK)"
