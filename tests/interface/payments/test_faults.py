"""Fault tests with the payments service as its own process, killed where it hurts (docs/reliability.md,
T1, T2, T8, T11): real RabbitMQ, real PostgreSQL, the real sandbox payment system."""
import datetime
import signal
import socket
from decimal import Decimal as D

import pytest
import requests

from eventlet.patcher import original

from libs.db import Database
from libs.contracts.orders import OrderSnapshotSchema
from services.payments.adapters import build
from services.payments.matching import Matching
from services.payments.store import PaymentStore
from tests.conftest import TEST_DATABASE_URL, eventually
from tests.interface.payments.harness import utcnow

pytestmark = pytest.mark.timeout(90)

def paid_order(env, proc, **kw):
    order = env.order(**kw)
    env.created(order)
    eventually(lambda: env.db.fetchone("SELECT 1 FROM orders WHERE id = %s", (order["id"],)), message="copy")
    env.pay(order)
    eventually(lambda: [p for p in env.payments(order["id"]) if p["status"] == "matched"], message="matched")
    return order


def request_payout(env, order):
    env.changed(order, "paid", action="pay", amount_received=order["amount_in"])
    env.changed(order, "payout", action="payout")


@pytest.mark.parametrize("crash_at", ["after_provider_call", "before_provider_call"])
def test_killed_around_the_provider_call_pays_exactly_once(env, crash_at):
    """docs/reliability.md, T1: killed right after the provider moved the money, before recording it; T2: killed
    after `sending` was committed, before calling. After a restart the reconciler finds (T1) or sends with the same
    key (T2): the sandbox has exactly one transfer for the key, the recipient exactly one payment."""
    proc = env.start_process(crash_at=crash_at)
    env.wait_accounts_synced(proc)
    order = paid_order(env, proc)
    request_payout(env, order)
    assert proc.wait(timeout=30) == 137, env.log(proc)[-3000:]
    assert "CRASH_AT=%s" % crash_at in env.log(proc)

    [payout] = env.payouts(order["id"])
    assert payout["status"] == "sending"  # committed before the call; the outcome died with the process
    key = payout["idempotency_key"]
    assert len(env.transfers_by_key(key)) == (1 if crash_at == "after_provider_call" else 0)

    restarted = env.start_process()
    payout = eventually(lambda: env.payouts(order["id"])[0]["status"] == "sent" and env.payouts(order["id"])[0],
                        timeout=30, message="payout reconciled")
    assert payout["idempotency_key"] == key and payout["attempt"] == 1
    assert payout["sends"] == (1 if crash_at == "after_provider_call" else 2)
    [transfer] = env.transfers_by_key(key)
    assert payout["provider_id"] == transfer["id"]
    incoming = env.incoming(env.recipient)
    assert [D(e["amount"]) for e in incoming] == [D("92")]
    assert len(env.payouts(order["id"])) == 1
    assert len(env.events_for("payout_sent", order["id"])) == 1
    # The unacknowledged payout request came back after the restart; the inbox knew it.
    assert env.db.fetchone("SELECT count(*) AS n FROM processed_events WHERE consumer = "
                           "'payments.handle_order_status_changed'")["n"] == 2
    assert restarted.poll() is None


def test_two_pollers_on_one_account_with_overlapping_history_credit_once(env):
    """docs/reliability.md, T8: two payments processes poll the same account, each re-reading a wide overlap window:
    every payment is credited once and announced once."""
    orders = [env.order() for _ in range(12)]
    for order in orders:
        env.created(order)
    ports = free_ports(2)
    first = env.start_process(name="poller-a", OVERLAP_POLLS=50, POLL_SECONDS=0.05, POLL_PAGE_LIMIT=3,
                              METRICS_PORT=ports[0])
    second = env.start_process(name="poller-b", OVERLAP_POLLS=50, POLL_SECONDS=0.05, POLL_PAGE_LIMIT=3,
                               METRICS_PORT=ports[1])
    env.wait_accounts_synced(first)
    eventually(lambda: len(env.db.fetchall("SELECT 1 FROM orders")) == len(orders), message="order copies")
    for order in orders:
        env.pay(order)
    eventually(lambda: len(env.events("payment_received")) >= len(orders), timeout=30, message="all matched")
    # Keep both polling a while longer over the same entries.
    polled = env.db.fetchone("SELECT polled_ok_at FROM accounts WHERE currency = 'USDT'")["polled_ok_at"]
    eventually(lambda: env.db.fetchone("SELECT polled_ok_at FROM accounts WHERE currency = 'USDT'")[
        "polled_ok_at"] > polled + datetime.timedelta(seconds=1))
    payments = env.payments()
    assert len(payments) == len(orders)
    assert len({p["external_id"] for p in payments}) == len(orders)
    received = env.events("payment_received")
    assert sorted(e["data"]["order_id"] for e in received) == sorted(o["id"] for o in orders)
    assert first.poll() is None and second.poll() is None
    # Both processes really competed for the account: each either polled it or was turned away by the
    # advisory lock while the other held it (which one wins each round is up to the scheduler).
    account = env.accounts["USDT"]
    for port in ports:
        assert polls(port, account, "ok") + polls(port, account, "busy") > 0
    assert sum(polls(port, account, "ok") for port in ports) > 0


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def polls(port, account, outcome):
    text = requests.get("http://127.0.0.1:%d/metrics" % port, timeout=5).text
    line = 'exchanger_payments_polls_total{account="%s",outcome="%s"}' % (account, outcome)
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(line))


@pytest.mark.parametrize("paid_before_expiry", [True, False])
def test_payment_while_payments_is_down_and_the_order_expires_meanwhile(env, paid_before_expiry):
    """docs/reliability.md, T11: payments is down; the customer pays; the order's expiry passes and orders expires
    it. On restart the catch-up poll and the queued `expired` event arrive in either order, and the outcome is the
    same: decided by the payment system's time of the payment against expires_at (on time -> an ordinary payment,
    the order goes expired -> paid without a flag; after -> `late`)."""
    proc = env.start_process()
    env.wait_accounts_synced(proc)
    order = env.order(expires_in=2 if paid_before_expiry else 1)
    env.created(order)
    eventually(lambda: env.db.fetchone("SELECT 1 FROM orders WHERE id = %s", (order["id"],)), message="copy")
    env.stop(proc, signal.SIGKILL)

    expires_at = datetime.datetime.fromisoformat(order["expires_at"])
    if not paid_before_expiry:
        eventually(lambda: utcnow() > expires_at + datetime.timedelta(seconds=0.2), message="expiry passed")
    transfer = env.pay(order)
    paid_at = datetime.datetime.fromisoformat(transfer["created_at"])
    assert (paid_at <= expires_at) == paid_before_expiry
    eventually(lambda: utcnow() > expires_at, timeout=10, message="expiry passed")
    env.changed(order, "expired", action="expire")       # orders' timer, while payments is down

    env.start_process()
    [event] = eventually(lambda: env.events_for("payment_received", order["id"]), timeout=30)
    assert event["data"]["flag"] == (None if paid_before_expiry else "late")
    assert event["data"]["on_time"] is paid_before_expiry
    [payment] = env.payments(order["id"])
    assert payment["status"] == "matched" and payment["external_id"] == transfer["id"]
    copy = eventually(lambda: env.db.fetchone("SELECT status FROM orders WHERE id = %s AND status = 'expired'",
                                              (order["id"],)), message="expired copy")
    assert copy


def test_the_unique_constraint_alone_credits_once_when_two_pollers_race(env):
    """docs/reliability.md, T8, second line of defence: two pollers that both got past the lock (as after a lock
    bug, or two deployments on one database) ingest the same page at the same moment, on two real threads: one
    insert per payment wins and only the winner announces it."""
    real_threading = original("threading")  # threading itself is green here; psycopg2 would block the hub
    store_ids = PaymentStore(env.db).sync_accounts(env.config()["PAYMENT_ACCOUNTS"])
    orders = [env.order() for _ in range(5)]
    with env.db.transaction() as cur:
        for order in orders:
            PaymentStore(env.db).apply_order(cur, OrderSnapshotSchema().load(order))
    for order in orders:
        env.pay(order)
    adapter = build("sandbox", env.config()["PAYMENT_SYSTEMS"]["sandbox"])
    page = adapter.list_incoming(env.accounts["USDT"], None)
    account = env.db.fetchone("SELECT * FROM accounts WHERE id = %s",
                              (store_ids[("sandbox", env.accounts["USDT"])],))
    barrier = real_threading.Barrier(2)
    created = []

    def poller():
        db = Database(url=TEST_DATABASE_URL, schema=env.schema, maxconn=1)
        try:
            with db.transaction() as cur:
                barrier.wait()
                created.append(len(Matching(db).ingest(cur, account, page.entries)))
        finally:
            db.close()
    threads = [real_threading.Thread(target=poller) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(created) == len(orders), created
    assert len(env.payments()) == len(orders)
    assert len(env.events("payment_received")) == len(orders)


def test_a_payment_and_its_order_committed_at_the_same_moment_are_matched(env):
    """Defect (lost wake-up): the poller found no order for the payment's reference while the order's copy was
    being written, and the order's copy looked for waiting payments while the payment was being written; both
    committed and the payment stayed unmatched until the order expired. Two real threads, each transaction held
    open until the other has done its lookup."""
    real_threading = original("threading")
    store_ids = PaymentStore(env.db).sync_accounts(env.config()["PAYMENT_ACCOUNTS"])
    order = env.order()
    env.pay(order)
    adapter = build("sandbox", env.config()["PAYMENT_SYSTEMS"]["sandbox"])
    page = adapter.list_incoming(env.accounts["USDT"], None)
    account = env.db.fetchone("SELECT * FROM accounts WHERE id = %s", (store_ids[("sandbox", env.accounts["USDT"])],))
    looked = real_threading.Barrier(2, timeout=5)
    errors = []

    def in_one_transaction(work):
        db = Database(url=TEST_DATABASE_URL, schema=env.schema, maxconn=1)
        try:
            with db.transaction() as cur:
                work(db, cur)
                try:
                    looked.wait()      # both have looked (unless one waits on the other's lock: then time out)
                except real_threading.BrokenBarrierError:
                    pass
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            db.close()

    threads = [
        real_threading.Thread(target=in_one_transaction,
                              args=(lambda db, cur: Matching(db).ingest(cur, account, page.entries),)),
        real_threading.Thread(target=in_one_transaction,
                              args=(lambda db, cur: Matching(db).apply_new_orders(
                                  cur, [OrderSnapshotSchema().load(order)]),)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    [payment] = env.payments(order["id"]) or env.payments()
    assert payment["status"] == "matched" and payment["order_id"] == order["id"], payment
