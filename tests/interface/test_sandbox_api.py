"""The sandbox payment system's JSON API, served for real over HTTP against the test database."""
import threading
import time
import uuid
from decimal import Decimal as D

import pytest
import requests

# The fixtures module is also a pytest plugin here (fixtures: sandbox, sandbox_server, sandbox_database_url).
pytest.register_assert_rewrite("tests.interface.sandbox_fixtures")
pytest_plugins = ["tests.interface.sandbox_fixtures"]

from tests.interface.sandbox_fixtures import TIMEOUT, Client, Server  # noqa: E402


def run_concurrently(n, fn):
    """Call fn(i) from n threads released together; return the results in index order."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001  reported to the test below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def post_transfer(url, body, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    return requests.post(url + "/api/transfers", json=body, headers=headers, timeout=TIMEOUT)


# --- accounts -----------------------------------------------------------------------------------------------

def test_healthz(sandbox):
    r = sandbox.get("/healthz")
    assert r.status_code == 200


def test_create_and_get_account_with_a_chosen_id(sandbox):
    account = "EXCH-T-" + uuid.uuid4().hex[:12]
    r = sandbox.post("/api/accounts", json={"account": account, "currency": "USD", "balance": "100.50",
                                           "owner": "exchanger-test"})
    assert r.status_code == 201, r.text
    assert {k: r.json()[k] for k in ("account", "currency", "balance", "owner")} == {
        "account": account, "currency": "USD", "balance": "100.5", "owner": "exchanger-test"}
    got = sandbox.get("/api/accounts/" + account).json()
    assert got["balance"] == "100.5" and got["precision"] == 2

    again = sandbox.post("/api/accounts", json={"account": account, "currency": "USD"})
    assert again.status_code == 409
    assert again.json()["error"] == "account_exists"


def test_create_account_generates_an_id(sandbox):
    r = sandbox.post("/api/accounts", json={"currency": "USDT", "owner": "gen-" + sandbox.tag})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["account"].startswith("USDT-") and body["balance"] == "0" and body["precision"] == 6
    listed = sandbox.get("/api/accounts", params={"owner": "gen-" + sandbox.tag}).json()["items"]
    assert [a["account"] for a in listed] == [body["account"]]


def test_unknown_account_is_404(sandbox):
    r = sandbox.get("/api/accounts/NOPE-" + uuid.uuid4().hex)
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


def test_account_input_is_validated(sandbox):
    cases = [
        ({"currency": "usd"}, 400, "currency"),
        ({"currency": "USD", "balance": 10.5}, 400, "balance"),
        ({"currency": "USD", "balance": "-1"}, 400, "balance"),
        ({"currency": "USD", "colour": "red"}, 400, "colour"),
        ({"currency": "USD", "account": "bad id"}, 400, "account"),
        ({"currency": "USD", "balance": "1.001"}, 422, "balance"),
    ]
    for body, status, field in cases:
        r = sandbox.post("/api/accounts", json=body)
        assert r.status_code == status, (body, r.text)
        assert field in r.json()["fields"], (body, r.text)
    r = sandbox.post("/api/accounts", data="not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


# --- transfers ----------------------------------------------------------------------------------------------

def test_transfer_moves_money(sandbox):
    a = sandbox.account(balance="100.00")
    b = sandbox.account(balance="0")
    r = sandbox.transfer(a, b, "30.25", reference="ORDER-1")
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["from_account"] == a and t["to_account"] == b and t["amount"] == "30.25"
    assert t["currency"] == "USD" and t["reference"] == "ORDER-1" and t["status"] == "completed"
    assert t["idempotency_key"] is None and t["id"] and t["created_at"]
    assert sandbox.balance(a) == D("69.75")
    assert sandbox.balance(b) == D("30.25")
    assert sandbox.get("/api/transfers/" + t["id"]).json() == t


def test_insufficient_funds(sandbox):
    a = sandbox.account(balance="10")
    b = sandbox.account(balance="0")
    r = sandbox.transfer(a, b, "10.01")
    assert r.status_code == 422
    assert r.json()["error"] == "insufficient_funds"
    assert sandbox.balance(a) == D("10") and sandbox.balance(b) == 0
    assert sandbox.transfer(a, b, "10").status_code == 201
    assert sandbox.balance(a) == 0


def test_precision_per_currency(sandbox):
    usd_a, usd_b = sandbox.account(), sandbox.account()
    r = sandbox.transfer(usd_a, usd_b, "0.001")
    assert r.status_code == 422 and "amount" in r.json()["fields"]
    assert sandbox.transfer(usd_a, usd_b, "0.01").status_code == 201
    assert sandbox.transfer(usd_a, usd_b, "1.10000").status_code == 201  # trailing zeros are fine

    t_a, t_b = sandbox.account("USDT"), sandbox.account("USDT", balance="0")
    assert sandbox.transfer(t_a, t_b, "0.000001", currency="USDT").status_code == 201
    assert sandbox.transfer(t_a, t_b, "0.0000001", currency="USDT").status_code == 422
    assert sandbox.balance(t_b) == D("0.000001")

    btc_a, btc_b = sandbox.account("BTC", balance="1"), sandbox.account("BTC", balance="0")
    assert sandbox.transfer(btc_a, btc_b, "0.00000001", currency="BTC").status_code == 201
    assert sandbox.transfer(btc_a, btc_b, "0.000000001", currency="BTC").status_code == 422


def test_transfer_input_errors(sandbox):
    a, b = sandbox.account(), sandbox.account()
    eur = sandbox.account("EUR")
    missing = "NOPE-" + uuid.uuid4().hex[:8]
    r = sandbox.transfer(a, missing, "1")
    assert r.status_code == 404 and "to_account" in r.json()["fields"]
    r = sandbox.transfer(missing, a, "1")
    assert r.status_code == 404 and "from_account" in r.json()["fields"]
    r = sandbox.transfer(a, eur, "1")
    assert r.status_code == 422 and "currency" in r.json()["fields"]
    r = sandbox.transfer(a, b, "1", currency="EUR")
    assert r.status_code == 422 and "currency" in r.json()["fields"]
    r = sandbox.transfer(a, a, "1")
    assert r.status_code == 422 and "to_account" in r.json()["fields"]
    for amount in ["0", "-5", "abc", "NaN"]:
        r = sandbox.transfer(a, b, amount)
        assert r.status_code == 400 and "amount" in r.json()["fields"], amount
    r = sandbox.post("/api/transfers", json={"from_account": a, "to_account": b, "amount": 1.5, "currency": "USD"})
    assert r.status_code == 400 and "amount" in r.json()["fields"]
    r = sandbox.post("/api/transfers", json={"from_account": a, "to_account": b, "amount": "1", "currency": "USD",
                                             "memo": "x"})
    assert r.status_code == 400 and "memo" in r.json()["fields"]
    r = sandbox.post("/api/transfers", json=["not", "an", "object"])
    assert r.status_code == 400
    assert sandbox.balance(a) == D("1000") and sandbox.balance(b) == D("1000")


# --- idempotency --------------------------------------------------------------------------------------------

def test_same_idempotency_key_moves_money_once(sandbox):
    a, b = sandbox.account(balance="100"), sandbox.account(balance="0")
    key = "payout-" + uuid.uuid4().hex
    first = sandbox.transfer(a, b, "40", reference="R", key=key)
    assert first.status_code == 201, first.text
    second = sandbox.transfer(a, b, "40.00", reference="R", key=key)
    assert second.status_code == 200, second.text
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.json() == first.json()
    assert first.json()["idempotency_key"] == key
    assert sandbox.balance(a) == D("60") and sandbox.balance(b) == D("40")

    # A replay succeeds even when the payer could not afford the transfer again.
    assert sandbox.transfer(a, b, "60", key="drain-" + key).status_code == 201
    assert sandbox.transfer(a, b, "40", reference="R", key=key).status_code == 200
    assert sandbox.balance(a) == 0 and sandbox.balance(b) == D("100")


def test_same_key_with_other_parameters_is_refused(sandbox):
    a, b, c = sandbox.account(), sandbox.account(), sandbox.account()
    key = "k-" + uuid.uuid4().hex
    assert sandbox.transfer(a, b, "5", key=key).status_code == 201
    for args, kwargs in [((a, b, "6"), {}), ((a, c, "5"), {}), ((a, b, "5"), {"reference": "other"})]:
        r = sandbox.transfer(*args, key=key, **kwargs)
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "idempotency_key_reused"
    assert sandbox.balance(a) == D("995") and sandbox.balance(c) == D("1000")


def test_idempotency_key_in_the_body_and_header_must_agree(sandbox):
    a, b = sandbox.account(), sandbox.account()
    body = {"from_account": a, "to_account": b, "amount": "1", "currency": "USD", "idempotency_key": "body-key"}
    r = sandbox.post("/api/transfers", json=body, headers={"Idempotency-Key": "header-key"})
    assert r.status_code == 400
    r = sandbox.post("/api/transfers", json=dict(body, idempotency_key="body-" + sandbox.tag))
    assert r.status_code == 201 and r.json()["idempotency_key"] == "body-" + sandbox.tag
    r = sandbox.post("/api/transfers", json=dict(body, idempotency_key=None), headers={"Idempotency-Key": "a b"})
    assert r.status_code == 400


def test_twenty_concurrent_identical_requests_make_one_transfer(sandbox):
    a, b = sandbox.account(balance="100"), sandbox.account(balance="0")
    key = "race-" + uuid.uuid4().hex
    body = {"from_account": a, "to_account": b, "amount": "7.77", "currency": "USD", "reference": "RACE"}
    results = run_concurrently(20, lambda i: post_transfer(sandbox.url, body, key))
    assert all(isinstance(r, requests.Response) for r in results), results
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] * 19 + [201], [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert sandbox.balance(a) == D("92.23") and sandbox.balance(b) == D("7.77")
    items = sandbox.get("/api/transfers", params={"idempotency_key": key}).json()["items"]
    assert len(items) == 1
    history = sandbox.get("/api/accounts/%s/history" % b).json()["items"]
    assert len(history) == 1


def test_concurrent_opposite_transfers_do_not_deadlock(sandbox):
    a, b = sandbox.account(balance="1000"), sandbox.account(balance="1000")
    results = run_concurrently(20, lambda i: post_transfer(
        sandbox.url, {"from_account": a if i % 2 else b, "to_account": b if i % 2 else a,
                      "amount": "1.00", "currency": "USD"}))
    assert [getattr(r, "status_code", r) for r in results] == [201] * 20
    assert sandbox.balance(a) + sandbox.balance(b) == D("2000")


def test_concurrent_spending_never_overdraws(sandbox):
    a, b = sandbox.account(balance="50"), sandbox.account(balance="0")
    results = run_concurrently(20, lambda i: post_transfer(
        sandbox.url, {"from_account": a, "to_account": b, "amount": "10", "currency": "USD"}))
    statuses = sorted(getattr(r, "status_code", r) for r in results)
    assert statuses == [201] * 5 + [422] * 15
    assert sandbox.balance(a) == 0 and sandbox.balance(b) == D("50")


def test_lookup_by_idempotency_key(sandbox):
    a, b = sandbox.account(), sandbox.account()
    key = "lookup-" + uuid.uuid4().hex
    assert sandbox.get("/api/transfers", params={"idempotency_key": key}).json() == {"items": []}
    created = sandbox.transfer(a, b, "3", key=key).json()
    assert sandbox.get("/api/transfers", params={"idempotency_key": key}).json() == {"items": [created]}
    assert sandbox.get("/api/transfers").status_code == 400


# --- history ------------------------------------------------------------------------------------------------

def test_history_pages_with_a_cursor(sandbox):
    a, b = sandbox.account(balance="100"), sandbox.account(balance="100")
    for i in range(4):
        assert sandbox.transfer(a, b, "%d.00" % (i + 1), reference="P%d" % i).status_code == 201
    assert sandbox.transfer(b, a, "0.50", reference="BACK").status_code == 201

    seen, after, pages = [], None, 0
    while True:
        params = {"limit": 2}
        if after is not None:
            params["after"] = after
        page = sandbox.get("/api/accounts/%s/history" % a, params=params).json()
        pages += 1
        if not page["items"]:
            assert page["next_cursor"] == after
            break
        assert page["next_cursor"] == page["items"][-1]["cursor"]
        seen.extend(page["items"])
        after = page["next_cursor"]
    assert pages == 4  # 2 + 2 + 1 + the empty page
    cursors = [e["cursor"] for e in seen]
    assert cursors == sorted(cursors) and len(set(cursors)) == 5
    assert [(e["type"], e["amount"], e["reference"]) for e in seen] == [
        ("out", "1", "P0"), ("out", "2", "P1"), ("out", "3", "P2"), ("out", "4", "P3"), ("in", "0.5", "BACK")]
    assert all(e["counterparty"] == b and e["currency"] == "USD" for e in seen)
    assert all(e["id"] and e["transfer_id"] and e["created_at"] for e in seen)

    whole = sandbox.get("/api/accounts/%s/history" % b).json()
    assert [e["type"] for e in whole["items"]] == ["in"] * 4 + ["out"]
    assert whole["items"][0]["transfer_id"] == seen[0]["transfer_id"]
    assert whole["next_cursor"] == whole["items"][-1]["cursor"]

    tail = sandbox.get("/api/accounts/%s/history" % a, params={"after": cursors[2]}).json()
    assert [e["cursor"] for e in tail["items"]] == cursors[3:]


def test_history_errors(sandbox):
    a = sandbox.account()
    assert sandbox.get("/api/accounts/%s/history" % a).json() == {"items": [], "next_cursor": None,
                                                                  "has_more": False}
    assert sandbox.get("/api/accounts/%s/history" % a, params={"limit": 1001}).status_code == 400
    assert sandbox.get("/api/accounts/%s/history" % a, params={"limit": 1000}).status_code == 200
    assert sandbox.get("/api/accounts/%s/history" % a, params={"after": "x"}).status_code == 400
    assert sandbox.get("/api/accounts/NOPE-%s/history" % sandbox.tag).status_code == 404


# --- faults -------------------------------------------------------------------------------------------------

def test_fault_error_before_executes_nothing(sandbox):
    a, b = sandbox.account(), sandbox.account()
    fault = sandbox.fault(operation="transfer", mode="error", count=2, account=a)
    assert fault["remaining"] == 2 and fault["apply"] == "before"
    key = "f-" + uuid.uuid4().hex
    for _ in range(2):
        r = sandbox.transfer(a, b, "10", key=key)
        assert r.status_code == 500, r.text
    assert sandbox.balance(a) == D("1000")
    assert sandbox.get("/api/transfers", params={"idempotency_key": key}).json()["items"] == []
    assert sandbox.transfer(a, b, "10", key=key).status_code == 201
    assert sandbox.balance(a) == D("990")


def test_fault_timeout_sleeps_then_answers_504(sandbox):
    a, b = sandbox.account(), sandbox.account()
    sandbox.fault(operation="transfer", mode="timeout", delay_s=0.3, account=b)
    started = time.monotonic()
    r = sandbox.transfer(a, b, "10")
    assert r.status_code == 504 and r.json()["error"] == "timeout"
    assert time.monotonic() - started >= 0.3
    assert sandbox.balance(a) == D("1000")

    # A client with a shorter timeout than the fault's delay sees a timeout of its own.
    sandbox.fault(operation="balance", mode="timeout", delay_s=1, account=a)
    try:
        sandbox.get("/api/accounts/" + a, timeout=0.2)
        raise AssertionError("expected a client timeout")
    except requests.Timeout:
        pass


def test_fault_refuse_is_a_definite_decline(sandbox):
    a, b = sandbox.account(), sandbox.account()
    sandbox.fault(operation="transfer", mode="refuse", account=a)
    r = sandbox.transfer(a, b, "10")
    assert r.status_code == 422 and r.json()["error"] == "refused"
    assert sandbox.balance(a) == D("1000")


def test_fault_after_executes_the_transfer_and_loses_the_answer(sandbox):
    a, b = sandbox.account(balance="100"), sandbox.account(balance="0")
    key = "lost-" + uuid.uuid4().hex
    sandbox.fault(operation="transfer", mode="error", apply="after", account=a)
    r = sandbox.transfer(a, b, "25", key=key)
    assert r.status_code == 500
    assert sandbox.balance(a) == D("75") and sandbox.balance(b) == D("25")
    found = sandbox.get("/api/transfers", params={"idempotency_key": key}).json()["items"]
    assert len(found) == 1 and found[0]["amount"] == "25"
    retry = sandbox.transfer(a, b, "25", key=key)
    assert retry.status_code == 200 and retry.json()["id"] == found[0]["id"]
    assert sandbox.balance(a) == D("75")

    sandbox.fault(operation="transfer", mode="timeout", apply="after", delay_s=0.2, account=a)
    r = sandbox.transfer(a, b, "5", key=key + "-2")
    assert r.status_code == 504
    assert sandbox.balance(a) == D("70")


def test_faults_on_history_balance_lookup_and_any(sandbox):
    a, b = sandbox.account(), sandbox.account()
    key = "fl-" + uuid.uuid4().hex
    assert sandbox.transfer(a, b, "1", key=key).status_code == 201
    sandbox.fault(operation="history", mode="error", account=a)
    assert sandbox.get("/api/accounts/%s/history" % b).status_code == 200  # scoped to a only
    assert sandbox.get("/api/accounts/%s/history" % a).status_code == 500
    assert sandbox.get("/api/accounts/%s/history" % a).status_code == 200

    sandbox.fault(operation="balance", mode="refuse", account=a)
    r = sandbox.get("/api/accounts/" + a)
    assert r.status_code == 422 and r.json()["error"] == "refused"

    sandbox.fault(operation="lookup", mode="error", account=b)
    assert sandbox.get("/api/transfers", params={"idempotency_key": key}).status_code == 500
    assert len(sandbox.get("/api/transfers", params={"idempotency_key": key}).json()["items"]) == 1

    sandbox.fault(operation="any", mode="error", count=3, account=a)
    assert sandbox.get("/api/accounts/" + a).status_code == 500
    assert sandbox.get("/api/accounts/%s/history" % a).status_code == 500
    assert sandbox.transfer(a, b, "1").status_code == 500
    assert sandbox.transfer(a, b, "1").status_code == 201


def test_unscoped_fault_matches_any_account(sandbox):
    a = sandbox.account()
    fault = sandbox.fault(operation="balance", mode="error")
    try:
        assert sandbox.get("/api/accounts/" + a).status_code == 500
        assert sandbox.get("/api/accounts/" + a).status_code == 200
    finally:
        sandbox.delete("/api/faults/%d" % fault["id"])


def test_fault_listing_and_clearing(sandbox):
    a = sandbox.account()
    f1 = sandbox.fault(operation="transfer", mode="error", count=5, account=a)
    f2 = sandbox.fault(operation="history", mode="refuse", account=a)
    listed = [f for f in sandbox.get("/api/faults").json()["items"] if f["account"] == a]
    assert [f["id"] for f in listed] == [f1["id"], f2["id"]]
    assert sandbox.delete("/api/faults/%d" % f1["id"]).json() == {"deleted": 1}
    assert sandbox.delete("/api/faults/%d" % f1["id"]).status_code == 404
    assert sandbox.delete("/api/faults", params={"account": a}).json() == {"deleted": 1}
    assert [f for f in sandbox.get("/api/faults").json()["items"] if f["account"] == a] == []
    for bad in [{"operation": "transfer"}, {"operation": "x", "mode": "error"},
                {"operation": "transfer", "mode": "error", "count": 0},
                {"operation": "transfer", "mode": "error", "apply": "maybe"}]:
        r = sandbox.post("/api/faults", json=bad)
        assert r.status_code == 400, bad


def test_concurrent_calls_consume_a_fault_exactly_count_times(sandbox):
    a = sandbox.account()
    sandbox.fault(operation="balance", mode="error", count=5, account=a)
    results = run_concurrently(12, lambda i: requests.get(sandbox.url + "/api/accounts/" + a, timeout=TIMEOUT))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] * 7 + [500] * 5


def test_faults_are_shared_between_workers(sandbox_server, sandbox_database_url, sandbox):
    """Faults live in the database: one set through one app instance trips a call served by another."""
    other = Server(sandbox_database_url)
    try:
        a = sandbox.account()
        sandbox.fault(operation="balance", mode="error", account=a)
        client = Client(other.url)
        assert client.get("/api/accounts/" + a).status_code == 500
        assert sandbox.get("/api/accounts/" + a).status_code == 200
    finally:
        other.stop()
