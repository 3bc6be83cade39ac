"""The partner ledger's running balance under interleaving writers, with two orders service containers taking RPC
calls from one queue (as two instances would): every row's balance_after is the running sum in the order the
partner's lock was taken, and the balance equals the sum of the ledger."""
import time
from decimal import Decimal as D

import psycopg2
import pytest
from nameko.containers import ServiceContainer
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy

from services.orders.service import OrdersService
from tests.interface.partners.conftest import STAFF, call, manual_direction, partner, unique_email


@pytest.fixture
def second_orders(nameko_config, orders):
    container = ServiceContainer(OrdersService, dict(nameko_config, METRICS_PORT=None))
    container.start()
    yield container
    container.kill()


def _processing_order(container, direction, code):
    """A referred manual order one step from `completed` (finalize credits the partner)."""
    order = call(container, "create_order", {"direction_id": direction["id"], "amount_in": "100",
                                             "email": unique_email("customer"), "recipient": "W-1",
                                             "partner_code": code}, {"ip": "127.0.0.1"})
    call(container, "claim_paid", order["token"])
    call(container, "process", order["id"], "checked", STAFF)
    return order


def _results(replies):
    out = []
    for reply in replies:
        try:
            out.append(reply.result())
        except RemoteError as exc:
            out.append(exc)
    return out


def _assert_running_balance(sql, partner_id):
    rows = sql("SELECT id, kind, amount, balance_after FROM orders.partner_ledger WHERE partner_id = %s "
               "AND currency = 'USDT' ORDER BY id", (partner_id,))
    running = D(0)
    for row in rows:
        running += row["amount"]
        assert row["balance_after"] == running, rows
    return rows, running


def test_the_partner_ledgers_running_balance_can_lose_a_credit(orders, second_orders, sql, nameko_config,
                                                             migrated_database):
    p = partner(orders, sql)
    pid, code = p["partner"]["id"], p["partner"]["code"]
    call(orders, "update_partner", pid, {"percent": "10", "base": "amount"}, STAFF)   # 10.7 USDT an order
    call(orders, "update_commission", {"min_withdrawal": "1"}, STAFF)
    direction = manual_direction(orders)
    first = _processing_order(orders, direction, code)
    call(orders, "finalize", first["id"], None, STAFF)                                   # balance 10.7
    pending = [_processing_order(orders, direction, code) for _ in range(7)]

    # An interleaving forced by holding the partner's row: a withdrawal queues for the lock first, then a credit
    # arrives; both go on once it is let go.
    holder = psycopg2.connect(migrated_database)
    try:
        holder.cursor().execute("SELECT 1 FROM orders.partners WHERE id = %s FOR UPDATE", (pid,))
        with ServiceRpcProxy("orders", nameko_config) as rpc:
            withdrawal = rpc.request_withdrawal.call_async(p["id"], "2", "USDT", "CAROL-USDT", None)
            time.sleep(0.4)
            credit = rpc.finalize.call_async(pending[0]["id"], None, STAFF)
            time.sleep(0.4)
            holder.commit()
            assert _results([withdrawal, credit])[1]["status"] == "completed"
            # then more credits and withdrawals at once, spread over both containers
            replies = [rpc.finalize.call_async(o["id"], None, STAFF) for o in pending[1:]]
            replies += [rpc.request_withdrawal.call_async(p["id"], "1", "USDT", "CAROL-USDT", None)
                        for _ in range(6)]
            results = _results(replies)
    finally:
        holder.close()
    assert all(isinstance(r, dict) for r in results), results

    rows, running = _assert_running_balance(sql, pid)
    assert [r["kind"] for r in rows].count("credit") == 8 and running == D("10.7") * 8 - 2 - 6
    overview = call(second_orders, "partner_overview", p["id"])
    assert D(overview["balances"][0]["balance"]) == running
    # the next withdrawal sees every credit: all of the balance can be asked for, not a cent more
    assert call(orders, "request_withdrawal", p["id"], str(running), "USDT", "CAROL-USDT", None)["status"] == \
        "requested"
    _, running = _assert_running_balance(sql, pid)
    assert running == 0
