"""Payouts of partner withdrawals (orders' partner_payout_requested, docs/partners.md): sent at most once with the
event's idempotency key, announced as withdrawal_payout_sent / _failed, resolved by the reconciler when in doubt."""
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
    assert row["idempotency_key"] == envelope["data"]["idempotency_key"] and row["sends"] == 1
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
