"""End to end over HTTP (docs/architecture.md, "Stuck work"): a payment matched to an order that was canceled meanwhile,
made directly in payments' tables an hour old, is listed by /api/v1/admin/stuck for an analyst and an operator;
only the operator repairs it (to the unmatched list, reason `stuck`), and then it is gone."""
import subprocess
import uuid

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(120)


def staff(system, role):
    username = "%s-%s" % (role, uuid.uuid4().hex[:8])
    env = dict(system.env, STAFF_PW="pw-%s-long-enough" % username)
    subprocess.run([".venv/bin/python", "-m", "gateway.cli", "create-staff", username, "--role", role,
                    "--password-env", "STAFF_PW"], cwd=ROOT, env=env, check=True, capture_output=True)
    return system.login(username, env["STAFF_PW"])


def stuck_payment(system):
    """A canceled order's copy with a payment still matched to it, both an hour old (past the default age)."""
    order_id = 900000000 + uuid.uuid4().int % 100000000
    reference = "EX" + uuid.uuid4().hex.upper().translate(str.maketrans("01", "ZY"))[:10]
    account = system.sql("SELECT id, system, account, currency FROM payments.accounts ORDER BY id LIMIT 1")[0]
    system.sql(
        "INSERT INTO payments.orders (id, version, reference, status, exchange_type, pay_system, pay_account, "
        "currency_in, amount_in, currency_out, amount_out, rate_in, rate_out, fee, recipient, expires_at, updated_at) "
        "VALUES (%s, 3, %s, 'canceled', 'auto', %s, %s, %s, 10, %s, 9, 1, 0.9, 0, 'R-1', now(), "
        "now() - interval '1 hour')",
        (order_id, reference, account["system"], account["account"], account["currency"], account["currency"]))
    payment = system.sql(
        "INSERT INTO payments.payments (account_id, external_id, amount, currency, reference, match_reference, "
        "occurred_at, status, order_id, updated_at) VALUES (%s, %s, 10, %s, %s, %s, now() - interval '1 hour', "
        "'matched', %s, now() - interval '1 hour') RETURNING id",
        (account["id"], "e2e-stuck-%s" % uuid.uuid4().hex, account["currency"], reference, reference, order_id))
    return order_id, payment[0]["id"]


def test_stuck_work_is_listed_for_readers_and_repaired_by_an_operator(system):
    order_id, payment_id = stuck_payment(system)
    analyst, operator = staff(system, "analyst"), staff(system, "operator")
    assert system.api("GET", "/api/v1/admin/stuck").status_code == 401

    listing = system.api("GET", "/api/v1/admin/stuck", token=analyst)
    assert listing.status_code == 200, listing.text
    assert listing.json()["unavailable"] == []
    [item] = [i for i in listing.json()["items"] if i["kind"] == "payment_on_unpaid_order" and i["id"] == payment_id]
    assert item["order_id"] == order_id and item["repair"] == ["unmatch"] and item["service"] == "payments"
    assert item["age_seconds"] >= 3590 and "canceled" in item["detail"]

    body = {"kind": "payment_on_unpaid_order", "id": payment_id, "action": "unmatch"}
    assert system.api("POST", "/api/v1/admin/stuck/repair", token=analyst, json=body).status_code == 403
    wrong = system.api("POST", "/api/v1/admin/stuck/repair", token=operator, json=dict(body, action="reconcile"))
    assert wrong.status_code == 422, wrong.text
    unknown = system.api("POST", "/api/v1/admin/stuck/repair", token=operator, json=dict(body, extra=1))
    assert unknown.status_code == 422

    done = system.api("POST", "/api/v1/admin/stuck/repair", token=operator, json=body)
    assert done.status_code == 200, done.text
    assert done.json()["payment"]["status"] == "unmatched" and done.json()["payment"]["reason_code"] == "stuck"
    again = system.api("POST", "/api/v1/admin/stuck/repair", token=operator, json=body)
    assert again.status_code == 409, again.text

    after = system.api("GET", "/api/v1/admin/stuck", token=operator).json()["items"]
    assert not [i for i in after if i["kind"] == "payment_on_unpaid_order" and i["id"] == payment_id]
    unmatched = system.api("GET", "/api/v1/admin/payments/unmatched", token=operator, params={"limit": 500}).json()
    assert [p["reason_code"] for p in unmatched["items"] if p["id"] == payment_id] == ["stuck"]
    audit = system.sql("SELECT actor, outcome FROM payments.audit_log WHERE action = 'repair_stuck_work' "
                       "AND payment_id = %s ORDER BY id", (payment_id,))
    assert [a["outcome"] for a in audit][-1] == "ok"
    assert "/api/v1/admin/stuck/repair" in system.api("GET", "/api/v1/openapi.json").json()["paths"]
