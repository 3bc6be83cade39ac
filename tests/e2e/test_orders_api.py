"""The walking skeleton's HTTP contract, driven against all processes started as `make run` starts them."""
import subprocess
import threading
import uuid

import pytest

from tests.conftest import ROOT, eventually
from tests.e2e.conftest import ORDERS_METRICS_PORT

ORDER_FIELDS = {"id", "token", "status", "exchange_type", "currency_in", "amount_in", "currency_out", "amount_out",
                "rate_in", "rate_out", "payment_flag", "pay_to", "expires_at", "created_at"}


def new_order(system, direction, amount=None, **extra):
    body = {"direction_id": direction["id"], "amount_in": amount or direction["min_amount"],
            "email": "customer-%s@example.com" % uuid.uuid4().hex[:8], "recipient": "WALLET-%s" % uuid.uuid4().hex[:6]}
    body.update(extra)
    response = system.api("POST", "/api/v1/orders", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def staff(system, role):
    """A fresh staff member created with the CLI, as an admin would; returns a bearer token."""
    username = "%s-%s" % (role, uuid.uuid4().hex[:8])
    env = dict(system.env, STAFF_PW="pw-%s-long-enough" % username)
    subprocess.run([".venv/bin/python", "-m", "gateway.cli", "create-staff", username, "--role", role,
                    "--password-env", "STAFF_PW"], cwd=ROOT, env=env, check=True, capture_output=True)
    return system.login(username, env["STAFF_PW"])


def count_rows(system, table):
    return system.sql("SELECT count(*) AS n FROM %s" % table)[0]["n"]


def test_directions_contract(system):
    directions = system.api("GET", "/api/v1/directions").json()
    assert {d["exchange_type"] for d in directions} == {"auto", "semi_auto", "manual"}
    for d in directions:
        assert {"id", "currency_in", "currency_out", "rate_in", "rate_out", "min_amount", "max_amount", "reserve",
                "exchange_type", "fee"} <= set(d)
        assert all(isinstance(d[k], str) for k in ("rate_in", "rate_out", "min_amount", "max_amount", "reserve",
                                                     "fee"))


def test_create_returns_the_contract_and_reads_back_by_token(system, directions):
    direction = directions["auto"]
    order = new_order(system, direction, "100")
    assert ORDER_FIELDS <= set(order)
    assert order["status"] == "new" and order["payment_flag"] is None
    assert order["pay_to"]["amount"] == "100" and order["pay_to"]["currency"] == direction["currency_in"]
    assert order["pay_to"]["reference"].startswith("EX") and order["pay_to"]["account"]
    assert len(order["token"]) >= 32
    again = system.api("GET", "/api/v1/orders/%s" % order["token"]).json()
    assert {k: again[k] for k in ORDER_FIELDS} == {k: order[k] for k in ORDER_FIELDS}
    assert system.api("GET", "/api/v1/orders/%s" % ("x" * 32)).status_code == 404


def test_idempotency_key_makes_a_retried_post_return_the_same_order(system, directions):
    key = uuid.uuid4().hex
    body = {"direction_id": directions["manual"]["id"], "amount_in": "50", "email": "idem@example.com",
            "recipient": "R1"}
    first = system.api("POST", "/api/v1/orders", json=body, headers={"Idempotency-Key": key})
    second = system.api("POST", "/api/v1/orders", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]


def test_manual_flow_create_claim_process_finalize(system, directions, admin_token):
    order = new_order(system, directions["manual"], "150")
    claimed = system.api("POST", "/api/v1/orders/%s/paid" % order["token"])
    assert claimed.status_code == 200 and claimed.json()["status"] == "payment_claimed"
    processed = system.api("POST", "/api/v1/admin/orders/%d/process" % order["id"], token=admin_token,
                           json={"notice": "We received your euros."})
    assert processed.status_code == 200 and processed.json()["status"] == "processing"
    final = system.api("POST", "/api/v1/admin/orders/%d/finalize" % order["id"], token=admin_token,
                       json={"notice": "Sent to your wallet."})
    assert final.status_code == 200 and final.json()["status"] == "completed"
    detail = system.api("GET", "/api/v1/admin/orders/%d" % order["id"], token=admin_token).json()
    assert [h["to_status"] for h in detail["history"]] == ["new", "payment_claimed", "processing", "completed"]
    assert [h["actor"] for h in detail["history"]][-1] == "admin"
    assert {"process", "finalize"} <= {a["action"] for a in detail["audit"]}
    assert detail["notice"] == "Sent to your wallet."
    # a completed order takes no more operator actions
    again = system.api("POST", "/api/v1/admin/orders/%d/cancel" % order["id"], token=admin_token,
                       json={"reason": "too late"})
    assert again.status_code == 409 and again.json()["error"] == "conflict"


def test_customer_cancel_before_payment(system, directions):
    order = new_order(system, directions["semi_auto"])
    response = system.api("POST", "/api/v1/orders/%s/cancel" % order["token"])
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert system.api("POST", "/api/v1/orders/%s/cancel" % order["token"]).status_code == 409
    assert system.api("POST", "/api/v1/orders/%s/paid" % order["token"]).status_code == 409


def test_claim_is_only_for_manual_directions(system, directions):
    order = new_order(system, directions["auto"])
    response = system.api("POST", "/api/v1/orders/%s/paid" % order["token"])
    assert response.status_code == 409


def test_unpaid_order_expires_from_the_database_deadline(system, directions):
    order = new_order(system, directions["auto"])
    # the payment window has passed (as if the service had been down meanwhile)
    system.sql("UPDATE orders.orders SET expires_at = now() - interval '1 second' WHERE id = %s", (order["id"],))
    eventually(lambda: system.api("GET", "/api/v1/orders/%s" % order["token"]).json()["status"] == "expired",
               timeout=15, message="order expired")
    history = system.api("GET", "/api/v1/orders/%s" % order["token"]).json()["history"]
    assert [h["to_status"] for h in history] == ["new", "expired"]
    assert system.sql("SELECT count(*) AS n FROM orders.outbox WHERE aggregate_id = %s AND "
                      "payload->'data'->>'to_status' = 'expired'", (str(order["id"]),))[0]["n"] == 1


def test_concurrent_finalize_and_cancel_exactly_one_wins(system, directions):
    operator_a, operator_b = staff(system, "operator"), staff(system, "operator")
    for _ in range(50):
        order = new_order(system, directions["manual"])
        assert system.api("POST", "/api/v1/orders/%s/paid" % order["token"]).status_code == 200
        barrier = threading.Barrier(2)
        results = {}

        def act(name, token, path, body):
            barrier.wait()
            results[name] = system.http.post(system.url + path, json=body, timeout=30,
                                             headers={"Authorization": "Bearer " + token})

        threads = [threading.Thread(target=act, args=("finalize", operator_a,
                                                      "/api/v1/admin/orders/%d/finalize" % order["id"], {})),
                   threading.Thread(target=act, args=("cancel", operator_b,
                                                      "/api/v1/admin/orders/%d/cancel" % order["id"],
                                                      {"reason": "customer asked"}))]
        [t.start() for t in threads]
        [t.join() for t in threads]
        codes = sorted(r.status_code for r in results.values())
        assert codes == [200, 409], {k: (r.status_code, r.text) for k, r in results.items()}
        winner = "finalize" if results["finalize"].status_code == 200 else "cancel"
        status = system.api("GET", "/api/v1/orders/%s" % order["token"]).json()["status"]
        assert status == {"finalize": "completed", "cancel": "canceled"}[winner]
        audit = system.sql("SELECT action, outcome FROM orders.audit_log WHERE order_id = %s AND action IN "
                           "('finalize', 'cancel') ORDER BY id", (order["id"],))
        assert sorted((a["action"], a["outcome"]) for a in audit) == sorted(
            [(winner, "ok"), ({"finalize": "cancel", "cancel": "finalize"}[winner], "rejected")])


BAD_BODIES = [
    ("missing everything", {}, 422, {"direction_id", "amount_in", "email", "recipient"}),
    ("unknown field", {"status": "completed"}, 422, {"status"}),
    ("negative amount", {"amount_in": "-10"}, 422, {"amount_in"}),
    ("zero amount", {"amount_in": "0"}, 422, {"amount_in"}),
    ("too precise", {"amount_in": "100.001"}, 422, {"amount_in"}),        # EUR has 2 decimals
    ("huge amount", {"amount_in": "1" + "0" * 40}, 422, {"amount_in"}),
    ("not a number", {"amount_in": "NaN"}, 422, {"amount_in"}),
    ("float amount", {"amount_in": 100.5}, 422, {"amount_in"}),
    ("unknown direction", {"direction_id": 999999}, 422, {"direction_id"}),
    ("below minimum", {"amount_in": "1"}, 422, {"amount_in"}),
    ("above maximum", {"amount_in": "10001"}, 422, {"amount_in"}),
    ("bad e-mail", {"email": "not-an-email"}, 422, {"email"}),
]


@pytest.mark.parametrize("name, change, status, fields", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_input_is_rejected_with_the_fields_and_writes_nothing(system, directions, name, change, status, fields):
    manual = directions["manual"]   # EUR -> USDT, 20..10000
    body = {"direction_id": manual["id"], "amount_in": "100", "email": "bad@example.com", "recipient": "R"}
    body = {} if name == "missing everything" else dict(body, **change)
    before = count_rows(system, "orders.orders"), count_rows(system, "orders.outbox")
    response = system.api("POST", "/api/v1/orders", json=body)
    assert response.status_code == status, response.text
    assert fields <= set(response.json()["fields"])
    assert (count_rows(system, "orders.orders"), count_rows(system, "orders.outbox")) == before


def test_amount_above_reserve_is_rejected(system, directions):
    auto = directions["auto"]    # USDT -> EUR
    system.sql("UPDATE orders.currencies SET reserve = 50 WHERE code = %s", (auto["currency_out"],))
    try:
        before = count_rows(system, "orders.orders")
        response = system.api("POST", "/api/v1/orders", json={
            "direction_id": auto["id"], "amount_in": "100", "email": "r@example.com", "recipient": "R"})
        assert response.status_code == 422 and "reserve" in response.json()["message"]
        assert "amount_in" in response.json()["fields"]
        assert count_rows(system, "orders.orders") == before
    finally:
        system.sql("UPDATE orders.currencies SET reserve = 100000 WHERE code = %s", (auto["currency_out"],))


@pytest.mark.parametrize("raw", [b"{\"direction_id\": 1,", b"[1, 2]", b"\xff\xfe", b"null"])
def test_malformed_json_is_a_400(system, raw):
    before = count_rows(system, "orders.orders")
    response = system.api("POST", "/api/v1/orders", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"] == "bad_request"
    assert count_rows(system, "orders.orders") == before


def test_staff_auth_and_roles(system, directions):
    assert system.api("GET", "/api/v1/admin/orders").status_code == 401
    assert system.api("GET", "/api/v1/admin/orders", token="forged-token").status_code == 401
    wrong = system.api("POST", "/api/v1/auth/token", json={"username": "admin", "password": "wrong-password"})
    assert wrong.status_code == 401
    analyst = staff(system, "analyst")
    order = new_order(system, directions["manual"])
    system.api("POST", "/api/v1/orders/%s/paid" % order["token"])
    assert system.api("GET", "/api/v1/admin/orders/%d" % order["id"], token=analyst).status_code == 200
    denied = system.api("POST", "/api/v1/admin/orders/%d/finalize" % order["id"], token=analyst, json={})
    assert denied.status_code == 403
    assert system.api("GET", "/api/v1/orders/%s" % order["token"]).json()["status"] == "payment_claimed"


def test_admin_list_filters_and_cursor(system, directions, admin_token):
    email = "list-%s@example.com" % uuid.uuid4().hex[:6]
    made = [new_order(system, directions["manual"], email=email) for _ in range(5)]
    page1 = system.api("GET", "/api/v1/admin/orders?email=%s&limit=3" % email, token=admin_token).json()
    assert [o["id"] for o in page1["items"]] == [o["id"] for o in made[::-1][:3]]
    page2 = system.api("GET", "/api/v1/admin/orders?email=%s&limit=3&cursor=%s" % (email, page1["next_cursor"]),
                       token=admin_token).json()
    assert [o["id"] for o in page2["items"]] == [o["id"] for o in made[::-1][3:]] and page2["next_cursor"] is None
    only_manual = system.api("GET", "/api/v1/admin/orders?exchange_type=auto&email=%s" % email,
                             token=admin_token).json()
    assert only_manual["items"] == []
    bad = system.api("GET", "/api/v1/admin/orders?status=nonsense", token=admin_token)
    assert bad.status_code == 422 and "status" in bad.json()["fields"]


def test_delete_hides_an_order_but_keeps_it_for_audit(system, directions, admin_token):
    order = new_order(system, directions["manual"])
    response = system.api("DELETE", "/api/v1/admin/orders/%d" % order["id"], token=admin_token)
    assert response.status_code == 200 and response.json()["status"] == "deleted"
    assert system.api("GET", "/api/v1/orders/%s" % order["token"]).status_code == 404
    assert system.api("GET", "/api/v1/admin/orders/%d" % order["id"], token=admin_token).json()["status"] == "deleted"


def test_health_readiness_metrics_and_openapi(system):
    assert system.api("GET", "/readyz").json()["ready"] is True
    metrics = system.api("GET", "/metrics").text
    assert "exchanger_http_requests_total" in metrics
    import requests
    service_metrics = requests.get("http://127.0.0.1:%d/metrics" % ORDERS_METRICS_PORT, timeout=5).text
    for name in ("exchanger_entrypoint_calls_total", "exchanger_entrypoint_seconds_bucket",
                 "exchanger_outbox_backlog", "exchanger_order_transitions_total"):
        assert name in service_metrics
    spec = system.api("GET", "/api/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/api/v1/orders" in spec["paths"]
