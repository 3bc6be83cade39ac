"""Wire forms of the rates service's RPC answers (amounts as plain decimal strings) and the checks of what the
gateway sends in."""
from decimal import Decimal, InvalidOperation

from libs import money
from services.rates.domain import guards, sources as source_rules


def _iso(value):
    return value.isoformat() if value is not None else None


def _num(value):
    return money.to_str(value) if value is not None else None


def source_to_wire(row, values, now):
    fresh = sum(1 for v in values if source_rules.is_fresh(v["source_time"], v["fetched_at"],
                                                           float(row["max_age_seconds"]), now))
    return {"name": row["name"], "kind": row["kind"], "url": row["url"],
            "poll_seconds": _num(row["poll_seconds"]), "timeout_seconds": _num(row["timeout_seconds"]),
            "max_age_seconds": _num(row["max_age_seconds"]), "last_polled_at": _iso(row["last_polled_at"]),
            "last_ok_at": _iso(row["last_ok_at"]), "last_error": row["last_error"],
            "last_error_at": _iso(row["last_error_at"]), "errors_in_row": row["errors_in_row"],
            "failing": bool(row["errors_in_row"]), "values": len(values), "fresh_values": fresh,
            "items": [value_to_wire(v, now) for v in values]}


def value_to_wire(row, now):
    return {"name": "%s.%s" % (row["source"], row["symbol"]), "source": row["source"], "symbol": row["symbol"],
            "value": _num(row["value"]), "source_time": _iso(row["source_time"]),
            "fetched_at": _iso(row["fetched_at"]), "set_by": row.get("set_by"),
            "age_seconds": source_rules.age_seconds(row["source_time"], row["fetched_at"], now),
            "fresh": source_rules.is_fresh(row["source_time"], row["fetched_at"], float(row["max_age_seconds"]),
                                           now)}


def formula_to_wire(row):
    return {"direction_id": row["direction_id"], "pair": "%s → %s" % (row["currency_in"], row["currency_out"]),
            "currency_in": row["currency_in"], "currency_out": row["currency_out"],
            "expression": row["expression"], "quote": row["quote"],
            "max_jump_percent": _num(row["max_jump_percent"]), "max_spread_percent": _num(row["max_spread_percent"]),
            "version": row["version"], "value": _num(row["value"]), "accepted_value": _num(row["accepted_value"]),
            "rate_in": _num(row["published_rate_in"]), "rate_out": _num(row["published_rate_out"]),
            "frozen": bool(row["frozen"]), "frozen_code": row["frozen_code"], "frozen_reason": row["frozen_reason"],
            "frozen_since": _iso(row["frozen_since"]), "computed_at": _iso(row["computed_at"]),
            "updated_by": row["updated_by"], "updated_at": _iso(row["updated_at"])}


def formula_history_to_wire(row):
    return {"version": row["version"], "actor": row["actor"], "actor_role": row["actor_role"],
            "actor_ip": row["actor_ip"], "before": row["before"], "after": row["after"],
            "created_at": _iso(row["created_at"])}


def rate_history_to_wire(row):
    return {"seq": row["seq"], "value": _num(row["value"]), "rate_in": _num(row["rate_in"]),
            "rate_out": _num(row["rate_out"]), "frozen": row["frozen"], "reason": row["reason"],
            "created_at": _iso(row["created_at"])}


def load_percent(value, field, fields):
    try:
        if isinstance(value, (float, bool)) or not isinstance(value, (str, int)):
            raise InvalidOperation
        number = Decimal(str(value).strip())
        if not number.is_finite() or not 0 < number <= 100:
            raise InvalidOperation
        return number
    except InvalidOperation:
        fields[field] = ["a percent as a decimal string, above 0 and at most 100"]
        return None


def load_formula_input(data, default_jump, default_spread):
    """(values, fields at fault) of a formula to save or preview: expression, quote, the guards' percents."""
    data = dict(data or {})
    fields = {}
    unknown = set(data) - {"expression", "quote", "max_jump_percent", "max_spread_percent", "expected_version"}
    for key in unknown:
        fields[key] = ["unknown field"]
    expression = data.get("expression")
    if not isinstance(expression, str):
        fields["expression"] = ["required: the formula"]
    quote = data.get("quote", "out_per_in")
    if quote not in guards.QUOTES:
        fields["quote"] = ["one of %s" % ", ".join(guards.QUOTES)]
    jump = load_percent(data.get("max_jump_percent", str(default_jump)), "max_jump_percent", fields)
    spread = load_percent(data.get("max_spread_percent", str(default_spread)), "max_spread_percent", fields)
    expected = data.get("expected_version")
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int)):
        fields["expected_version"] = ["an integer"]
    return {"expression": expression, "quote": quote, "max_jump_percent": jump, "max_spread_percent": spread,
            "expected_version": expected}, fields
