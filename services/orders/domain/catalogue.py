"""Pure rules of the catalogue: what an admin may set on a direction or a currency (docs/pages.md). No I/O here.

Amounts arrive as strings and leave as Decimal; every field at fault is named, so the admin page shows them all.
"""
import re

from libs import money
from libs.contracts.orders import EXCHANGE_TYPES
from services.orders.domain import RuleError

DIRECTION_FIELDS = ("rate_in", "rate_out", "fee", "min_amount", "max_amount", "payment_window_minutes", "active",
                    "monitor_params", "city", "floating")
CURRENCY_FIELDS = ("name", "reserve", "active", "account", "payment_system", "monitor_code")
_CURRENCY_CODE = re.compile(r"^[A-Z0-9]{2,16}$")
# The monitors' conventions (docs/monitors.md): what migration 0011 checks too, so the admin hears it by field.
_MONITOR_CODE = re.compile(r"^[A-Z0-9]{2,20}$")
_CITY = re.compile(r"^[A-Z0-9]{2,16}$")
MONITOR_PARAMS = ("juridical", "verifying", "cardverify")


def changeable_values(data, allowed, fields):
    """The changeable fields of a direction or currency, checked; what is wrong is added to `fields`."""
    out = {}
    for key, value in data.items():
        if key not in allowed:
            fields.setdefault(key, []).append("cannot be changed here")
            continue
        try:
            if key in ("rate_in", "rate_out", "min_amount", "max_amount"):
                out[key] = money.parse_amount(value)
            elif key in ("fee", "reserve"):
                out[key] = money.parse_amount(value, allow_zero=True)
                if key == "fee" and out[key] >= 100:
                    raise money.AmountError("must be below 100 (percent)")
            elif key == "payment_window_minutes":
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10080:
                    raise money.AmountError("must be 1 to 10080 minutes")
                out[key] = value
            elif key in ("active", "floating"):
                if not isinstance(value, bool):
                    raise money.AmountError("must be true or false")
                out[key] = value
            elif key in ("monitor_code", "city"):
                out[key] = monitor_code(value, key)   # None clears it
            elif key == "monitor_params":
                out[key] = monitor_params(value)
            else:
                if not isinstance(value, str) or not 1 <= len(value.strip()) <= 100:
                    raise money.AmountError("must be 1 to 100 characters")
                out[key] = value.strip()
        except money.AmountError as exc:
            fields.setdefault(key, []).append(str(exc))
    return out


def monitor_code(value, key="monitor_code"):
    """A currency's monitor code or a direction's city, written as the monitors write them; None or "" clears it.
    Not upper-cased or trimmed for the caller: what is stored is what was sent, or a 400 says why."""
    if value is None or value == "":
        return None
    pattern, rule = (_MONITOR_CODE, "2 to 20 capital letters or digits (e.g. USDTTRC20, SBERRUB, CARDRUB)") \
        if key == "monitor_code" else (_CITY, "2 to 16 capital letters or digits (e.g. MSK)")
    if not isinstance(value, str) or not pattern.match(value):
        raise money.AmountError(rule)
    return value


def monitor_params(value):
    """The direction's own monitor flags, each once, in the monitors' order (manual and floating are not set
    here: they follow from the exchange type and the floating switch)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise money.AmountError("must be a list of %s" % ", ".join(MONITOR_PARAMS))
    unknown = [v for v in value if v not in MONITOR_PARAMS]
    if unknown:
        raise money.AmountError("unknown flag %s: only %s" % (", ".join(unknown), ", ".join(MONITOR_PARAMS)))
    return [flag for flag in MONITOR_PARAMS if flag in value]


def new_direction(data):
    """(currency_in, currency_out, exchange_type, values) of a direction to create; whether both currencies
    exist is the store's question."""
    fields = {}
    data = dict(data or {})
    cin, cout, kind = data.pop("currency_in", None), data.pop("currency_out", None), data.pop("exchange_type", None)
    if kind not in EXCHANGE_TYPES:
        fields["exchange_type"] = ["must be one of %s" % ", ".join(EXCHANGE_TYPES)]
    if not cin or cin == cout:
        fields["currency_out"] = ["must differ from currency_in"]
    values = changeable_values(data, DIRECTION_FIELDS, fields)
    for key in ("rate_in", "rate_out", "min_amount", "max_amount"):
        if key not in values and key not in fields:
            fields[key] = ["required"]
    if "min_amount" in values and "max_amount" in values and values["max_amount"] < values["min_amount"]:
        fields["max_amount"] = ["must be at least min_amount"]
    if fields:
        raise RuleError("invalid direction", fields)
    return cin, cout, kind, values


def direction_changes(changes):
    fields = {}
    values = changeable_values(changes or {}, DIRECTION_FIELDS, fields)
    if fields:
        raise RuleError("invalid direction", fields)
    return values


def check_amount_range(min_amount, max_amount):
    """A direction's limits after a change (the unchanged one from the database)."""
    if max_amount < min_amount:
        raise RuleError("invalid direction", {"max_amount": ["must be at least min_amount"]})


def new_currency(data):
    """(code, precision, values) of a currency to create."""
    data = dict(data or {})
    fields = {}
    code = data.pop("code", None)
    precision = data.pop("precision", None)
    if not isinstance(code, str) or not _CURRENCY_CODE.match(code):
        fields["code"] = ["2 to 16 capital letters or digits"]
    if isinstance(precision, bool) or not isinstance(precision, int) or not 0 <= precision <= 18:
        fields["precision"] = ["0 to 18"]
    values = changeable_values(data, CURRENCY_FIELDS, fields)
    for key in ("name", "account", "payment_system"):
        if key not in values and key not in fields:
            fields[key] = ["required"]
    if fields:
        raise RuleError("invalid currency", fields)
    return code, precision, values


def currency_changes(changes):
    fields = {}
    values = changeable_values(changes or {}, CURRENCY_FIELDS, fields)
    if fields:
        raise RuleError("invalid currency", fields)
    return values


PAYOUT_ACCOUNT_FIELDS = ("account", "payment_system")


def reserve_reset(before, values):
    """True when a change points the currency at another payout account (account or payment system) without
    stating the reserve: the old account's balance is not the reserve any more, so it becomes unknown (0) until
    the new account's balance arrives."""
    moved = any(key in values and values[key] != before[key] for key in PAYOUT_ACCOUNT_FIELDS)
    return moved and "reserve" not in values


def reserve_reset_notice(system, account):
    return ("the payout account is now %s/%s: the reserve is 0 (unknown) until that account's balance arrives "
            "from payments, or state it with `reserve`" % (system, account))
