"""The CSV export on the reporting service's internal HTTP endpoint, against the real PostgreSQL: values, every
filter alone and combined, formula escaping and RFC 4180 quoting, Windows-1251, one snapshot while rows are
written, a client that goes away, the concurrency limit and failures."""
import csv
import datetime
import io
import socket
import uuid
from decimal import Decimal

import pytest
import requests

from services.reporting import export, metrics, store
from tests.conftest import TEST_DATABASE_URL, eventually
from tests.unit.reporting import factories as f

UTC = datetime.timezone.utc
DAY = datetime.timedelta(days=1)
BASE = datetime.datetime(2011, 3, 1, 8, 0, tzinfo=UTC)


def snap(order_id, day, status="new", kind="auto", direction=(1, "USDT", "EUR"), amount_in="100",
         amount_out="91.54", email=None, partner=None, updated_hours=1, **changes):
    created = BASE + day * DAY
    return f.order(order_id, version=2, status=status, exchange_type=kind, direction_id=direction[0],
                   currency_in=direction[1], currency_out=direction[2], amount_in=amount_in, amount_out=amount_out,
                   email=email or "c%s@example.com" % order_id, partner_code=partner, created_at=created.isoformat(),
                   updated_at=(created + datetime.timedelta(hours=updated_hours)).isoformat(), **changes)


D1, D2, D3 = (1, "USDT", "EUR"), (2, "USD", "RUB"), (3, "EUR", "USDT")


@pytest.fixture
def dataset(seed, ids):
    """Twelve orders that differ in every filtered column; two share an e-mail in different case."""
    shared = "shared-%s@Example.com" % uuid.uuid4().hex[:8]
    specs = [
        dict(day=0, status="new", kind="auto", direction=D1, amount_in="10", amount_out="9.15", partner="pa"),
        dict(day=1, status="completed", kind="auto", direction=D1, amount_in="50.5", amount_out="46.22",
             email=shared, completed_at=(BASE + 1 * DAY + datetime.timedelta(minutes=20)).isoformat()),
        dict(day=2, status="canceled", kind="semi_auto", direction=D2, amount_in="100", amount_out="9450",
             partner="pb"),
        dict(day=3, status="expired", kind="manual", direction=D3, amount_in="1000", amount_out="1064.65"),
        dict(day=4, status="paid", kind="semi_auto", direction=D2, amount_in="20", amount_out="1890",
             partner="pa", payment_flag="over", updated_hours=30),
        dict(day=5, status="completed", kind="manual", direction=D3, amount_in="250", amount_out="266.16",
             email=shared.lower(), partner="pb", completed_at=(BASE + 6 * DAY).isoformat()),
        dict(day=6, status="deleted", kind="auto", direction=D1, amount_in="75", amount_out="68.65"),
        dict(day=7, status="new", kind="manual", direction=D3, amount_in="30", amount_out="31.94", partner="pa"),
        dict(day=8, status="payout_error", kind="auto", direction=D1, amount_in="500", amount_out="457.7"),
        dict(day=9, status="processing", kind="manual", direction=D3, amount_in="60", amount_out="63.88",
             updated_hours=50),
        dict(day=10, status="completed", kind="semi_auto", direction=D2, amount_in="15.75", amount_out="1488.37",
             partner="pa", completed_at=(BASE + 10 * DAY + datetime.timedelta(hours=2)).isoformat()),
        dict(day=11, status="canceled", kind="auto", direction=D1, amount_in="5", amount_out="4.57"),
    ]
    return seed(*[snap(ids(), **spec) for spec in specs])


def _time(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


# name -> (query parameters, predicate over a snapshot): the predicate is the filter's meaning in plain Python.
def cases(shared_email):
    t = lambda d, h=0: (BASE + d * DAY + datetime.timedelta(hours=h))  # noqa: E731
    return {
        "status one": ({"status": "completed"}, lambda s: s["status"] == "completed"),
        "status several": ({"status": "new,paid"}, lambda s: s["status"] in ("new", "paid")),
        "status deleted": ({"status": "deleted"}, lambda s: s["status"] == "deleted"),
        "no status: all but deleted": ({}, lambda s: s["status"] != "deleted"),
        "exchange type": ({"exchange_type": "manual"}, lambda s: s["exchange_type"] == "manual"),
        "direction": ({"direction_id": "2"}, lambda s: s["direction_id"] == 2 and s["status"] != "deleted"),
        "currency in": ({"currency_in": "USD"}, lambda s: s["currency_in"] == "USD"),
        "currency out (any case)": ({"currency_out": "eur"}, lambda s: s["currency_out"] == "EUR"
                                    and s["status"] != "deleted"),
        "created range (dates)": ({"created_from": "2011-03-03", "created_to": "2011-03-05"},
                                  lambda s: t(2) <= _time(s["created_at"]) < t(5)),
        "created from (date-time)": ({"created_from": t(9).isoformat()},
                                     lambda s: _time(s["created_at"]) >= t(9)),
        "updated range": ({"updated_from": t(5, 6).isoformat(), "updated_to": t(11).isoformat()},
                          lambda s: t(5, 6) <= _time(s["updated_at"]) < t(11) and s["status"] != "deleted"),
        "e-mail (any case)": ({"email": shared_email.upper()}, lambda s: s["email"].lower() == shared_email.lower()),
        "partner": ({"partner_code": "pa"}, lambda s: s["partner_code"] == "pa"),
        "amount in range": ({"amount_in_min": "20", "amount_in_max": "250"},
                            lambda s: Decimal(20) <= Decimal(s["amount_in"]) <= Decimal(250)
                            and s["status"] != "deleted"),
        "amount out min": ({"amount_out_min": "1000"}, lambda s: Decimal(s["amount_out"]) >= 1000),
        "amount out max": ({"amount_out_max": "46.22"}, lambda s: Decimal(s["amount_out"]) <= Decimal("46.22")
                           and s["status"] != "deleted"),
        # combined
        "status + type + amount": ({"status": "completed,canceled", "exchange_type": "auto", "amount_in_min": "6"},
                                   lambda s: s["status"] in ("completed", "canceled")
                                   and s["exchange_type"] == "auto" and Decimal(s["amount_in"]) >= 6),
        "currency + created + partner": ({"currency_in": "EUR", "created_from": "2011-03-02", "partner_code": "pb"},
                                         lambda s: s["currency_in"] == "EUR" and _time(s["created_at"]) >= t(1)
                                         and s["partner_code"] == "pb"),
        "everything at once": ({"status": "completed", "exchange_type": "semi_auto", "direction_id": "2",
                                "currency_in": "USD", "currency_out": "RUB", "created_from": "2011-03-10",
                                "created_to": "2011-03-12", "updated_from": "2011-03-11", "partner_code": "pa",
                                "amount_in_min": "15", "amount_in_max": "16", "amount_out_min": "1000",
                                "amount_out_max": "1500"},
                               lambda s: s["status"] == "completed" and s["exchange_type"] == "semi_auto"
                               and s["partner_code"] == "pa" and s["direction_id"] == 2),
    }


def test_every_filter_narrows_alone_and_combined(reporting, dataset):
    mine = {s["id"]: s for s in dataset}
    shared = dataset[1]["email"]
    for name, (params, predicate) in cases(shared).items():
        expected = {i for i, s in mine.items() if predicate(s)}
        _, rows = reporting.rows(**params)
        got = {int(r["id"]) for r in rows} & set(mine)
        assert got == expected, "%s: got %s, expected %s" % (name, sorted(got), sorted(expected))
        assert expected, "%s: the data set must have a match" % name
        if params:
            assert len(expected) < len(mine), "%s must narrow the set" % name
        # Every row, ours or another test's, fits the filter as the file shows it.
        for r in rows:
            if "status" in params:
                assert r["status"] in params["status"].split(","), name
            if "exchange_type" in params:
                assert r["exchange_type"] == params["exchange_type"], name
            if "amount_in_min" in params:
                assert Decimal(r["amount_in"]) >= Decimal(params["amount_in_min"]), name
    assert cases(shared)["everything at once"][1](dataset[10])


def test_rows_carry_the_owners_values(reporting_engine, dataset):
    reporting = reporting_engine
    order = dataset[1]
    header, rows = reporting.rows(email=order["email"], status="completed")
    assert header[:16] == store.HEADER[:16]
    (r,) = [r for r in rows if int(r["id"]) == order["id"]]
    assert r == {
        "id": str(order["id"]), "created_at": "2011-03-02 08:00:00", "updated_at": "2011-03-02 09:00:00",
        "status": "completed", "exchange_type": "auto", "currency_in": "USDT", "amount_in": "50.5",
        "currency_out": "EUR", "amount_out": "46.22", "rate_in": "1", "rate_out": "0.92", "fee": "0.5",
        "email": order["email"], "recipient": order["recipient"], "partner_code": "", "payment_flag": "",
        "direction_id": "1", "fee_amount": "0.46", "amount_received": "", "completed_at": "2011-03-02 08:20:00",
        "payout_status": "", "reference": order["reference"]}


NASTY = ['=HYPERLINK("http://evil.example","click")', "+1", "@SUM(1+1)", "\tTAB", "-2+3", "\rCR", "=1+2"]


def test_formula_cells_are_escaped_and_quoting_is_rfc4180(reporting_engine, seed, ids):
    reporting = reporting_engine
    tag = uuid.uuid4().hex[:8]
    email = "inj-%s@example.com" % tag
    orders = seed(*[snap(ids(), 1, recipient=text, email=email) for text in NASTY],
                  snap(ids(), 1, recipient='a,b "quoted"\nsecond line', email=email),
                  snap(ids(), 1, recipient="plain", email=email, partner="+p"),
                  snap(ids(), 1, recipient="x", email="=cmd-%s@example.com" % tag))
    response = reporting.export(email=email)
    assert response.status_code == 200
    body = response.content.decode("utf-8")
    rows = {int(r["id"]): r for r in csv.DictReader(io.StringIO(body, newline=""))}
    for order, text in zip(orders, NASTY):
        assert rows[order["id"]]["recipient"] == "'" + text
    assert rows[orders[7]["id"]]["recipient"] == 'a,b "quoted"\nsecond line'
    assert '"a,b ""quoted""\nsecond line"' in body
    assert rows[orders[8]["id"]]["recipient"] == "plain" and rows[orders[8]["id"]]["partner_code"] == "'+p"
    assert all(not r["amount_in"].startswith("'") for r in rows.values())
    other = reporting.rows(email="=cmd-%s@example.com" % tag)[1]
    assert [r["email"] for r in other] == ["'=cmd-%s@example.com" % tag]


def test_windows_1251_uses_semicolons_and_decodes(reporting_engine, seed, ids):
    reporting = reporting_engine
    email = "ru-%s@example.com" % uuid.uuid4().hex[:8]
    ivan, smile = seed(snap(ids(), 2, recipient="Иван Петров; счёт", email=email),
                       snap(ids(), 2, recipient="🙂 smile", email=email))
    response = reporting.export(email=email, encoding="windows-1251")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=windows-1251"
    text = response.content.decode("cp1251")
    assert text.splitlines()[0].startswith("id;created_at;updated_at;status;")
    rows = {int(r["id"]): r for r in csv.DictReader(io.StringIO(text, newline=""), delimiter=";")}
    assert rows[ivan["id"]]["recipient"] == "Иван Петров; счёт"
    assert rows[smile["id"]]["recipient"] == "? smile"  # no such character in Windows-1251
    utf8 = reporting.export(email=email).content.decode("utf-8")
    assert "🙂 smile" in utf8 and utf8.splitlines()[0].startswith("id,created_at,")


@pytest.fixture
def many(db):
    """50,000 rows in one id block (several MB of CSV: more than the pipe and socket buffers hold)."""
    base = 3 * 10**12 + (uuid.uuid4().int % 10**5) * 10**6
    with db.transaction() as cur:
        cur.execute(
            "INSERT INTO orders (id, version, status, exchange_type, direction_id, currency_in, currency_out, "
            "amount_in, amount_out, rate_in, rate_out, email, recipient, created_at, updated_at) "
            "SELECT %s + g, 1, 'new', 'auto', 1, 'USDT', 'EUR', 100, 91.54, 1, 0.92, "
            "'bulk' || g || '@example.com', 'ACC-' || g, timestamptz '2012-01-01' + g * interval '1 minute', "
            "timestamptz '2012-01-01' + g * interval '1 minute' FROM generate_series(1, 50000) g", (base,))
    yield base
    with db.transaction() as cur:
        cur.execute("DELETE FROM orders WHERE id > %s AND id < %s", (base, base + 10**6))


def export_backends(db):
    return db.fetchone("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'reporting-export' "
                       "AND datname = current_database()")["n"]


def test_export_is_one_snapshot_while_rows_are_written(reporting_engine, db, many):
    reporting = reporting_engine
    params = {"created_from": "2012-01-01", "created_to": "2012-12-31"}
    response = reporting.export(stream=True, **params)
    assert response.status_code == 200
    chunks = response.iter_content(1 << 16)
    first = next(chunks)
    # The export is still running (blocked on the pipe we are not reading) when the new rows commit.
    assert db.fetchone("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'reporting-export' "
                       "AND state = 'active' AND query LIKE 'COPY%%'")["n"] >= 1
    with db.transaction() as cur:
        cur.execute("INSERT INTO orders (id, version, status, exchange_type, direction_id, currency_in, "
                    "currency_out, amount_in, amount_out, rate_in, rate_out, email, recipient, created_at, "
                    "updated_at) SELECT %s + 60000 + g, 1, 'new', 'auto', 1, 'USDT', 'EUR', 1, 1, 1, 1, 'x', 'y', "
                    "timestamptz '2012-06-01', now() FROM generate_series(1, 100) g", (many,))
        cur.execute("UPDATE orders SET status = 'expired' WHERE id = %s", (many + 1,))
    body = first + b"".join(chunks)
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
    mine = [r for r in rows if many < int(r["id"]) < many + 10**6]
    assert len(mine) == 50000
    assert [r["status"] for r in mine if int(r["id"]) == many + 1] == ["new"]
    after = [r for r in reporting.rows(**params)[1] if many < int(r["id"]) < many + 10**6]
    assert len(after) == 50100


def test_a_client_that_goes_away_ends_the_export(reporting_engine, db, many):
    reporting = reporting_engine
    aborted = metrics.EXPORTS.labels("utf-8", "aborted")._value.get()
    host, port = reporting.url[len("http://"):].split(":")
    client = socket.create_connection((host, int(port)), timeout=10)
    client.sendall(b"GET /orders.csv?created_from=2012-01-01 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert client.recv(1 << 16).startswith(b"HTTP/1.1 200")
    assert export_backends(db) >= 1
    client.close()  # as a browser does when the user cancels the download
    eventually(lambda: export_backends(db) == 0, timeout=15, message="export query gone")
    eventually(lambda: metrics.EXPORTS.labels("utf-8", "aborted")._value.get() == aborted + 1, timeout=10,
               message="aborted export counted")
    assert metrics.EXPORTS_IN_PROGRESS._value.get() == 0


def test_at_most_max_exports_run_at_once(reporting, many):
    first = reporting.export(stream=True, created_from="2012-01-01")
    second = reporting.export(stream=True, created_from="2012-01-01")
    try:
        assert first.status_code == second.status_code == 200
        third = reporting.export(created_from="2012-01-01")
        assert third.status_code == 429 and third.headers["Retry-After"] == "5"
        assert third.json()["error"] == "too_many_requests"
    finally:
        first.close()
        second.close()
    eventually(lambda: reporting.export(status="new", email="nobody@example.com").status_code == 200,
               timeout=15, message="slots free again")


def test_export_metrics_count_exports_and_rows(reporting, dataset):
    ok = metrics.EXPORTS.labels("utf-8", "ok")._value.get()
    rows = metrics.EXPORT_ROWS_TOTAL._value.get()
    _, exported = reporting.rows(partner_code="pa")
    eventually(lambda: metrics.EXPORTS.labels("utf-8", "ok")._value.get() == ok + 1, timeout=5,
               message="export counted")
    assert metrics.EXPORT_ROWS_TOTAL._value.get() == rows + len(exported)


def test_bad_filters_are_refused(reporting):
    response = reporting.export(status="paid,unknown", amount_in_min="-5", extra="1")
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_failed"
    assert set(body["fields"]) == {"status", "amount_in_min", "extra"}


def test_internal_token_when_configured(container_factory, reporting_config):
    from services.reporting.service import ReportingService
    from tests.interface.reporting.conftest import free_port
    config = dict(reporting_config, INTERNAL_TOKEN="s3cret-token", WEB_SERVER_ADDRESS="127.0.0.1:%d" % free_port())
    container_factory(ReportingService, config).start()
    url = "http://%s/orders.csv" % config["WEB_SERVER_ADDRESS"]
    assert requests.get(url, params={"email": "x@example.com"}, timeout=10).status_code == 403
    assert requests.get(url, params={"email": "x@example.com"}, headers={"X-Internal-Token": "wrong"},
                        timeout=10).status_code == 403
    ok = requests.get(url, params={"email": "x@example.com"}, headers={"X-Internal-Token": "s3cret-token"},
                      timeout=10)
    assert ok.status_code == 200 and ok.text.startswith("id,")


def test_a_failure_before_any_output_is_an_error_not_a_file(engine):
    job = export.make_job(engine, "SELECT 1 / 0", "FORMAT csv", TEST_DATABASE_URL)
    stream = export.ExportStream(job)
    with pytest.raises(export.ExportFailed) as exc:
        stream.open()
    assert "division by zero" in str(exc.value)
    assert stream.proc.poll() is not None and stream.outcome == "error"


def test_a_failure_mid_way_breaks_the_stream(engine):
    select = "SELECT CASE WHEN g < 300000 THEN g ELSE 1 / (g - g) END FROM generate_series(1, 400000) g"
    stream = export.ExportStream(export.make_job(engine, select, "FORMAT csv", TEST_DATABASE_URL)).open()
    received = 0
    with pytest.raises(export.ExportFailed):
        for chunk in stream:
            received += len(chunk)
    stream.close()
    assert received > 0 and stream.outcome == "error"


def test_the_row_count_comes_back_from_either_engine(engine):
    job = export.make_job(engine, "SELECT g FROM generate_series(1, 1234) g", "FORMAT csv, HEADER true",
                          TEST_DATABASE_URL)
    stream = export.ExportStream(job).open()
    body = b"".join(stream)
    stream.close()
    assert stream.rows == 1234 and stream.outcome == "ok" and job.engine == engine
    assert body.splitlines()[:2] == [b"g", b"1"] and len(body.splitlines()) == 1235
