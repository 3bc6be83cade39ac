"""The export and statistics filters inside the reporting service: the WHERE clause the loaded filters become, and
the statistics window. The parameters themselves (one strict schema the gateway and this service share) are in
libs/contracts/reporting.py.
"""
import datetime

from marshmallow import ValidationError

from libs.contracts.reporting import MAX_STATS_DAYS, UTC

DELIMITERS = {"utf-8": ",", "windows-1251": ";"}


def where_clause(filters, alias="o"):
    """Filters -> (SQL condition, params) over reporting.orders. Deleted orders are left out unless a status
    filter names `deleted` (as on the admin list)."""
    where, params = [], []
    col = (alias + ".") if alias else ""
    statuses = filters.get("status")
    if statuses:
        where.append(col + "status = ANY(%s)")
        params.append(list(statuses))
    else:
        where.append(col + "status <> 'deleted'")
    for key in ("exchange_type", "direction_id", "partner_code"):
        if filters.get(key) is not None:
            where.append("%s%s = %%s" % (col, key))
            params.append(filters[key])
    for key in ("currency_in", "currency_out"):
        if filters.get(key) is not None:
            where.append("%s%s = %%s" % (col, key))
            params.append(filters[key].upper())
    if filters.get("email") is not None:
        where.append("lower(%semail) = lower(%%s)" % col)
        params.append(filters["email"].strip())
    for key, column, op in (("created_from", "created_at", ">="), ("created_to", "created_at", "<"),
                            ("updated_from", "updated_at", ">="), ("updated_to", "updated_at", "<"),
                            ("amount_in_min", "amount_in", ">="), ("amount_in_max", "amount_in", "<="),
                            ("amount_out_min", "amount_out", ">="), ("amount_out_max", "amount_out", "<=")):
        if filters.get(key) is not None:
            where.append("%s%s %s %%s" % (col, column, op))
            params.append(filters[key])
    return " AND ".join(where), params


def stats_window(params, now=None):
    """Loaded StatsQuerySchema -> (start, end, group) with the defaults filled in."""
    now = now or datetime.datetime.now(UTC)
    end = params.get("to") or now
    try:
        start = params.get("from_") or end - datetime.timedelta(days=30)
    except OverflowError:
        raise ValidationError({"to": ["too early"]})
    if start >= end:
        raise ValidationError({"from": ["must be before to"]})
    if end - start > datetime.timedelta(days=MAX_STATS_DAYS):
        raise ValidationError({"from": ["at most %d days before to" % MAX_STATS_DAYS]})
    return start, end, params.get("group") or "day"

