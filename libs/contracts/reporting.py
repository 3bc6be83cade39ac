"""The export and statistics parameters: one strict schema, used at the gateway's edge and again by the reporting
service (its internal HTTP port is not the public edge, but it trusts nobody). What the filters become in SQL is
the reporting service's own business (services/reporting/store.py).

Dates: `2024-05-01` or an ISO 8601 date-time (no zone means UTC). A `*_from` bound is inclusive; a `*_to` bound
is exclusive for a date-time and covers the whole day for a plain date (`created_to=2024-05-31` includes May 31).
"""
import datetime
from decimal import Decimal

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from libs import money
from libs.contracts.orders import EXCHANGE_TYPES, STATUSES

ENCODINGS = ("utf-8", "windows-1251")
MAX_STATS_DAYS = 731
UTC = datetime.timezone.utc


class Bound(fields.Field):
    """A date or date-time bound. Loads to an aware datetime; a plain date used as an upper bound means the end
    of that day."""

    def __init__(self, upper=False, **kwargs):
        super().__init__(**kwargs)
        self.upper = upper

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not 1 <= len(value) <= 40:
            raise ValidationError("must be a date (2024-05-01) or an ISO 8601 date-time")
        text = value.strip()
        try:
            if len(text) == 10:
                day = datetime.date.fromisoformat(text)
                moment = datetime.datetime.combine(day, datetime.time(), tzinfo=UTC)
                return moment + datetime.timedelta(days=1) if self.upper else moment
            moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except (ValueError, OverflowError):  # OverflowError: the day after 9999-12-31
            raise ValidationError("must be a date (2024-05-01) or an ISO 8601 date-time")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment


class AmountBound(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("must be a decimal string, e.g. 100.50")
        try:
            return money.parse_amount(value, allow_zero=True)
        except money.AmountError as exc:
            raise ValidationError(str(exc))


class StatusList(fields.String):
    """One status or several, comma-separated: loads to a sorted list without duplicates."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        items = sorted({s.strip() for s in text.split(",") if s.strip()})
        if not items:
            raise ValidationError("name at least one status")
        bad = [s for s in items if s not in STATUSES]
        if bad:
            raise ValidationError("unknown status: %s" % ", ".join(bad[:5]))
        return items


CURRENCY = validate.Regexp(r"^[A-Za-z0-9]{2,16}$", error="a currency code such as USDT")


class ExportQuerySchema(Schema):
    """GET /api/v1/admin/reports/orders.csv parameters. Unknown parameters are refused (422)."""
    class Meta:
        unknown = RAISE

    status = StatusList(metadata={"description": "one status or several, comma-separated"})
    exchange_type = fields.String(validate=validate.OneOf(EXCHANGE_TYPES))
    direction_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    currency_in = fields.String(validate=CURRENCY)
    currency_out = fields.String(validate=CURRENCY)
    created_from = Bound()
    created_to = Bound(upper=True)
    updated_from = Bound()
    updated_to = Bound(upper=True)
    email = fields.String(validate=validate.Regexp(r"^[^\s\x00]{1,254}$", error="an e-mail address"),
                          metadata={"description": "exact, case-insensitive"})
    partner_code = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,32}$"))
    amount_in_min = AmountBound()
    amount_in_max = AmountBound()
    amount_out_min = AmountBound()
    amount_out_max = AmountBound()
    encoding = fields.String(load_default="utf-8", validate=validate.OneOf(ENCODINGS),
                             metadata={"description": "utf-8 (comma-separated) or windows-1251 (semicolons)"})

    @validates_schema
    def _ranges(self, data, **kwargs):
        errors = {}
        for low, high in (("created_from", "created_to"), ("updated_from", "updated_to"),
                          ("amount_in_min", "amount_in_max"), ("amount_out_min", "amount_out_max")):
            if data.get(low) is not None and data.get(high) is not None and data[low] > data[high]:
                errors[high] = ["must not be before %s" % low]
        if errors:
            raise ValidationError(errors)


def query_args(args):
    """A werkzeug MultiDict of query parameters -> plain dict; `status` may be repeated or comma-separated."""
    data = args.to_dict(flat=True)
    statuses = args.getlist("status")
    if len(statuses) > 1:
        data["status"] = ",".join(statuses)
    return data

def to_query(filters):
    """Loaded filters -> query parameters (strings) that load back to the same filters: what the gateway sends to
    the reporting service, so both sides agree on every bound."""
    query = {}
    for key, value in filters.items():
        if value is None:
            continue
        if isinstance(value, list):
            query[key] = ",".join(value)
        elif isinstance(value, datetime.datetime):
            # The loaded upper bound of a plain date is already the next midnight: send it as a date-time.
            query[key] = value.isoformat()
        elif isinstance(value, Decimal):
            query[key] = money.to_str(value)
        else:
            query[key] = str(value)
    return query


# -- statistics ---------------------------------------------------------------------------------------------------
class StatsQuerySchema(Schema):
    """GET /api/v1/admin/reports/stats parameters. Default window: the last 30 days."""
    class Meta:
        unknown = RAISE

    from_ = Bound(data_key="from")
    to = Bound(upper=True)
    group = fields.String(load_default="day", validate=validate.OneOf(["day", "direction"]))

    @validates_schema
    def _window(self, data, **kwargs):
        start, end = data.get("from_"), data.get("to")
        if start is not None and end is not None:
            if start >= end:
                raise ValidationError({"to": ["must be after from"]})
            if end - start > datetime.timedelta(days=MAX_STATS_DAYS):
                raise ValidationError({"to": ["at most %d days after from" % MAX_STATS_DAYS]})
