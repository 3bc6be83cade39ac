"""Statistics over the read model: the SQL (three grouped queries) and the pure shaping of their rows into JSON.

Definitions (docs/reporting.md):
- requests, by status, never paid: orders *created* in [from, to). "Never paid" = expired, or canceled or deleted
  straight from `new`/`expired` (the customer or an operator gave up before any payment): the seed's "30% empty
  requests". Orders still `new` count as requests but not (yet) as never paid.
- completion time: created -> completed, in seconds, for orders *completed* in the window (p50, p90, p99).
- turnover and margin: orders completed in the window (money actually exchanged); turnover in = amount_in in
  currency_in, turnover out = amount_out in currency_out, margin = fee_amount in currency_out.
Days are UTC days.
"""
from decimal import Decimal

from libs import money

NEVER_PAID = ("status = 'expired' OR (status IN ('canceled', 'deleted') "
              "AND previous_status IN ('new', 'expired'))")
PERCENTILES = (0.5, 0.9, 0.99)

CREATED_DAY = "(created_at AT TIME ZONE 'UTC')::date"
COMPLETED_DAY = "(completed_at AT TIME ZONE 'UTC')::date"


def queries(group):
    created_key = CREATED_DAY if group == "day" else "direction_id"
    completed_key = COMPLETED_DAY if group == "day" else "direction_id"
    requests = (
        "SELECT {k} AS key, status, count(*) AS n, count(*) FILTER (WHERE {np}) AS never_paid, "
        "min(currency_in) AS currency_in, min(currency_out) AS currency_out "
        "FROM orders WHERE created_at >= %(start)s AND created_at < %(end)s "
        "GROUP BY 1, 2 ORDER BY 1, 2").format(k=created_key, np=NEVER_PAID)
    completion = (
        "SELECT GROUPING({k}) = 1 AS is_total, {k} AS key, count(*) AS n, "
        "percentile_cont(ARRAY[{p}]) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at)) AS p "
        "FROM orders WHERE completed_at >= %(start)s AND completed_at < %(end)s "
        "GROUP BY GROUPING SETS (({k}), ())").format(k=completed_key, p=", ".join(str(p) for p in PERCENTILES))
    turnover = (
        "SELECT {day} AS day, direction_id, currency_in, currency_out, count(*) AS completed, "
        "sum(amount_in) AS amount_in, sum(amount_out) AS amount_out, sum(coalesce(fee_amount, 0)) AS margin "
        "FROM orders WHERE completed_at >= %(start)s AND completed_at < %(end)s "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2").format(day=COMPLETED_DAY)
    return [requests, completion, turnover]


def _key(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def _completion(n, p):
    out = {"count": int(n)}
    for q, value in zip(PERCENTILES, p or [None] * len(PERCENTILES)):
        out["p%d" % round(q * 100)] = round(float(value), 3) if value is not None else None
    return out


def _share(part, whole):
    return round(part / whole, 4) if whole else None


def _money_map(sums):
    return {currency: money.to_str(amount) for currency, amount in sorted(sums.items())}


def _add(sums, currency, amount):
    sums[currency] = sums.get(currency, Decimal(0)) + (amount or Decimal(0))


def shape(start, end, group, request_rows, completion_rows, turnover_rows):
    """The JSON answer of /api/v1/admin/reports/stats from the three queries' rows."""
    key_name = "day" if group == "day" else "direction_id"
    groups = {}

    def entry(key):
        if key not in groups:
            groups[key] = {key_name: _key(key), "requests": 0, "by_status": {}, "never_paid": 0,
                           "never_paid_share": None, "completion_seconds": _completion(0, None), "turnover": []}
        return groups[key]

    totals = {"requests": 0, "by_status": {}, "never_paid": 0}
    for r in request_rows:
        g = entry(r["key"])
        if group == "direction":
            g.setdefault("currency_in", r["currency_in"])
            g.setdefault("currency_out", r["currency_out"])
        g["requests"] += r["n"]
        g["by_status"][r["status"]] = r["n"]
        g["never_paid"] += r["never_paid"]
        totals["requests"] += r["n"]
        totals["by_status"][r["status"]] = totals["by_status"].get(r["status"], 0) + r["n"]
        totals["never_paid"] += r["never_paid"]
    totals["never_paid_share"] = _share(totals["never_paid"], totals["requests"])
    totals["completion_seconds"] = _completion(0, None)
    for r in completion_rows:
        if r["is_total"]:
            totals["completion_seconds"] = _completion(r["n"], r["p"])
        else:
            entry(r["key"])["completion_seconds"] = _completion(r["n"], r["p"])
    turnover_in, turnover_out, margin = {}, {}, {}
    for r in turnover_rows:
        item = {"completed": r["completed"], "currency_in": r["currency_in"], "currency_out": r["currency_out"],
                "amount_in": money.to_str(r["amount_in"]), "amount_out": money.to_str(r["amount_out"]),
                "margin": money.to_str(r["margin"])}
        if group == "day":
            g = entry(r["day"])
            item = {"direction_id": r["direction_id"], **item}
        else:
            g = entry(r["direction_id"])
            g.setdefault("currency_in", r["currency_in"])
            g.setdefault("currency_out", r["currency_out"])
            item = {"day": _key(r["day"]), **item}
        g["turnover"].append(item)
        _add(turnover_in, r["currency_in"], r["amount_in"])
        _add(turnover_out, r["currency_out"], r["amount_out"])
        _add(margin, r["currency_out"], r["margin"])
    totals["turnover_in"] = _money_map(turnover_in)
    totals["turnover_out"] = _money_map(turnover_out)
    totals["margin"] = _money_map(margin)
    for g in groups.values():
        g["never_paid_share"] = _share(g["never_paid"], g["requests"])
    return {"from": start.isoformat(), "to": end.isoformat(), "group": group, "totals": totals,
            "groups": [groups[k] for k in sorted(groups)]}
