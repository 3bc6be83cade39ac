"""Stuck work in the payments service (docs/architecture.md, "Stuck work"), each situation made directly in its
database with a tiny age: the check lists it, sets the gauge, announces it once (not again on the next run, nor
after a restart), and an operator's repair makes it go away, audited."""
from decimal import Decimal as D

import pytest
from nameko.testing.services import entrypoint_hook
from prometheus_client import REGISTRY

from libs import errors
from services.payments import domain
from tests.conftest import eventually
from tests.interface.payments.harness import paid_order_with_payout

pytestmark = pytest.mark.timeout(90)

STAFF = {"name": "op-stuck", "role": "operator", "ip": "127.0.0.1"}
TINY = {"STUCK_AFTER_SECONDS": 1, "STUCK_SENDING_AFTER_SECONDS": 1, "STUCK_CHECK_SECONDS": 3600}


def call(container, method, *args):
    with entrypoint_hook(container, method) as hook:
        return hook(*args)


def gauge(kind):
    return REGISTRY.get_sample_value("exchanger_stuck_work", {"kind": kind})


def listed(container, kind):
    return [i for i in call(container, "list_stuck_work") if i["kind"] == kind]


def announcements(env):
    return env.events("stuck_work_found")


def backdate_order(env, order_id, status, seconds=30):
    env.db.fetchone("UPDATE orders SET status = %s, version = version + 1, "
                    "updated_at = now() - %s * interval '1 second' WHERE id = %s RETURNING id",
                    (status, seconds, order_id))


def audit(env, outcome=None):
    rows = env.db.fetchall("SELECT * FROM audit_log WHERE action = 'repair_stuck_work' ORDER BY id")
    return [r for r in rows if outcome is None or r["outcome"] == outcome]


def test_an_order_in_payout_without_a_payout_is_found_by_the_timer_announced_once_and_paid_by_the_repair(env,
                                                                                                      service):
    container = service(**dict(TINY, STUCK_CHECK_SECONDS=0.3))
    order = paid_order_with_payout(env)
    # The order copy reached `payout` but no payout row was made (the handler's work was lost).
    backdate_order(env, order["id"], "payout")
    [item] = eventually(lambda: listed(container, "payout_missing"), message="listed")
    assert (item["id"], item["order_id"], item["repair"]) == (order["id"], order["id"], ["create_payout"])
    assert item["age_seconds"] >= 29
    eventually(lambda: gauge("payout_missing") == 1, message="gauge set")
    [event] = eventually(lambda: announcements(env), message="announced")
    assert event["data"]["service"] == "payments" and [i["id"] for i in event["data"]["items"]] == [order["id"]]
    # more ticks of the timer: still stuck, not announced again
    ticks = env.db.fetchone("SELECT count(*) AS n FROM stuck_alerts")["n"]
    assert ticks == 1
    before = call(container, "check_stuck_work")
    assert before == {"counts": {"payout_missing": 1, "payment_on_unpaid_order": 0, "payout_in_doubt": 0},
                      "announced": 0}
    assert len(announcements(env)) == 1

    done = call(container, "repair_stuck_work", "payout_missing", order["id"], "create_payout", STAFF)
    assert done["payout"]["status"] == "sent" and done["payout"]["amount"] == "92"
    [payout] = env.payouts(order["id"])
    assert payout["idempotency_key"] == domain.payout_key(env.db.fetchone(
        "SELECT key_prefix FROM installation")["key_prefix"], order["id"], 1)
    assert len(env.transfers_by_key(payout["idempotency_key"])) == 1
    assert env.balance(env.recipient) == D("92")
    assert listed(container, "payout_missing") == []
    eventually(lambda: gauge("payout_missing") == 0, message="gauge back to 0")
    [row] = audit(env, "ok")
    assert row["actor"] == "op-stuck" and row["order_id"] == order["id"] and row["payout_id"] == payout["id"]
    assert row["detail"]["action"] == "create_payout"
    # done once: a second repair is refused (and audited), nothing sent again
    with pytest.raises(errors.Conflict):
        call(container, "repair_stuck_work", "payout_missing", order["id"], "create_payout", STAFF)
    assert len(audit(env, "rejected")) == 1 and len(env.payouts(order["id"])) == 1


def test_a_matched_payment_of_a_canceled_order_goes_to_the_unmatched_list(env, service):
    container = service(**TINY)
    order = paid_order_with_payout(env)
    backdate_order(env, order["id"], "canceled")
    [payment] = env.payments(order["id"])
    env.db.fetchone("UPDATE payments SET updated_at = now() - interval '30 seconds' WHERE id = %s RETURNING id",
                    (payment["id"],))
    assert call(container, "check_stuck_work")["counts"]["payment_on_unpaid_order"] == 1
    [item] = listed(container, "payment_on_unpaid_order")
    assert (item["id"], item["order_id"], item["repair"]) == (payment["id"], order["id"], ["unmatch"])
    assert gauge("payment_on_unpaid_order") == 1
    assert len(announcements(env)) == 1
    assert call(container, "check_stuck_work")["announced"] == 0

    # a restart remembers what was announced: no second letter
    container.stop()
    container = service(**TINY)
    assert call(container, "check_stuck_work")["announced"] == 0
    assert len(announcements(env)) == 1

    # wrong action or no operator: refused, nothing changes
    with pytest.raises(errors.ValidationFailed):
        call(container, "repair_stuck_work", "payment_on_unpaid_order", payment["id"], "create_payout", STAFF)
    with pytest.raises(errors.Forbidden):
        call(container, "repair_stuck_work", "payment_on_unpaid_order", payment["id"], "unmatch", None)
    assert len(audit(env, "rejected")) == 1

    done = call(container, "repair_stuck_work", "payment_on_unpaid_order", payment["id"], "unmatch", STAFF)
    assert done["payment"]["status"] == "unmatched" and done["payment"]["reason_code"] == "stuck"
    [row] = env.payments(order["id"])
    assert (row["status"], row["order_id"], row["candidate_order_id"]) == ("unmatched", None, order["id"])
    [unmatched] = [e for e in env.events("payment_unmatched") if e["data"]["reason_code"] == "stuck"]
    assert unmatched["data"]["payment"]["id"] == payment["id"]
    assert listed(container, "payment_on_unpaid_order") == []
    call(container, "check_stuck_work")
    assert gauge("payment_on_unpaid_order") == 0
    assert env.db.fetchall("SELECT * FROM stuck_alerts") == []  # forgotten: a new episode would be announced


def test_a_payout_sending_past_the_reconcilers_reach_is_reconciled_by_the_repair(env, service):
    # The reconciler itself ticks only at start: the payout made afterwards stays in doubt.
    container = service(**dict(TINY, RECONCILE_SECONDS=3600))
    order = paid_order_with_payout(env)
    backdate_order(env, order["id"], "payout", seconds=0)
    key = domain.payout_key(env.db.fetchone("SELECT key_prefix FROM installation")["key_prefix"], order["id"], 1)
    payout = env.db.fetchone(
        "INSERT INTO payouts (order_id, attempt, idempotency_key, order_version, system, from_account, to_account, "
        "amount, currency, reference, received, status, sends, attempted_at, created_at) VALUES "
        "(%s, 1, %s, %s, 'sandbox', %s, %s, 92, 'EUR', %s, 100, 'sending', 1, now() - interval '30 seconds', "
        "now() - interval '30 seconds') RETURNING *",
        (order["id"], key, order["version"] + 1, env.accounts["EUR"], env.recipient, order["reference"]))
    result = call(container, "check_stuck_work")
    assert result["counts"] == {"payout_missing": 0, "payment_on_unpaid_order": 0, "payout_in_doubt": 1}
    [item] = listed(container, "payout_in_doubt")
    assert (item["id"], item["order_id"], item["repair"]) == (payout["id"], order["id"], ["reconcile"])
    assert len(announcements(env)) == 1 and call(container, "check_stuck_work")["announced"] == 0

    done = call(container, "repair_stuck_work", "payout_in_doubt", payout["id"], "reconcile", STAFF)
    # the provider had nothing under the key: sent again with the same key, once
    assert done["outcome"] == "resent_sent" and done["payout"]["status"] == "sent"
    assert len(env.transfers_by_key(key)) == 1 and env.balance(env.recipient) == D("92")
    assert listed(container, "payout_in_doubt") == []
    [row] = audit(env, "ok")
    assert row["payout_id"] == payout["id"] and row["detail"]["outcome"] == "resent_sent"
