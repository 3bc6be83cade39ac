"""The export and statistics parameters: strict parsing, bounds, and the WHERE clause they become."""
import datetime
from decimal import Decimal

import pytest
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from libs.contracts import reporting as report_contract
from services.reporting import domain, store

UTC = datetime.timezone.utc


def load(**query):
    return report_contract.ExportQuerySchema().load(query)


def test_defaults_to_utf8_and_nothing_else():
    assert load() == {"encoding": "utf-8"}


def test_statuses_are_a_sorted_set_and_unknown_ones_are_refused():
    assert load(status="paid,new,paid, completed")["status"] == ["completed", "new", "paid"]
    with pytest.raises(ValidationError) as exc:
        load(status="new,bogus")
    assert "status" in exc.value.messages
    with pytest.raises(ValidationError):
        load(status=",")


def test_unknown_parameters_are_refused():
    with pytest.raises(ValidationError) as exc:
        load(limit="10")
    assert "limit" in exc.value.messages


def test_repeated_status_parameters_are_joined():
    args = MultiDict([("status", "new"), ("status", "paid"), ("email", "a@b.c")])
    assert report_contract.query_args(args) == {"status": "new,paid", "email": "a@b.c"}


@pytest.mark.parametrize("value,expected", [
    ("2024-05-01", datetime.datetime(2024, 5, 1, tzinfo=UTC)),
    ("2024-05-01T10:30:00", datetime.datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
    ("2024-05-01T10:30:00Z", datetime.datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
    ("2024-05-01T10:30:00+03:00", datetime.datetime(2024, 5, 1, 7, 30, tzinfo=UTC)),
])
def test_lower_bounds(value, expected):
    assert load(created_from=value)["created_from"] == expected


def test_a_plain_date_as_upper_bound_covers_that_whole_day():
    assert load(created_to="2024-05-31")["created_to"] == datetime.datetime(2024, 6, 1, tzinfo=UTC)
    assert load(updated_to="2024-05-31T12:00:00")["updated_to"] == datetime.datetime(2024, 5, 31, 12, tzinfo=UTC)


@pytest.mark.parametrize("field,value", [
    ("created_from", "yesterday"), ("created_from", "2024-13-01"), ("direction_id", "0"), ("direction_id", "x"),
    ("exchange_type", "fast"), ("currency_in", "US$"), ("partner_code", "a b"), ("amount_in_min", "-1"),
    ("amount_in_max", "1e400"), ("amount_out_min", "NaN"), ("encoding", "latin-1"), ("email", ""),
    ("email", "a@b.c\n\\! rm"), ("email", "a\x00@b.c"), ("email", "x" * 255),
])
def test_bad_values_are_refused_with_the_field(field, value):
    with pytest.raises(ValidationError) as exc:
        load(**{field: value})
    assert field in exc.value.messages


@pytest.mark.parametrize("low,high,a,b", [
    ("created_from", "created_to", "2024-05-02", "2024-05-01T00:00:00"),
    ("amount_in_min", "amount_in_max", "10", "9.99"),
    ("amount_out_min", "amount_out_max", "1", "0.5"),
])
def test_inverted_ranges_are_refused(low, high, a, b):
    with pytest.raises(ValidationError) as exc:
        load(**{low: a, high: b})
    assert high in exc.value.messages


def test_amounts_are_decimals_and_zero_is_a_valid_lower_bound():
    loaded = load(amount_in_min="0", amount_in_max="100.50")
    assert loaded["amount_in_min"] == Decimal("0") and loaded["amount_in_max"] == Decimal("100.50")


def test_to_query_loads_back_to_the_same_filters():
    original = load(status="new,paid", exchange_type="manual", direction_id="3", currency_in="usdt",
                    created_from="2024-05-01", created_to="2024-05-31", updated_from="2024-05-02T01:02:03+02:00",
                    email="A@Example.com", partner_code="p-1", amount_in_min="10", amount_out_max="99.5",
                    encoding="windows-1251")
    assert load(**report_contract.to_query(original)) == original


def test_where_clause_leaves_out_deleted_unless_asked():
    sql, params = store.where_clause(load())
    assert sql == "o.status <> 'deleted'" and params == []
    sql, params = store.where_clause(load(status="deleted,new"))
    assert sql == "o.status = ANY(%s)" and params == [["deleted", "new"]]


def test_where_clause_has_one_condition_per_filter():
    loaded = load(status="new", exchange_type="auto", direction_id="2", currency_in="usdt", currency_out="EUR",
                  created_from="2024-05-01", created_to="2024-05-02", updated_from="2024-05-01",
                  updated_to="2024-05-03", email="A@B.io", partner_code="p1", amount_in_min="1",
                  amount_in_max="2", amount_out_min="3", amount_out_max="4")
    sql, params = store.where_clause(loaded)
    conditions = sql.split(" AND ")
    assert len(conditions) == len(params) == 15
    assert "lower(o.email) = lower(%s)" in conditions and "A@B.io" in params
    assert "USDT" in params  # currency codes compare upper-case
    assert "o.created_at < %s" in conditions and "o.amount_out <= %s" in conditions
    assert sql.count("%s") == len(params)


def test_stats_window_defaults_to_the_last_30_days_by_day():
    now = datetime.datetime(2024, 6, 1, tzinfo=UTC)
    start, end, group = domain.stats_window(report_contract.StatsQuerySchema().load({}), now=now)
    assert (start, end, group) == (now - datetime.timedelta(days=30), now, "day")


def test_stats_parameters_are_checked():
    schema = report_contract.StatsQuerySchema()
    assert schema.load({"from": "2024-05-01", "to": "2024-05-01", "group": "direction"})["to"] == \
        datetime.datetime(2024, 5, 2, tzinfo=UTC)
    for bad in ({"group": "week"}, {"from": "2024-05-02", "to": "2024-05-01T00:00:00"},
                {"from": "2020-01-01", "to": "2024-01-01"}, {"since": "2024-01-01"}):
        with pytest.raises(ValidationError):
            schema.load(bad)


def test_extreme_dates_are_refused_not_crashed():
    with pytest.raises(ValidationError):
        load(created_to="9999-12-31")
    with pytest.raises(ValidationError):
        domain.stats_window(report_contract.StatsQuerySchema().load({"to": "0001-01-02T00:00:00"}))
