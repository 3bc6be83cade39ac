"""Stuck work in the orders service (docs/architecture.md, "Stuck work"): a partner withdrawal approved for a payout
and never answered is listed, counted, announced once (also across a restart), and the operator's repair hands the
same request to payments again (same idempotency key); payments' answer ends it."""
from decimal import Decimal as D

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook
from prometheus_client import REGISTRY

from libs import errors
from libs.contracts import events
from services.orders.service import OrdersService
from tests.interface.partners.conftest import STAFF, call, completed_order, manual_direction, partner

OPERATOR = {"name": "op-stuck", "role": "operator", "ip": "127.0.0.1"}


@pytest.fixture
def start(nameko_config, db):
    containers = []

    def start_():
        container = ServiceContainer(OrdersService, dict(nameko_config, METRICS_PORT=None, STUCK_AFTER_SECONDS=1,
                                                         STUCK_CHECK_SECONDS=3600))
        container.start()
        containers.append(container)
        return container
    yield start_
    for container in containers:
        container.kill()


def mine(items, withdrawal_id):
    return [i for i in items if i["kind"] == "withdrawal_not_paid" and i["id"] == withdrawal_id]


def announced(sql, withdrawal_id):
    rows = sql("SELECT payload FROM orders.outbox WHERE event_type = 'stuck_work_found' ORDER BY seq")
    return [r for r in rows if mine(r["payload"]["data"]["items"], withdrawal_id)]


def requests_for(sql, withdrawal_id):
    return sql("SELECT payload FROM orders.outbox WHERE event_type = 'partner_payout_requested' "
               "AND aggregate_id = %s ORDER BY seq", ("withdrawal:%s" % withdrawal_id,))


def test_an_approved_withdrawal_never_answered_is_found_announced_once_and_requested_again(start, sql):
    orders = start()
    p = partner(orders, sql)
    call(orders, "update_partner", p["partner"]["id"], {"percent": "10", "base": "amount"}, STAFF)
    completed_order(orders, manual_direction(orders), partner_code=p["partner"]["code"])
    call(orders, "update_commission", {"min_withdrawal": "1"}, STAFF)
    w = call(orders, "request_withdrawal", p["id"], "4", "USDT", "CAROL-USDT", None)
    call(orders, "decide_withdrawal", w["id"], "approve", STAFF, "payout", None, None)
    manual = call(orders, "request_withdrawal", p["id"], "2", "USDT", "CAROL-USDT", None)
    call(orders, "decide_withdrawal", manual["id"], "approve", STAFF, "manual", "T-1", None)   # final: not stuck
    sql("UPDATE orders.partner_withdrawals SET decided_at = now() - interval '30 seconds' WHERE id IN (%s, %s)",
        (w["id"], manual["id"]))

    result = call(orders, "check_stuck_work")
    assert result["counts"]["withdrawal_not_paid"] >= 1
    assert REGISTRY.get_sample_value("exchanger_stuck_work", {"kind": "withdrawal_not_paid"}) == \
        result["counts"]["withdrawal_not_paid"]
    [item] = mine(call(orders, "list_stuck_work"), w["id"])
    assert item["repair"] == ["resend_request"] and item["age_seconds"] >= 29 and "4 USDT" in item["detail"]
    assert mine(call(orders, "list_stuck_work"), manual["id"]) == []
    assert len(announced(sql, w["id"])) == 1
    call(orders, "check_stuck_work")
    orders.stop()
    orders = start()   # a restart remembers what was announced
    call(orders, "check_stuck_work")
    assert len(announced(sql, w["id"])) == 1

    with pytest.raises(errors.ValidationFailed):
        call(orders, "repair_stuck_work", "withdrawal_not_paid", w["id"], "unmatch", OPERATOR)
    with pytest.raises(errors.Conflict):
        call(orders, "repair_stuck_work", "withdrawal_not_paid", manual["id"], "resend_request", OPERATOR)
    with pytest.raises(errors.Forbidden):
        call(orders, "repair_stuck_work", "withdrawal_not_paid", w["id"], "resend_request", {})
    done = call(orders, "repair_stuck_work", "withdrawal_not_paid", w["id"], "resend_request", OPERATOR)
    assert done["withdrawal"]["status"] == "approved"
    first, again = requests_for(sql, w["id"])
    assert again["payload"]["data"] == first["payload"]["data"]   # the same request, the same key
    assert again["payload"]["data"]["idempotency_key"] == "partner-withdrawal-%s" % w["id"]
    audit = sql("SELECT actor, outcome, detail FROM orders.audit_log WHERE action = 'repair_stuck_work' "
                "AND (detail->>'id')::bigint IN (%s, %s) ORDER BY id", (w["id"], manual["id"]))
    assert [(a["actor"], a["outcome"], a["detail"]["action"]) for a in audit] == [
        ("op-stuck", "rejected", "unmatch"), ("op-stuck", "rejected", "resend_request"),
        ("op-stuck", "ok", "resend_request")]

    # payments answers: paid, no longer stuck; the gauge counts one fewer
    before = call(orders, "check_stuck_work")["counts"]["withdrawal_not_paid"]
    envelope = events.envelope("payments", events.WITHDRAWAL_PAYOUT_SENT, {
        "withdrawal_id": w["id"], "idempotency_key": "partner-withdrawal-%s" % w["id"], "amount": "4",
        "currency": "USDT", "to_account": "CAROL-USDT", "provider_id": "T-7", "error": None})
    with entrypoint_hook(orders, "handle_withdrawal_payout_sent") as hook:
        hook(envelope)
    assert mine(call(orders, "list_stuck_work"), w["id"]) == []
    after = call(orders, "check_stuck_work")["counts"]["withdrawal_not_paid"]
    assert after == before - 1
    assert REGISTRY.get_sample_value("exchanger_stuck_work", {"kind": "withdrawal_not_paid"}) == after
    assert sql("SELECT 1 FROM orders.stuck_alerts WHERE kind = 'withdrawal_not_paid' AND item_id = %s",
               (w["id"],)) == []
    assert sql("SELECT balance_after FROM orders.partner_ledger WHERE partner_id = %s ORDER BY id DESC LIMIT 1",
               (p["partner"]["id"],))[0]["balance_after"] == D("4.7")
