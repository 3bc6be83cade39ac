"""The commission ledger in the real orders service and database: a referred order is credited exactly once, in
the transaction of its completion, with its event; the ledger is append-only and never goes negative, also
under concurrent withdrawals; decisions are compare-and-set and audited."""
from decimal import Decimal as D

import eventlet
import psycopg2
import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy

from libs import errors
from tests.interface.partners.conftest import (STAFF, call, completed_order, manual_direction, partner,
                                               unique_email)


def global_rule(orders):
    c = call(orders, "get_commission")
    return D(c["percent"]), c["base"]


def expected(order, percent, base, places=6):
    value = D(order["fee_amount"]) if base == "margin" else D(order["amount_out"]) + D(order["fee_amount"])
    return (value * percent / 100).quantize(D(1).scaleb(-places), rounding="ROUND_DOWN")


def credits(sql, order_id):
    return sql("SELECT * FROM orders.partner_ledger WHERE order_id = %s", (order_id,))


def test_a_completed_referred_order_is_credited_once_with_its_event(orders, sql):
    p = partner(orders, sql)
    code = p["partner"]["code"]
    direction = manual_direction(orders)
    order = completed_order(orders, direction, partner_code=code.lower())   # codes match whatever their case
    percent, base = global_rule(orders)
    rows = credits(sql, order["id"])
    assert len(rows) == 1
    entry = rows[0]
    assert entry["amount"] == expected(order, percent, base) and entry["currency"] == "USDT"
    assert entry["balance_after"] == entry["amount"] and (entry["percent"], entry["base"]) == (percent, base)
    events = sql("SELECT payload FROM orders.outbox WHERE event_type = 'partner_credited' AND aggregate_id = %s",
                 (str(order["id"]),))
    assert len(events) == 1
    data = events[0]["payload"]["data"]
    assert data["partner_account_id"] == p["id"] and data["partner_code"] == code
    assert D(data["amount"]) == entry["amount"] and data["currency"] == "USDT" and data["email"] == p["email"]
    assert D(data["balance"]) == entry["balance_after"] and data["language"] == "en"

    # completing again is refused, and nothing else can add a second credit for the order
    with pytest.raises(errors.Conflict):
        call(orders, "finalize", order["id"], None, STAFF)
    call(orders, "delete", order["id"], STAFF)
    with pytest.raises(psycopg2.errors.UniqueViolation):
        sql("INSERT INTO orders.partner_ledger (partner_id, currency, kind, amount, balance_after, order_id) "
            "VALUES (%s, 'USDT', 'credit', 1, 0, %s)", (p["partner"]["id"], order["id"]))
    assert len(credits(sql, order["id"])) == 1
    overview = call(orders, "partner_overview", p["id"])
    assert overview["balances"] == [{"currency": "USDT", "balance": str(entry["amount"].normalize()),
                                     "pending_withdrawals": "0", "earned": str(entry["amount"].normalize())}]


def test_own_unknown_or_switched_off_partners_earn_nothing(orders, sql):
    p = partner(orders, sql)
    code = p["partner"]["code"]
    direction = manual_direction(orders)
    own = completed_order(orders, direction, partner_code=code, email=p["email"].upper())
    unknown = completed_order(orders, direction, partner_code="NOSUCHCODE")
    none = completed_order(orders, direction)
    call(orders, "update_partner", p["partner"]["id"], {"active": False}, STAFF)
    off = completed_order(orders, direction, partner_code=code)
    for order in (own, unknown, none, off):
        assert order["status"] == "completed" and credits(sql, order["id"]) == []
    assert sql("SELECT count(*) AS n FROM orders.outbox WHERE event_type = 'partner_credited' AND aggregate_id = "
               "ANY(%s)", ([str(o["id"]) for o in (own, unknown, none, off)],))[0]["n"] == 0
    assert call(orders, "partner_overview", p["id"])["stats"]["orders_by_status"] == {"completed": 2}


def test_the_direction_rule_beats_the_partners_which_beats_the_global_one(orders, sql):
    p = partner(orders, sql)
    code, pid = p["partner"]["code"], p["partner"]["id"]
    direction = manual_direction(orders)
    call(orders, "update_partner", pid, {"percent": "1", "base": "amount"}, STAFF)
    by_partner = completed_order(orders, direction, partner_code=code)
    assert credits(sql, by_partner["id"])[0]["amount"] == expected(by_partner, D(1), "amount")   # 1 % of 107
    call(orders, "set_direction_commission", direction["id"], {"percent": "50", "base": "margin"}, STAFF)
    try:
        by_direction = completed_order(orders, direction, partner_code=code)
        assert credits(sql, by_direction["id"])[0]["amount"] == expected(by_direction, D(50), "margin")
    finally:
        call(orders, "set_direction_commission", direction["id"], None, STAFF)
    call(orders, "update_partner", pid, {"percent": None, "base": None}, STAFF)
    by_global = completed_order(orders, direction, partner_code=code)
    assert credits(sql, by_global["id"])[0]["amount"] == expected(by_global, *global_rule(orders))
    balances = sql("SELECT amount, balance_after FROM orders.partner_ledger WHERE partner_id = %s ORDER BY id",
                   (pid,))
    running = D(0)
    for row in balances:            # every row carries the running balance
        running += row["amount"]
        assert row["balance_after"] == running
    audit = sql("SELECT action, detail FROM orders.audit_log WHERE action IN ('partner_update', "
                "'direction_commission_update') AND actor = %s ORDER BY id DESC LIMIT 3", (STAFF["name"],))
    assert {a["action"] for a in audit} == {"partner_update", "direction_commission_update"}


def _funded_partner(orders, sql):
    """A partner with 10.7 USDT: 10 % of the amount of one 100 EUR order (107 USDT)."""
    p = partner(orders, sql)
    call(orders, "update_partner", p["partner"]["id"], {"percent": "10", "base": "amount"}, STAFF)
    order = completed_order(orders, manual_direction(orders), partner_code=p["partner"]["code"])
    assert credits(sql, order["id"])[0]["balance_after"] == D("10.7")
    return p


def test_the_ledger_is_append_only(orders, sql):
    p = _funded_partner(orders, sql)
    for statement in ("UPDATE orders.partner_ledger SET amount = 1000 WHERE partner_id = %s",
                      "DELETE FROM orders.partner_ledger WHERE partner_id = %s"):
        with pytest.raises(psycopg2.errors.RaiseException, match="append-only"):
            sql(statement, (p["partner"]["id"],))


def test_concurrent_withdrawals_above_the_balance_at_most_one_succeeds(orders, sql, nameko_config):
    p = _funded_partner(orders, sql)
    call(orders, "update_commission", {"min_withdrawal": "1"}, STAFF)
    # six requests of 8 USDT against 10.7, all in flight at once over RPC, as the gateway's threads send them
    with ServiceRpcProxy("orders", nameko_config) as rpc:
        calls = [rpc.request_withdrawal.call_async(p["id"], "8", "USDT", "CAROL-USDT", "race-%s-%d" % (p["id"], i))
                 for i in range(6)]
        results = []
        for reply in calls:
            try:
                results.append(reply.result())
            except RemoteError as exc:
                results.append(exc)
    won = [r for r in results if isinstance(r, dict)]
    assert len(won) == 1 and won[0]["status"] == "requested"
    assert all(r.exc_type == "ValidationFailed" for r in results if not isinstance(r, dict)), results
    rows = sql("SELECT kind, amount, balance_after FROM orders.partner_ledger WHERE partner_id = %s ORDER BY id",
               (p["partner"]["id"],))
    assert [(r["kind"], r["balance_after"]) for r in rows] == [("credit", D("10.7")), ("withdrawal", D("2.7"))]
    # the same request again (a repeated RPC) is the same withdrawal, not a second hold
    again = call(orders, "request_withdrawal", p["id"], "8", "USDT", "CAROL-USDT",
                 "race-%s-%d" % (p["id"], results.index(won[0])))
    assert again["id"] == won[0]["id"]
    assert len(sql("SELECT 1 FROM orders.partner_ledger WHERE partner_id = %s", (p["partner"]["id"],))) == 2


def test_the_database_refuses_an_overdraft_even_from_a_path_that_skips_the_checks(orders, sql, migrated_database):
    p = _funded_partner(orders, sql)
    pid = p["partner"]["id"]

    def withdrawal(amount):
        return sql("INSERT INTO orders.partner_withdrawals (partner_id, currency, amount, to_account) "
                   "VALUES (%s, 'USDT', %s, 'X') RETURNING id", (pid, amount))[0]["id"]
    insert = ("INSERT INTO orders.partner_ledger (partner_id, currency, kind, amount, balance_after, withdrawal_id) "
              "VALUES (%s, 'USDT', 'withdrawal', %s, 999, %s)")   # balance_after is the trigger's, not ours
    with pytest.raises(psycopg2.errors.CheckViolation):
        sql(insert, (pid, D("-10.71"), withdrawal(D("10.71"))))
    # Two raw inserts racing on two connections in real threads: the trigger locks the partner's row, so the
    # second waits for the first to commit, then sees its balance and is refused.
    threading = eventlet.patcher.original("threading")
    w1, w2 = withdrawal(6), withdrawal(6)
    first, second = psycopg2.connect(migrated_database), psycopg2.connect(migrated_database)
    outcome = {}
    try:
        first.cursor().execute(insert, (pid, D(-6), w1))          # holds the lock, not committed yet

        def racer():
            try:
                with second.cursor() as cur:
                    cur.execute(insert, (pid, D(-6), w2))
                second.commit()
                outcome["second"] = "committed"
            except psycopg2.Error as exc:
                outcome["second"] = type(exc).__name__
        thread = threading.Thread(target=racer)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the second insert should wait for the partner's lock"
        first.commit()
        thread.join(10)
    finally:
        first.close()
        second.close()
    assert outcome == {"second": "CheckViolation"}
    assert sql("SELECT balance_after FROM orders.partner_ledger WHERE partner_id = %s ORDER BY id DESC LIMIT 1",
               (pid,))[0]["balance_after"] == D("4.7")


def test_reject_returns_the_amount_approve_is_compare_and_set_and_both_are_audited(orders, sql):
    p = _funded_partner(orders, sql)
    call(orders, "update_commission", {"min_withdrawal": "1"}, STAFF)
    first = call(orders, "request_withdrawal", p["id"], "5", "USDT", "CAROL-USDT", None)
    second = call(orders, "request_withdrawal", p["id"], "5", "USDT", "CAROL-USDT", None)
    with pytest.raises(errors.ValidationFailed):
        call(orders, "decide_withdrawal", first["id"], "reject", STAFF, None, None, "  ")   # no reason
    rejected = call(orders, "decide_withdrawal", first["id"], "reject", STAFF, None, None, "wrong account")
    assert rejected["status"] == "rejected" and rejected["reason"] == "wrong account"
    approved = call(orders, "decide_withdrawal", second["id"], "approve", STAFF, "payout", None, None)
    assert approved["status"] == "approved" and approved["method"] == "payout"
    for wid in (first["id"], second["id"]):
        with pytest.raises(errors.Conflict):
            call(orders, "decide_withdrawal", wid, "approve", STAFF, "manual", "T-1", None)
    rows = sql("SELECT kind, amount, balance_after FROM orders.partner_ledger WHERE partner_id = %s ORDER BY id",
               (p["partner"]["id"],))
    assert [(r["kind"], r["balance_after"]) for r in rows] == [
        ("credit", D("10.7")), ("withdrawal", D("5.7")), ("withdrawal", D("0.7")), ("withdrawal_return", D("5.7"))]
    payout = sql("SELECT payload FROM orders.outbox WHERE event_type = 'partner_payout_requested' "
                 "AND aggregate_id = %s",
                 ("withdrawal:%s" % second["id"],))
    assert payout[0]["payload"]["data"]["idempotency_key"] == "partner-withdrawal-%s" % second["id"]
    audit = sql("SELECT action, outcome FROM orders.audit_log WHERE detail->>'withdrawal_id' = ANY(%s) ORDER BY id",
                ([str(first["id"]), str(second["id"])],))
    assert [(a["action"], a["outcome"]) for a in audit] == [
        ("partner_withdrawal_request", "ok"), ("partner_withdrawal_request", "ok"),
        ("partner_withdrawal_reject", "ok"), ("partner_withdrawal_approve", "ok"),
        ("partner_withdrawal_approve", "rejected"), ("partner_withdrawal_approve", "rejected")]
    listed = call(orders, "list_withdrawals", {"partner_id": p["partner"]["id"]})["items"]
    assert {w["id"]: w["status"] for w in listed} == {first["id"]: "rejected", second["id"]: "approved"}
    assert all(w["partner_email"] == p["email"] for w in listed)


def test_clicks_referred_orders_and_earnings_in_the_overview(orders, sql):
    p = partner(orders, sql)
    code = p["partner"]["code"]
    assert call(orders, "count_partner_click", code.lower()) is True
    assert call(orders, "count_partner_click", code) is True
    assert call(orders, "count_partner_click", "NOSUCH") is False
    direction = manual_direction(orders)
    done = completed_order(orders, direction, partner_code=code)
    waiting = call(orders, "create_order", {"direction_id": direction["id"], "amount_in": "50",
                                            "email": unique_email("c"), "recipient": "W", "partner_code": code})
    view = call(orders, "partner_overview", p["id"])
    assert view["code"] == code and view["stats"]["clicks"] == 2 and view["stats"]["referred_orders"] == 2
    assert view["stats"]["orders_by_status"] == {"completed": 1, "new": 1}
    by_id = {o["id"]: o for o in view["referred_orders"]}
    assert by_id[waiting["id"]]["commission"] is None and D(by_id[done["id"]]["commission"]) > 0
    assert "email" not in by_id[done["id"]] and "token" not in by_id[done["id"]]   # customers stay private
    assert [D(e["amount"]) for e in view["stats"]["earnings_by_day"]] == [D(by_id[done["id"]]["commission"])]
    assert view["stats"]["clicks_by_day"][0]["clicks"] == 2
    admin_view = call(orders, "get_partner", p["partner"]["id"])
    assert admin_view["clicks"] == 2 and admin_view["referred_orders"] == 2 and len(admin_view["ledger"]) == 1


def test_a_payout_withdrawal_ends_paid_or_failed_back_on_the_balance_once(orders, sql):
    """payments' withdrawal_payout_sent / _failed (libs/contracts/payments.py): approved -> paid, or
    approved -> failed with one withdrawal_return; a redelivered answer changes nothing; both audited."""
    from nameko.testing.services import entrypoint_hook

    from libs.contracts import events

    p = _funded_partner(orders, sql)
    call(orders, "update_commission", {"min_withdrawal": "1"}, STAFF)
    paid = call(orders, "request_withdrawal", p["id"], "4", "USDT", "CAROL-USDT", None)
    failed = call(orders, "request_withdrawal", p["id"], "5", "USDT", "CAROL-USDT", None)
    for w in (paid, failed):
        call(orders, "decide_withdrawal", w["id"], "approve", STAFF, "payout", None, None)

    def answer(method, event_type, w, **extra):
        data = dict({"withdrawal_id": w["id"], "idempotency_key": "partner-withdrawal-%s" % w["id"],
                     "amount": w["amount"], "currency": "USDT", "to_account": "CAROL-USDT", "provider_id": None,
                     "error": None}, **extra)
        envelope = events.envelope("payments", event_type, data)
        with entrypoint_hook(orders, method) as hook:
            hook(envelope)
        return envelope

    sent = answer("handle_withdrawal_payout_sent", "withdrawal_payout_sent", paid, provider_id="T-9")
    refused = answer("handle_withdrawal_payout_failed", "withdrawal_payout_failed", failed, error="refused")
    for _ in range(2):  # redelivered, and the same answer under a new event id: nothing more
        with entrypoint_hook(orders, "handle_withdrawal_payout_failed") as hook:
            hook(refused)
        answer("handle_withdrawal_payout_failed", "withdrawal_payout_failed", failed, error="refused")
        with entrypoint_hook(orders, "handle_withdrawal_payout_sent") as hook:
            hook(sent)
    rows = {r["id"]: r for r in sql("SELECT * FROM orders.partner_withdrawals WHERE id IN (%s, %s)",
                                    (paid["id"], failed["id"]))}
    assert (rows[paid["id"]]["status"], rows[paid["id"]]["provider_id"]) == ("paid", "T-9")
    assert rows[failed["id"]]["status"] == "failed" and "refused" in rows[failed["id"]]["reason"]
    ledger = sql("SELECT kind, amount, balance_after FROM orders.partner_ledger WHERE partner_id = %s ORDER BY id",
                 (p["partner"]["id"],))
    assert [(r["kind"], r["balance_after"]) for r in ledger] == [
        ("credit", D("10.7")), ("withdrawal", D("6.7")), ("withdrawal", D("1.7")), ("withdrawal_return", D("6.7"))]
    audit = sql("SELECT action, outcome FROM orders.audit_log WHERE detail->>'withdrawal_id' = %s ORDER BY id",
                (str(failed["id"]),))
    assert [(a["action"], a["outcome"]) for a in audit][1:3] == [("partner_withdrawal_approve", "ok"),
                                                                 ("partner_withdrawal_failed", "ok")]
    assert [a["outcome"] for a in audit[3:]] == ["rejected", "rejected"]  # the new-id repeats, on the record
