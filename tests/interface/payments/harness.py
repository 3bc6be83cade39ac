"""Harness of the payments interface and fault tests: real PostgreSQL, real RabbitMQ, the real sandbox payment
system (served by werkzeug in this process), and the payments service either in a nameko container in this
process or as its own `nameko run` process (killed and restarted by the fault tests).

Isolation: the session has a private RabbitMQ virtual host (so no other payments instance, e.g. of a concurrent
end-to-end run, takes its events) whose queues every test empties first; every test has a private copy of the
payments schema (DB_SCHEMA) and its own sandbox accounts (uuid names), on a sandbox with a private schema too
(conftest.py). The orders service is played by the test: it publishes order events as orders would.
"""
import datetime
import os
import signal
import subprocess
import sys
import uuid

import amqp
import psycopg2
import yaml
from yoyo import get_backend, read_migrations

from libs import topology
from libs.contracts import events
from libs.amqp_publish import ConfirmingPublisher, connect
from libs.db import Database
from libs.migrate import _with_schema
from tests.conftest import ROOT, TEST_AMQP_URI, TEST_DATABASE_URL, eventually

PAYMENT_SUBSCRIPTIONS = [s for s in topology.SUBSCRIPTIONS if s.service == "payments"]


def migrate_private_schema(schema, folder, url=TEST_DATABASE_URL):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA %s" % schema)
    conn.close()
    backend = get_backend(_with_schema(url, schema))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(read_migrations(os.path.join(ROOT, folder))))


def drop_schema(schema, url=TEST_DATABASE_URL):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS %s CASCADE" % schema)
    conn.close()


def _rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", "-q"] + list(args), check=True, capture_output=True, timeout=30)


def private_vhost(name):
    """A virtual host of its own on the local broker; returns its AMQP URI."""
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    return TEST_AMQP_URI.rsplit("/", 1)[0] + "/" + name


def delete_vhost(name):
    try:
        _rabbitmqctl("delete_vhost", name)
    except (subprocess.SubprocessError, OSError):
        pass


def purge_queues(amqp_uri):
    """Declare the payments service's queues and empty every queue of the topology: what an earlier test left
    (or a killed process had unacknowledged) must not reach this test's service."""
    topology.declare(amqp_uri, PAYMENT_SUBSCRIPTIONS)
    conn = connect(amqp_uri)
    try:
        ch = conn.channel()
        for s in topology.SUBSCRIPTIONS:
            queue = topology.queue_name(s.source, s.event_type, s.service, s.method)
            for name in [queue, topology.dead_letter_queue_name(queue)] + [
                    topology.retry_queue_name(queue, n) for n in range(1, s.max_attempts)]:
                try:
                    ch.queue_purge(name)
                except amqp.exceptions.NotFound:
                    ch = conn.channel()
    finally:
        conn.close()


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class PayEnv:
    """One test's world. `sandbox` is a tests.interface.sandbox_fixtures.Client on the shared sandbox server."""

    def __init__(self, sandbox, tmp_path, amqp_uri):
        self.tag = uuid.uuid4().hex[:8]
        self.sandbox = sandbox
        self.tmp_path = tmp_path
        self.schema = "paytest_%s" % self.tag
        migrate_private_schema(self.schema, "services/payments/migrations")
        self.amqp_uri = amqp_uri
        purge_queues(amqp_uri)
        self.db = Database(url=TEST_DATABASE_URL, schema=self.schema, maxconn=4, application_name="paytest")
        # The exchanger's accounts at the sandbox (payments polls these) and a customer's wallets.
        self.accounts = {}
        self.wallets = {}
        for currency, balance in (("USDT", "100000"), ("EUR", "100000")):
            self.accounts[currency] = sandbox.account(currency, balance=balance, owner="exchanger", name="EXCH")
            self.wallets[currency] = sandbox.account(currency, balance="5000", owner="customer", name="CUST")
        self.recipient = sandbox.account("EUR", balance="0", owner="customer", name="RCPT")
        self.procs = []
        self._next_order = 1000
        self.orders = {}

    # -- configuration ---------------------------------------------------------------------------------------
    def config(self, **overrides):
        cfg = {
            "AMQP_URI": self.amqp_uri, "DATABASE_URL": TEST_DATABASE_URL, "DB_SCHEMA": self.schema,
            "max_workers": 10, "DB_POOL_SIZE": 20, "DLQ_WATCH_INTERVAL": 1, "OUTBOX_IDLE_WAIT": 0.2,
            "POLL_SECONDS": 0.2, "POLL_CONCURRENCY": 4, "RECONCILE_SECONDS": 0.3, "RECONCILE_AFTER_SECONDS": 0.5,
            "BALANCE_REFRESH_SECONDS": 60,
            "PAYMENT_SYSTEMS": {"sandbox": {"adapter": "sandbox", "url": self.sandbox.url, "timeout": 0.5}},
            "PAYMENT_ACCOUNTS": [{"system": "sandbox", "account": acc, "currency": cur}
                                 for cur, acc in self.accounts.items()],
        }
        cfg.update(overrides)
        return cfg

    # -- the payments service as its own process ----------------------------------------------------------------
    def start_process(self, crash_at=None, name="payments", **overrides):
        cfg = self.config(**overrides)
        cfg["LOGGING"] = {"version": 1, "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: "
                                                                           "%(message)s"}},
                          "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
                          "root": {"level": "INFO", "handlers": ["console"]}}
        path = self.tmp_path / ("%s-%d.yml" % (name, len(self.procs)))
        path.write_text(yaml.safe_dump(cfg))
        env = dict(os.environ, PYTHONPATH=ROOT)
        for key in ("CRASH_AT", "PAYMENT_ACCOUNTS", "PAYMENTS_METRICS_PORT"):
            env.pop(key, None)
        if crash_at:
            env["CRASH_AT"] = crash_at
        log_path = str(self.tmp_path / ("%s-%d.log" % (name, len(self.procs))))
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "nameko"), "run",
                                     "services.payments.service", "--config", str(path)],
                                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        proc.log_path = log_path
        self.procs.append(proc)
        return proc

    def log(self, proc):
        with open(proc.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, proc, sig=signal.SIGKILL):
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)

    def wait_accounts_synced(self, proc=None, timeout=30):
        """The service is up when it has synced its accounts (its first poll tick)."""
        def ready():
            if proc is not None:
                assert proc.poll() is None, "payments exited %s:\n%s" % (proc.returncode, self.log(proc)[-3000:])
            rows = self.db.fetchall("SELECT polled_ok_at FROM accounts")
            return len(rows) == len(self.accounts) and all(r["polled_ok_at"] for r in rows)
        eventually(ready, timeout=timeout, interval=0.1, message="payments polling its accounts")

    # -- playing the orders service ------------------------------------------------------------------------------
    def order(self, exchange_type="auto", amount_in="100", amount_out="92", currency_in="USDT", currency_out="EUR",
              status="new", expires_in=3600, rate_in="1", rate_out="0.92", fee="0", recipient=None):
        self._next_order += 1
        order_id = self._next_order
        # The orders alphabet has no 0, 1, O or I; hex digits mapped into it.
        reference = "EX" + uuid.uuid4().hex.upper().translate(str.maketrans("01", "ZY"))[:10]
        order = {
            "id": order_id, "version": 1, "status": status, "exchange_type": exchange_type, "direction_id": 1,
            "currency_in": currency_in, "amount_in": amount_in, "currency_out": currency_out,
            "amount_out": amount_out, "rate_in": rate_in, "rate_out": rate_out, "fee": fee,
            "payment_flag": None, "email": "c@example.com", "recipient": recipient or self.recipient,
            "reference": reference, "token": uuid.uuid4().hex,
            "pay_to": {"system": "sandbox", "account": self.accounts[currency_in], "amount": amount_in,
                       "currency": currency_in, "reference": reference},
            "expires_at": (utcnow() + datetime.timedelta(seconds=expires_in)).isoformat(),
            "created_at": utcnow().isoformat(), "updated_at": utcnow().isoformat(),   # a complete snapshot
        }
        self.orders[order_id] = order
        return order

    def publish(self, event_type, data):
        envelope = events.envelope("orders", event_type, data)
        publisher = ConfirmingPublisher(self.amqp_uri)
        try:
            assert publisher.publish_batch([{"message_id": envelope["event_id"], "exchange": "orders.events",
                                             "routing_key": event_type, "body": envelope}]) == ["ok"]
        finally:
            publisher.close()
        return envelope

    def created(self, order):
        return self.publish("order_created", {"order": order})

    def changed(self, order, to_status, action="x", **changes):
        """Publish order_status_changed with the next version (and the changes), as orders would."""
        from_status = order["status"]
        order.update(changes, status=to_status, version=order["version"] + 1)
        return self.publish("order_status_changed", {
            "order": dict(order), "from_status": from_status, "to_status": to_status, "action": action,
            "actor": {"kind": "system", "name": "test"}, "note": None})

    # -- the customer ----------------------------------------------------------------------------------------------
    def pay(self, order, amount=None, reference=None, currency=None):
        currency = currency or order["currency_in"]
        r = self.sandbox.transfer(self.wallets[currency], self.accounts[currency],
                                  amount or order["amount_in"], currency=currency,
                                  reference=order["reference"] if reference is None else reference)
        assert r.status_code == 201, r.text
        return r.json()

    # -- observing ---------------------------------------------------------------------------------------------------
    def payments(self, order_id=None):
        if order_id is None:
            return self.db.fetchall("SELECT * FROM payments ORDER BY id")
        return self.db.fetchall("SELECT * FROM payments WHERE order_id = %s OR candidate_order_id = %s "
                                "ORDER BY id", (order_id, order_id))

    def payouts(self, order_id):
        return self.db.fetchall("SELECT * FROM payouts WHERE order_id = %s ORDER BY attempt", (order_id,))

    def events(self, event_type=None):
        rows = self.db.fetchall("SELECT event_type, payload FROM outbox ORDER BY seq")
        return [r["payload"] for r in rows if event_type is None or r["event_type"] == event_type]

    def events_for(self, event_type, order_id):
        return [e for e in self.events(event_type) if e["data"].get("order_id") == order_id]

    def incoming(self, account):
        """The 'in' entries of a sandbox account."""
        r = self.sandbox.get("/api/accounts/%s/history" % account, params={"limit": 1000})
        assert r.status_code == 200, r.text
        return [e for e in r.json()["items"] if e["type"] == "in"]

    def transfers_by_key(self, key):
        r = self.sandbox.get("/api/transfers", params={"idempotency_key": key})
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def balance(self, account):
        return self.sandbox.balance(account)

    def close(self):
        for proc in self.procs:
            try:
                self.stop(proc)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.db.close()
        drop_schema(self.schema)


def paid_order_with_payout(env, **order_kw):
    """An `auto` order the customer paid exactly (ingested and matched), ready for the payout request."""
    order = env.order(**order_kw)
    env.created(order)
    eventually(lambda: env.db.fetchone("SELECT 1 FROM orders WHERE id = %s", (order["id"],)),
               message="order copy")
    env.pay(order)
    eventually(lambda: [p for p in env.payments(order["id"]) if p["status"] == "matched"], message="payment matched")
    return order
