"""Payouts of partner withdrawals (orders' partner_payout_requested, docs/partners.md): sent at most once under a
key with the installation's prefix, announced as withdrawal_payout_sent / _failed, resolved by the reconciler when
in doubt, or by an operator with the order payouts' rules."""
import random
from decimal import Decimal as D

import pytest

from libs.contracts import events
from libs.amqp_publish import ConfirmingPublisher
from tests.conftest import eventually

pytestmark = pytest.mark.timeout(60)


def request(env, amount="25", currency="EUR", to_account=None):
    withdrawal_id = random.randint(10 ** 6, 10 ** 9)  # keys are per withdrawal: unique on the session's sandbox
    data = {"withdrawal_id": withdrawal_id, "partner_id": 7, "currency": currency, "amount": amount,
            "to_account": to_account or env.recipient,
            "idempotency_key": "partner-withdrawal-%s-%s" % (withdrawal_id, env.tag)}
    return events.envelope("orders", "partner_payout_requested", data)


def publish(env, envelope):
    publisher = ConfirmingPublisher(env.amqp_uri)
    try:
        assert publisher.publish_batch([{"message_id": envelope["event_id"], "exchange": "orders.events",
                                         "routing_key": envelope["event_type"], "body": envelope}]) == ["ok"]
    finally:
        publisher.close()


def payout_row(env, withdrawal_id, status):
    return eventually(lambda: env.db.fetchone("SELECT * FROM withdrawal_payouts WHERE withdrawal_id = %s AND "
                                              "status = %s", (withdrawal_id, status)),
                      message="withdrawal payout %s" % status)


def answers(env, event_type, withdrawal_id):
    return [e for e in env.events(event_type) if e["data"]["withdrawal_id"] == withdrawal_id]


def test_withdrawal_payout_is_sent_once_and_announced_also_under_redelivery(env, service):
    service()
    envelope = request(env)
    wid = envelope["data"]["withdrawal_id"]
    publish(env, envelope)
    row = payout_row(env, wid, "sent")
    # The provider key is this installation's (see test_withdrawal_payout_key_carries_the_installation_prefix).
    prefix = env.db.fetchone("SELECT key_prefix FROM installation")["key_prefix"]
    assert row["idempotency_key"] == "partner-withdrawal-%s-%d" % (prefix, wid) and row["sends"] == 1
    assert row["from_account"] == env.accounts["EUR"] and row["amount"] == D("25")
    [event] = eventually(lambda: answers(env, "withdrawal_payout_sent", wid))
    assert event["data"]["provider_id"] == row["provider_id"] and event["data"]["amount"] == "25"
    assert [D(e["amount"]) for e in env.incoming(env.recipient)] == [D("25")]

    publish(env, envelope)  # the same event again: the inbox drops it
    again = events.envelope("orders", "partner_payout_requested", envelope["data"])
    publish(env, again)     # the same request under a new event id: answered again, never paid again
    eventually(lambda: len(answers(env, "withdrawal_payout_sent", wid)) == 2, message="answered again")
    assert env.db.fetchone("SELECT count(*) AS n FROM withdrawal_payouts WHERE withdrawal_id = %s",
                           (wid,))["n"] == 1
    assert [D(e["amount"]) for e in env.incoming(env.recipient)] == [D("25")]
    assert env.balance(env.recipient) == D("25")
    assert len(env.transfers_by_key(row["idempotency_key"])) == 1


def test_unknown_outcome_is_reconciled_by_the_same_key(env, service):
    service()
    env.sandbox.fault(operation="transfer", mode="timeout", apply="after", count=1, delay_s="1.5",
                      account=env.recipient)
    envelope = request(env, amount="10")
    wid = envelope["data"]["withdrawal_id"]
    publish(env, envelope)
    row = payout_row(env, wid, "sent")
    assert row["checks"] >= 1 and row["sends"] == 1  # found by the reconciler's lookup, not sent again
    assert len(answers(env, "withdrawal_payout_sent", wid)) == 1
    assert [D(e["amount"]) for e in env.incoming(env.recipient)] == [D("10")]


def test_no_payout_account_is_a_failure_without_a_call(env, service):
    service()
    envelope = request(env, currency="BTC")
    wid = envelope["data"]["withdrawal_id"]
    publish(env, envelope)
    row = payout_row(env, wid, "failed")
    assert row["sends"] == 0 and "no payout account" in row["error"]
    [event] = eventually(lambda: answers(env, "withdrawal_payout_failed", wid))
    assert "no payout account" in event["data"]["error"]
    assert env.incoming(env.recipient) == []


def test_withdrawal_payout_key_carries_the_installation_prefix(env, service):
    """Like order payouts (docs/payments.md): a reset database or a second environment restarts withdrawal ids,
    and without the installation's prefix it would present an old transfer's key to a shared provider."""
    service()
    envelope = request(env)
    wid = envelope["data"]["withdrawal_id"]
    publish(env, envelope)
    row = payout_row(env, wid, "sent")
    prefix = env.db.fetchone("SELECT key_prefix FROM installation")["key_prefix"]
    assert row["idempotency_key"] == "partner-withdrawal-%s-%d" % (prefix, wid)
    assert len(env.transfers_by_key(row["idempotency_key"])) == 1


def test_existing_withdrawal_payout_keeps_its_stored_key(env, service):
    """A row made before the prefix rule keeps its key: the reconciler sends and looks up under the stored one."""
    wid = random.randint(10 ** 6, 10 ** 9)
    old_key = "partner-withdrawal-%d-%s" % (wid, env.tag)
    env.db.fetchone(
        "INSERT INTO withdrawal_payouts (withdrawal_id, partner_id, idempotency_key, system, from_account, "
        "to_account, amount, currency, reference, status, sends, attempted_at) VALUES (%s, 7, %s, 'sandbox', %s, "
        "%s, 3, 'EUR', %s, 'sending', 1, now() - interval '1 hour') RETURNING id",
        (wid, old_key, env.accounts["EUR"], env.recipient, old_key))
    service()
    row = payout_row(env, wid, "sent")
    assert row["idempotency_key"] == old_key
    assert len(env.transfers_by_key(old_key)) == 1
    assert [D(e["amount"]) for e in env.incoming(env.recipient)] == [D("3")]


def in_doubt(env, wid):
    return eventually(lambda: env.db.fetchone("SELECT * FROM withdrawal_payouts WHERE withdrawal_id = %s AND "
                                              "status = 'sending' AND error IS NOT NULL", (wid,)),
                      message="withdrawal payout in doubt")


def test_operator_resolves_a_withdrawal_payout_with_the_order_payout_rules(env, service):
    """resolve_withdrawal_payout: refused while the call may be in flight; the provider is asked first (what it
    has is `sent`, whatever the operator asked); past the reach and unknown to the provider, the operator's
    word is recorded, claimed by a compare-and-set, audited and announced."""
    from tests.interface.payments.test_payouts import resolve_ok, resolve_refused
    # Reach: the longest call (0.5 s + 0.5 s connect) + 1 s = 2 s. The reconciler timer stays out of it.
    container = service(RECONCILE_SECONDS=600, RECONCILE_AFTER_SECONDS=0.1)
    env.sandbox.fault(operation="transfer", mode="timeout", apply="before", count=1, delay_s="1",
                      account=env.recipient)
    lost = request(env, amount="4")
    publish(env, lost)
    lost_row = in_doubt(env, lost["data"]["withdrawal_id"])
    assert "in flight" in resolve_refused(container, "resolve_withdrawal_payout", lost_row["id"], "failed")

    env.sandbox.fault(operation="transfer", mode="error", apply="after", count=1, account=env.recipient)
    moved = request(env, amount="6")
    publish(env, moved)
    moved_row = in_doubt(env, moved["data"]["withdrawal_id"])
    assert "it was sent" in resolve_refused(container, "resolve_withdrawal_payout", moved_row["id"], "failed")
    row = env.db.fetchone("SELECT * FROM withdrawal_payouts WHERE id = %s", (moved_row["id"],))
    [transfer] = env.transfers_by_key(row["idempotency_key"])
    assert row["status"] == "sent" and row["provider_id"] == transfer["id"]
    assert eventually(lambda: answers(env, "withdrawal_payout_sent", moved["data"]["withdrawal_id"]))

    eventually(lambda: env.db.fetchone("SELECT 1 FROM withdrawal_payouts WHERE id = %s AND attempted_at < now() - "
                                       "interval '2.2 seconds'", (lost_row["id"],)), message="past the reach")
    done = resolve_ok(container, "resolve_withdrawal_payout", lost_row["id"], "failed", "not in the statement")
    assert done["status"] == "failed" and done["resolved_by"] == "root" and "not in the statement" in done["error"]
    [event] = eventually(lambda: answers(env, "withdrawal_payout_failed", lost["data"]["withdrawal_id"]))
    assert "not in the statement" in event["data"]["error"]
    assert resolve_refused(container, "resolve_withdrawal_payout", lost_row["id"], "sent")  # failed stays failed
    audit = env.db.fetchall("SELECT action, outcome FROM audit_log WHERE payout_id IN (%s, %s) ORDER BY id",
                            (lost_row["id"], moved_row["id"]))
    assert [(a["action"], a["outcome"]) for a in audit] == [("resolve_withdrawal_payout", "rejected")] * 2 + [
        ("resolve_withdrawal_payout", "ok"), ("resolve_withdrawal_payout", "rejected")]
    assert [D(e["amount"]) for e in env.incoming(env.recipient)] == [D("6")]
