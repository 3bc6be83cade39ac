"""The statistics' shaping and the export's SQL, without a database."""
import datetime
from decimal import Decimal

import pytest

from libs.contracts import reporting as report_contract
from services.reporting import domain, export, store

UTC = datetime.timezone.utc
START, END = datetime.datetime(2024, 5, 1, tzinfo=UTC), datetime.datetime(2024, 5, 3, tzinfo=UTC)
D1, D2 = datetime.date(2024, 5, 1), datetime.date(2024, 5, 2)

REQUESTS = [
    {"key": D1, "status": "completed", "n": 2, "never_paid": 0, "currency_in": "USDT", "currency_out": "EUR"},
    {"key": D1, "status": "expired", "n": 1, "never_paid": 1, "currency_in": "USDT", "currency_out": "EUR"},
    {"key": D2, "status": "canceled", "n": 2, "never_paid": 1, "currency_in": "USD", "currency_out": "RUB"},
    {"key": D2, "status": "new", "n": 5, "never_paid": 0, "currency_in": "USD", "currency_out": "RUB"},
]
COMPLETION = [
    {"is_total": False, "key": D1, "n": 2, "p": [60.0, 108.0, 118.8]},
    {"is_total": True, "key": None, "n": 2, "p": [60.0, 108.0, 118.8]},
]
TURNOVER = [
    {"day": D1, "direction_id": 1, "currency_in": "USDT", "currency_out": "EUR", "completed": 1,
     "amount_in": Decimal("100"), "amount_out": Decimal("91.54"), "margin": Decimal("0.46")},
    {"day": D1, "direction_id": 2, "currency_in": "USD", "currency_out": "EUR", "completed": 1,
     "amount_in": Decimal("10.50"), "amount_out": Decimal("9.10"), "margin": Decimal("0.04")},
]


def test_totals_add_up_and_money_stays_decimal_strings():
    result = domain.shape_stats(START, END, "day", REQUESTS, COMPLETION, TURNOVER)
    totals = result["totals"]
    assert totals["requests"] == 10 and totals["never_paid"] == 2 and totals["never_paid_share"] == 0.2
    assert totals["by_status"] == {"completed": 2, "expired": 1, "canceled": 2, "new": 5}
    assert totals["completion_seconds"] == {"count": 2, "p50": 60.0, "p90": 108.0, "p99": 118.8}
    assert totals["turnover_in"] == {"USD": "10.5", "USDT": "100"}
    assert totals["turnover_out"] == {"EUR": "100.64"} and totals["margin"] == {"EUR": "0.5"}


def test_group_by_day_lists_each_day_with_its_directions():
    result = domain.shape_stats(START, END, "day", REQUESTS, COMPLETION, TURNOVER)
    assert [g["day"] for g in result["groups"]] == ["2024-05-01", "2024-05-02"]
    first, second = result["groups"]
    assert first["requests"] == 3 and first["never_paid_share"] == 0.3333
    assert [t["direction_id"] for t in first["turnover"]] == [1, 2]
    assert second["turnover"] == [] and second["completion_seconds"]["count"] == 0
    assert second["completion_seconds"]["p50"] is None


def test_group_by_direction_lists_each_direction_with_its_days():
    requests = [dict(r, key=1 if r["currency_in"] == "USDT" else 2) for r in REQUESTS]
    completion = [{"is_total": False, "key": 1, "n": 2, "p": [1, 2, 3]}, {"is_total": True, "key": None, "n": 2,
                                                                           "p": [1, 2, 3]}]
    result = domain.shape_stats(START, END, "direction", requests, completion, TURNOVER)
    assert [g["direction_id"] for g in result["groups"]] == [1, 2]
    one = result["groups"][0]
    assert one["currency_in"] == "USDT" and one["turnover"][0]["day"] == "2024-05-01"
    assert result["group"] == "direction" and result["from"] == START.isoformat()


def test_empty_window():
    result = domain.shape_stats(START, END, "day", [], [], [])
    assert result["totals"]["requests"] == 0 and result["totals"]["never_paid_share"] is None
    assert result["groups"] == []


def test_export_columns_start_with_the_issues_list():
    issue = ["id", "created_at", "updated_at", "status", "exchange_type", "currency_in", "amount_in",
             "currency_out", "amount_out", "rate_in", "rate_out", "fee", "email", "recipient", "partner_code",
             "payment_flag"]
    assert store.HEADER[:len(issue)] == issue


def test_only_free_text_is_formula_escaped():
    escaped = {name for name, expr in store.COLUMNS if "csv_safe" in expr}
    assert escaped == {"email", "recipient", "partner_code", "payout_status"}


def _fake_mogrify(sql, params):
    return sql % tuple("'%s'" % p for p in params)


def test_copy_statement_uses_the_encoding_separator():
    utf8 = store.copy_sql(report_contract.ExportQuerySchema().load({}), _fake_mogrify)
    cp1251 = store.copy_sql(report_contract.ExportQuerySchema().load({"encoding": "windows-1251"}), _fake_mogrify)
    assert utf8.startswith("COPY (SELECT ") and "DELIMITER ','" in utf8 and "HEADER true" in utf8
    assert "DELIMITER ';'" in cp1251
    assert "ORDER BY o.id) TO STDOUT" in utf8


URL = "postgresql://rep:s3cret@db.internal:6432/exchanger?sslmode=require&connect_timeout=3"


def test_psql_job_takes_the_connection_from_the_environment_not_argv():
    job = export.psql_job("SELECT 1", "FORMAT csv", URL, statement_timeout_ms=5000, psql="/usr/bin/psql")
    assert job.engine == "psql" and "/usr/bin/psql" in job.argv
    assert not any("s3cret" in a or "db.internal" in a for a in job.argv)
    assert {k: job.env[k] for k in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE",
                                     "PGCONNECT_TIMEOUT", "PGAPPNAME", "PGCLIENTENCODING")} == {
        "PGHOST": "db.internal", "PGPORT": "6432", "PGUSER": "rep", "PGPASSWORD": "s3cret", "PGDATABASE": "exchanger",
        "PGSSLMODE": "require", "PGCONNECT_TIMEOUT": "3", "PGAPPNAME": "reporting-export", "PGCLIENTENCODING": "UTF8"}
    assert job.env["PGOPTIONS"] == "-c statement_timeout=5000"
    assert "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;" in job.script
    assert "\\copy (SELECT 1) TO PSTDOUT WITH (FORMAT csv)\n" in job.script
    assert job.rows_from("BEGIN\nCOPY 12\nCOMMIT\n") == 12


def test_psql_is_not_used_when_it_cannot_be():
    assert export.psql_job("SELECT 1\n", "FORMAT csv", URL, psql="/usr/bin/psql") is None   # \copy is one line
    assert export.psql_job("SELECT 1", "FORMAT csv", "postgresql://h/db?bogus_param=1", psql="/usr/bin/psql") is None
    job = export.make_job("auto", "SELECT 1\n", "FORMAT csv", URL)
    assert job.engine == "python" and job.env["REPORTING_EXPORT_DATABASE_URL"] == URL
    assert job.script == "COPY (SELECT 1\n) TO STDOUT WITH (FORMAT csv)" and job.rows_from("x\nrows=7\n") == 7
    with pytest.raises(export.ExportFailed):
        export.make_job("psql", "SELECT 1\n", "FORMAT csv", URL)


def test_export_file_name():
    assert export.filename(datetime.datetime(2024, 5, 1, 13, 2, 3)) == "orders-20240501-130203.csv"
