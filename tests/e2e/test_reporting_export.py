"""Reporting end to end, every process running as `make run` starts them: orders created and moved through the
gateway appear in the CSV export with the owners' values; filters, formula escaping and Windows-1251 through
the gateway; roles; statistics; and the rebuild command restoring a wiped read model."""
import csv
import datetime
import io
import subprocess
import uuid
from decimal import Decimal as D

import pytest
import requests

from tests.conftest import ROOT, eventually

pytestmark = pytest.mark.timeout(180)

CSV = "/api/v1/admin/reports/orders.csv"
UTC = datetime.timezone.utc


def export(system, token, **params):
    return system.api("GET", CSV, token=token, params=params)


def rows_of(response, encoding="utf-8", delimiter=","):
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode(encoding), newline=""), delimiter=delimiter))


def create(system, direction, email, amount=None, recipient=None, **extra):
    body = {"direction_id": direction["id"], "amount_in": amount or direction["min_amount"], "email": email,
            "recipient": recipient or "WALLET-%s" % uuid.uuid4().hex[:6]}
    body.update(extra)
    r = system.api("POST", "/api/v1/orders", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def act(system, token, order, action, **body):
    r = system.api("POST", "/api/v1/admin/orders/%d/%s" % (order["id"], action), token=token, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def exported(system, token, email, count, **params):
    """The export for one e-mail once the read model has caught up with `count` orders at their last state."""
    def check():
        rows = rows_of(export(system, token, email=email, **params))
        assert len(rows) == count, "%d rows" % len(rows)
        for r in rows:
            current = system.api("GET", "/api/v1/admin/orders/%s" % r["id"], token=token).json()
            assert r["status"] == current["status"], "order %s still %s" % (r["id"], r["status"])
        return rows
    return eventually(check, timeout=20, interval=0.2, message="read model caught up")


def staff(system, role):
    """A fresh staff member created with the CLI, as an admin would; returns a bearer token."""
    username = "rep-%s-%s" % (role, uuid.uuid4().hex[:8])
    env = dict(system.env, STAFF_PW="pw-%s-long-enough" % username)
    subprocess.run([".venv/bin/python", "-m", "gateway.cli", "create-staff", username, "--role", role,
                    "--password-env", "STAFF_PW"], cwd=ROOT, env=env, check=True, capture_output=True)
    return system.login(username, env["STAFF_PW"])


def utc_seconds(iso):
    return datetime.datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if iso else ""


@pytest.fixture(scope="module")
def flow(system, directions, admin_token):
    """Four orders of one customer, moved through the system: completed by hand, canceled by the customer,
    canceled by an operator, and one left new with a partner code."""
    email = "report-%s@example.com" % uuid.uuid4().hex[:10]
    manual = create(system, directions["manual"], email, amount="150")
    assert system.api("POST", "/api/v1/orders/%s/paid" % manual["token"]).status_code == 200
    act(system, admin_token, manual, "process", notice="We see your payment.")
    act(system, admin_token, manual, "finalize", notice="Sent.")
    gave_up = create(system, directions["semi_auto"], email)
    assert system.api("POST", "/api/v1/orders/%s/cancel" % gave_up["token"]).status_code == 200
    refused = create(system, directions["auto"], email)
    act(system, admin_token, refused, "cancel", reason="Suspicious.")
    waiting = create(system, directions["auto"], email, amount=str(D(directions["auto"]["min_amount"]) + 5),
                     partner_code="e2e-partner")
    orders = {o["id"]: o for o in (manual, gave_up, refused, waiting)}
    rows = exported(system, admin_token, email, 4)
    return {"email": email, "orders": orders, "rows": {int(r["id"]): r for r in rows}, "manual": manual,
            "waiting": waiting}


def test_moved_orders_appear_with_the_owners_values(system, admin_token, flow):
    assert {r["status"] for r in flow["rows"].values()} == {"completed", "canceled", "new"}
    for order_id, r in flow["rows"].items():
        o = system.api("GET", "/api/v1/admin/orders/%d" % order_id, token=admin_token).json()
        for key in ("status", "exchange_type", "currency_in", "amount_in", "currency_out", "amount_out", "rate_in",
                    "rate_out", "fee", "email", "recipient", "fee_amount"):
            assert r[key] == str(o[key]), (key, r[key], o[key])
        assert r["partner_code"] == (o["partner_code"] or "") and r["payment_flag"] == (o["payment_flag"] or "")
        assert r["direction_id"] == str(o["direction_id"])
        assert r["created_at"] == utc_seconds(o["created_at"]) and r["updated_at"] == utc_seconds(o["updated_at"])
        assert r["completed_at"] == utc_seconds(o["completed_at"])
    assert flow["rows"][flow["manual"]["id"]]["completed_at"] != ""


def test_filters_narrow_through_the_gateway(system, admin_token, flow, directions):
    def ids(**params):
        params.setdefault("email", flow["email"])
        return {int(r["id"]) for r in rows_of(export(system, admin_token, **params))}
    assert ids(status="completed") == {flow["manual"]["id"]}
    assert ids(status="completed,new") == {flow["manual"]["id"], flow["waiting"]["id"]}
    assert ids(exchange_type="auto") == {i for i, o in flow["orders"].items() if o["exchange_type"] == "auto"}
    assert ids(direction_id=directions["manual"]["id"]) == {flow["manual"]["id"]}
    assert ids(currency_in=directions["semi_auto"]["currency_in"]) == \
        {i for i, o in flow["orders"].items() if o["currency_in"] == directions["semi_auto"]["currency_in"]}
    assert ids(partner_code="e2e-partner") == {flow["waiting"]["id"]}
    assert ids(amount_in_min="150", amount_in_max="150") == {flow["manual"]["id"]}
    tomorrow = (datetime.datetime.now(UTC) + datetime.timedelta(days=1)).date().isoformat()
    assert ids(created_from=tomorrow) == set() and len(ids(created_to=tomorrow)) == 4
    assert ids(updated_from=tomorrow) == set()
    assert ids(status="canceled", exchange_type="auto") == \
        {i for i, o in flow["orders"].items() if o["exchange_type"] == "auto" and i != flow["waiting"]["id"]}
    everything = set(flow["orders"])
    assert ids(email=flow["email"].upper()) == everything  # case-insensitive
    assert {int(r["id"]) for r in rows_of(export(system, admin_token, status="new"))} >= {flow["waiting"]["id"]}


def test_formula_injection_is_escaped_and_windows_1251_decodes(system, admin_token, directions):
    email = "=inj-%s@example.com" % uuid.uuid4().hex[:8]
    recipients = ['=HYPERLINK("http://evil.example","click")', "+1", "@SUM(1+1)", "-2+3", "Иван Петров"]
    made = [create(system, directions["manual"], email, recipient=text) for text in recipients]
    rows = {int(r["id"]): r for r in exported(system, admin_token, email, len(made))}
    for order, text in zip(made, recipients):
        expected = text if text == "Иван Петров" else "'" + text
        assert rows[order["id"]]["recipient"] == expected
        assert rows[order["id"]]["email"] == "'" + email
    response = export(system, admin_token, email=email, encoding="windows-1251")
    assert response.headers["Content-Type"] == "text/csv; charset=windows-1251"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="orders-')
    cp1251 = {int(r["id"]): r for r in rows_of(response, "cp1251", ";")}
    assert cp1251[made[-1]["id"]]["recipient"] == "Иван Петров"
    assert response.content.decode("cp1251").splitlines()[0].startswith("id;created_at;")


def test_who_may_export(system, admin_token):
    assert export(system, None).status_code == 401
    assert export(system, admin_token, status="nonsense").status_code == 422
    assert export(system, admin_token, limit="5").json()["fields"] == {"limit": ["Unknown field."]}
    for role in ("analyst", "operator"):
        token = staff(system, role)
        r = export(system, token, email="nobody-%s@example.com" % role)
        assert r.status_code == 200 and r.text.startswith("id,created_at,")


def test_statistics(system, admin_token, flow):
    today = datetime.datetime.now(UTC).date()
    params = {"from": today.isoformat(), "to": (today + datetime.timedelta(days=1)).isoformat()}
    r = system.api("GET", "/api/v1/admin/reports/stats", token=admin_token, params=dict(params, group="day"))
    assert r.status_code == 200, r.text
    body = r.json()
    totals = body["totals"]
    assert totals["requests"] >= 4 and totals["by_status"]["completed"] >= 1 and totals["never_paid"] >= 1
    assert 0 < totals["never_paid_share"] <= 1
    assert totals["completion_seconds"]["count"] >= 1 and totals["completion_seconds"]["p50"] >= 0
    manual = flow["manual"]
    assert D(totals["turnover_in"][manual["currency_in"]]) >= D(manual["amount_in"])
    assert D(totals["margin"][manual["currency_out"]]) >= D(manual["fee_amount"])
    assert today.isoformat() in [g["day"] for g in body["groups"]]
    by_direction = system.api("GET", "/api/v1/admin/reports/stats", token=admin_token,
                              params=dict(params, group="direction")).json()
    assert manual["direction_id"] in [g["direction_id"] for g in by_direction["groups"]]
    assert system.api("GET", "/api/v1/admin/reports/stats", token=admin_token,
                      params={"group": "week"}).status_code == 422
    assert system.api("GET", "/api/v1/admin/reports/stats").status_code == 401


def test_paid_and_paid_out_order_shows_its_payout(system, admin_token, directions):
    auto = next(d for d in system.api("GET", "/api/v1/directions").json()
                if d["exchange_type"] == "auto" and d["currency_in"] == "USDT")
    sandbox = lambda method, path, **kw: requests.request(method, system.sandbox_url + path, timeout=30, **kw)  # noqa
    accounts = {}
    for currency, balance in ((auto["currency_out"], "0"), (auto["currency_in"], "1000")):
        r = sandbox("POST", "/api/accounts", json={"currency": currency, "balance": balance, "owner": "e2e-rep"})
        assert r.status_code == 201, r.text
        accounts[currency] = r.json()["account"]
    email = "paid-%s@example.com" % uuid.uuid4().hex[:8]
    order = create(system, auto, email, amount="25", recipient=accounts[auto["currency_out"]])
    pay_to = order["pay_to"]
    r = sandbox("POST", "/api/transfers", json={"from_account": accounts[auto["currency_in"]],
                                                 "to_account": pay_to["account"], "amount": pay_to["amount"],
                                                 "currency": pay_to["currency"], "reference": pay_to["reference"]})
    assert r.status_code == 201, r.text

    def done():
        [row] = rows_of(export(system, admin_token, email=email))
        assert row["status"] == "completed" and row["payout_status"] == "sent", row
        return row
    row = eventually(done, timeout=40, interval=0.3, message="order paid out and reported")
    assert D(row["amount_received"]) == D("25") and row["completed_at"]


def test_rebuild_restores_a_wiped_read_model(system, admin_token, flow):
    # Only orders the owner has: other suites may publish synthetic order events on the shared test broker.
    owned = {str(r["id"]) for r in system.sql("SELECT id FROM orders.orders")}
    before = [r for r in rows_of(export(system, admin_token)) if r["id"] in owned]
    assert len(before) >= 4
    system.sql("TRUNCATE reporting.orders")
    assert rows_of(export(system, admin_token, email=flow["email"])) == []
    done = subprocess.run([".venv/bin/python", "-m", "services.reporting.rebuild", "--page-size", "7"], cwd=ROOT,
                          env=system.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    after = rows_of(export(system, admin_token))
    # Orders created by other tests meanwhile may be newer; every row we had is back exactly as it was.
    after_by_id = {r["id"]: r for r in after}
    changed = [r for r in before if after_by_id.get(r["id"]) != r]
    assert not changed or all(after_by_id.get(r["id"]) and after_by_id[r["id"]]["updated_at"] >= r["updated_at"]
                              for r in changed), changed[:3]
    assert {int(r["id"]) for r in rows_of(export(system, admin_token, email=flow["email"]))} == set(flow["orders"])
