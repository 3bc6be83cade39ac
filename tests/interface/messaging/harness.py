"""Test harness for the messaging interface tests (real RabbitMQ, real PostgreSQL).

Every `Harness` owns unique names: a schema `msgtest_<token>` (outbox, processed_events, effects, state), a source
service `src<token>` (exchange `src<token>.events`) and a consumer service `svc<token>`, and removes all of them,
with every queue it made, when the test ends. Nothing here sleeps for a fixed time: `wait_until` polls a
condition against a deadline.
"""
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import amqp
import eventlet
import psycopg2
from prometheus_client import REGISTRY

from libs import inbox, topology
from libs.amqp_publish import ConfirmingPublisher, connect
from libs.db import Database, DatabaseProvider
from libs.messaging import batch_event_handler, reliable_event_handler
from libs.outbox import OutboxRelay, write_event
from libs.schema_parts import messaging_ddl

AMQP_URI = os.environ.get("TEST_AMQP_URI",
                          os.environ.get("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/exchanger_test"))
DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql://exchanger:exchanger@127.0.0.1:5432/exchanger_test")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

# outbox and processed_events: the one definition every service uses (libs/schema_parts.py). effects has no unique
# key on purpose: a second effect of one event shows up as a second row instead of being hidden by a constraint.
SCHEMA_SQL = messaging_ddl() + """
CREATE TABLE effects (
    id         bigserial PRIMARY KEY,
    consumer   text        NOT NULL,
    event_id   uuid        NOT NULL,
    data       jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE state (
    id    text PRIMARY KEY,
    value text NOT NULL
);
"""


def wait_until(predicate, timeout=10.0, interval=0.05, what=None):
    """Poll `predicate` until it returns something truthy (returned) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what or predicate))
        time.sleep(interval)  # green under the monkey patch: the containers keep running


def metric(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def make_consumer_class(service_name, source, event_type, schema, consumer, calls):
    """A nameko service with one `reliable_event_handler` that does its effect and its inbox claim in one
    transaction. What it does is steered by the event's data:

    - `poison: true`: raises every time (before touching the database);
    - `fail_times: n`: does the effect, then raises on its first n deliveries (so the transaction rolls back,
      claim included);
    - otherwise: the effect, once per event_id.

    Every delivery is recorded in `calls` (time, event_id, delivery number for that event, outcome).
    """

    class MsgTestConsumer:
        name = service_name
        db = DatabaseProvider(schema)

        @reliable_event_handler(source, event_type)
        def handle(self, payload):
            event_id = payload["event_id"]
            data = payload["data"]
            call = {"t": time.monotonic(), "event_id": event_id, "outcome": None,
                    "n": 1 + sum(1 for c in calls if c["event_id"] == event_id)}
            calls.append(call)
            try:
                if data.get("poison"):
                    raise RuntimeError("poison event %s" % event_id)
                with self.db.transaction() as cur:
                    if not inbox.claim(cur, consumer, event_id):
                        call["outcome"] = "duplicate"
                        return "duplicate"
                    cur.execute("INSERT INTO effects (consumer, event_id, data) VALUES (%s, %s, %s)",
                                (consumer, event_id, json.dumps(data)))
                    if call["n"] <= data.get("fail_times", 0):
                        raise RuntimeError("transient failure %d" % call["n"])
                    if call["n"] <= data.get("db_down_times", 0):
                        raise psycopg2.OperationalError("could not connect to server: Connection refused")
                call["outcome"] = "done"
                return "done"
            except Exception:
                call["outcome"] = "error"
                raise
            finally:
                call["t_end"] = time.monotonic()

    return MsgTestConsumer


def make_batch_consumer_class(service_name, source, event_type, schema, consumer, calls, batches):
    """The same consumer as `make_consumer_class`, written as a `batch_event_handler`: one transaction and one
    inbox insert per batch. `batches` records the event ids of every batch the handler was given."""

    class MsgTestBatchConsumer:
        name = service_name
        db = DatabaseProvider(schema)

        @batch_event_handler(source, event_type)
        def handle(self, payloads):
            batches.append([p["event_id"] for p in payloads])
            mine = []
            for payload in payloads:
                event_id = payload["event_id"]
                mine.append({"t": time.monotonic(), "event_id": event_id, "outcome": None,
                             "n": 1 + sum(1 for c in calls if c["event_id"] == event_id), "data": payload["data"]})
            calls.extend(mine)
            try:
                for call in mine:
                    if call["data"].get("poison"):
                        raise RuntimeError("poison event %s" % call["event_id"])
                with self.db.transaction() as cur:
                    fresh = inbox.claim_batch(cur, consumer, payloads)
                    for payload in fresh:
                        cur.execute("INSERT INTO effects (consumer, event_id, data) VALUES (%s, %s, %s)",
                                    (consumer, payload["event_id"], json.dumps(payload["data"])))
                    for call in mine:
                        if call["n"] <= call["data"].get("fail_times", 0):
                            raise RuntimeError("transient failure %d" % call["n"])
                fresh_ids = {p["event_id"] for p in fresh}
                for call in mine:
                    call["outcome"] = "done" if call["event_id"] in fresh_ids else "duplicate"
                    fresh_ids.discard(call["event_id"])
                return len(fresh)
            except Exception:
                for call in mine:
                    call["outcome"] = "error"
                raise
            finally:
                for call in mine:
                    call["t_end"] = time.monotonic()

    return MsgTestBatchConsumer


class Sub:
    """One test subscription: the topology entry, its queue names, and the consumer's record of deliveries."""

    def __init__(self, harness, event_type, max_attempts, base_delay_ms, batch=False):
        self.event_type = event_type
        self.service = harness.service
        self.sub = topology.sub(harness.source, event_type, self.service, "handle",
                                max_attempts=max_attempts, base_delay_ms=base_delay_ms)
        self.queue = topology.queue_name(harness.source, event_type, self.service, "handle")
        self.retry_queues = [topology.retry_queue_name(self.queue, n) for n in range(1, max_attempts)]
        self.dlq = topology.dead_letter_queue_name(self.queue)
        self.consumer = "%s.handle" % self.service
        self.calls = []
        self.batches = []
        if batch:
            self.service_cls = make_batch_consumer_class(self.service, harness.source, event_type, harness.schema,
                                                         self.consumer, self.calls, self.batches)
        else:
            self.service_cls = make_consumer_class(self.service, harness.source, event_type, harness.schema,
                                                   self.consumer, self.calls)
        self.container = None

    @property
    def all_queues(self):
        return [self.queue] + self.retry_queues + [self.dlq]

    def calls_for(self, event_id):
        return [c for c in self.calls if c["event_id"] == str(event_id)]


class Harness:
    def __init__(self, container_factory, tmp_path):
        self.token = uuid.uuid4().hex[:10]
        self.schema = "msgtest_%s" % self.token
        self.source = "src%s" % self.token
        self.service = "svc%s" % self.token
        self.exchange = "%s.events" % self.source
        self.tmp_path = tmp_path
        self.config = {"AMQP_URI": AMQP_URI, "DATABASE_URL": DATABASE_URL, "DLQ_WATCH_INTERVAL": 0.1,
                       "max_workers": 10}
        self._container_factory = container_factory
        self.subs = []
        self.relays = []
        self.procs = []
        self.threads = []
        self._amqp_conn = None
        self._amqp_channel = None
        conn = psycopg2.connect(DATABASE_URL)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE SCHEMA %s" % self.schema)
                cur.execute("SET search_path TO %s" % self.schema)
                cur.execute(SCHEMA_SQL)
        finally:
            conn.close()
        self.db = Database(url=DATABASE_URL, schema=self.schema, maxconn=4, application_name="msgtest")

    # -- topology and consumers ---------------------------------------------------------------------------------
    def subscribe(self, event_type, max_attempts=3, base_delay_ms=200, batch=False):
        """Adds a subscription to the topology (as a test-only handler does); nothing is declared yet."""
        s = Sub(self, event_type, max_attempts, base_delay_ms, batch)
        topology.EXTRA_SUBSCRIPTIONS.append(s.sub)
        self.subs.append(s)
        return s

    def declare(self, *subs):
        topology.declare(AMQP_URI, [s.sub for s in subs])

    def start_consumer(self, s):
        s.container = self._container_factory(s.service_cls, self.config)
        s.container.start()
        return s.container

    # -- producing ------------------------------------------------------------------------------------------------
    def write_event(self, event_type, data, state=None):
        """A state change and its outbox event in one transaction; returns the envelope."""
        with self.db.transaction() as cur:
            if state is not None:
                cur.execute("INSERT INTO state (id, value) VALUES (%s, %s)", state)
            return write_event(cur, self.source, event_type, data, schema=self.schema)

    def write_events(self, event_type, datas):
        """Several events in one transaction (so the relay sees them in one batch); returns the envelopes."""
        with self.db.transaction() as cur:
            return [write_event(cur, self.source, event_type, data, schema=self.schema) for data in datas]

    def publish(self, event_type, envelopes):
        """Publish envelopes straight to the source exchange (confirmed, mandatory), bypassing the outbox."""
        publisher = ConfirmingPublisher(AMQP_URI)
        try:
            publisher.declare_exchange(self.exchange)
            return publisher.publish_batch([
                {"message_id": e["event_id"], "exchange": self.exchange, "routing_key": event_type, "body": e}
                for e in envelopes])
        finally:
            publisher.close()

    def relay(self, amqp_uri=AMQP_URI, idle_wait=0.2):
        """An in-process relay (it sees topology.EXTRA_SUBSCRIPTIONS, a subprocess would not)."""
        db = Database(url=DATABASE_URL, schema=self.schema, maxconn=2, application_name="msgtest-relay")
        relay = OutboxRelay(db, self.source, amqp_uri=amqp_uri, idle_wait=idle_wait)
        self.relays.append(relay)
        return relay

    def spawn(self, fn, *args):
        gt = eventlet.spawn(fn, *args)
        self.threads.append(gt)
        return gt

    def run_relay_process(self, crash_at=None, once=False):
        """`python -m libs.outbox --schema S --source S` as a child process, optionally with a crash point."""
        env = dict(os.environ, DATABASE_URL=DATABASE_URL, AMQP_URI=AMQP_URI,
                   PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        env.pop("CRASH_AT", None)
        if crash_at:
            env["CRASH_AT"] = crash_at
        cmd = [sys.executable, "-m", "libs.outbox", "--schema", self.schema, "--source", self.source]
        if once:
            cmd.append("--once")
        log = open(str(self.tmp_path / ("relay-%d.log" % len(self.procs))), "wb")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        proc.log_path = log.name
        log.close()
        self.procs.append(proc)
        return proc

    def wait_exit(self, proc, timeout=20):
        rc = proc.wait(timeout=timeout)
        return rc

    def relay_log(self, proc):
        with open(proc.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    # -- observing ------------------------------------------------------------------------------------------------
    def _channel(self):
        if self._amqp_channel is None or not self._amqp_channel.is_open:
            if self._amqp_conn is None or not self._amqp_conn.connected:
                self._amqp_conn = connect(AMQP_URI)
            self._amqp_channel = self._amqp_conn.channel()
        return self._amqp_channel

    def depth(self, queue):
        """Ready messages in a queue, or None when the queue does not exist."""
        try:
            _, count, _ = self._channel().queue_declare(queue, passive=True)
            return count
        except amqp.exceptions.NotFound:
            self._amqp_channel = None
            return None

    def take_all(self, queue):
        """Remove and return every ready message of a queue (py-amqp messages)."""
        ch = self._channel()
        out = []
        while True:
            msg = ch.basic_get(queue, no_ack=False)
            if msg is None:
                return out
            ch.basic_ack(msg.delivery_tag)
            out.append(msg)

    def outbox_rows(self):
        return self.db.fetchall("SELECT * FROM outbox ORDER BY seq")

    def effects(self, event_id=None):
        if event_id is None:
            return self.db.fetchall("SELECT * FROM effects ORDER BY id")
        return self.db.fetchall("SELECT * FROM effects WHERE event_id = %s ORDER BY id", (str(event_id),))

    def processed(self, event_id=None):
        if event_id is None:
            return self.db.fetchall("SELECT * FROM processed_events")
        return self.db.fetchall("SELECT * FROM processed_events WHERE event_id = %s", (str(event_id),))

    # -- teardown -------------------------------------------------------------------------------------------------
    def close(self):
        errors = []

        def attempt(fn, *args):
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - clean up as much as possible, report at the end
                errors.append(exc)

        for proc in self.procs:
            if proc.poll() is None:
                attempt(proc.terminate)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    attempt(proc.kill)
                    attempt(proc.wait, 10)
        # A running relay ends its loop first (within idle_wait), then closes: closing its LISTEN connection under
        # a green select() would leave eventlet's hub watching a file descriptor that the next socket may reuse.
        for relay in self.relays:
            relay._stopping.set()
        for gt in self.threads:
            with eventlet.Timeout(10, False):
                attempt(gt.wait)
        for relay in self.relays:
            attempt(relay.stop)
            attempt(relay.db.close)
        # Consumers go before their queues, or nameko would see its queues vanish under it. kill, not stop: a
        # graceful stop waits ~2 s for the consumer loop, and whatever is unacked goes with the queues anyway.
        for s in self.subs:
            if s.container is not None:
                attempt(s.container.kill)
        for s in self.subs:
            if s.sub in topology.EXTRA_SUBSCRIPTIONS:
                topology.EXTRA_SUBSCRIPTIONS.remove(s.sub)
        try:
            ch = self._channel()
            for s in self.subs:
                for q in s.all_queues:
                    ch.queue_delete(q)
            ch.exchange_delete(self.exchange)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        if self._amqp_conn is not None:
            attempt(self._amqp_conn.close)
        attempt(self.db.close)
        conn = psycopg2.connect(DATABASE_URL)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("DROP SCHEMA IF EXISTS %s CASCADE" % self.schema)
        finally:
            conn.close()
        if errors:
            raise errors[0]


class FlakyProxy:
    """A TCP proxy in front of RabbitMQ that a test can cut (every connection closed, new ones closed on accept)
    and restore: a broker outage as the client sees it, without touching the shared broker."""

    def __init__(self, target=("127.0.0.1", 5672)):
        self.target = target
        self.listener = eventlet.listen(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.accepted = 0
        self.refused = 0
        self._pairs = set()
        self._server = eventlet.spawn(self._serve)

    @property
    def uri(self):
        # same credentials and virtual host as AMQP_URI, through the proxy's port
        from urllib.parse import urlsplit
        parts = urlsplit(AMQP_URI)
        return "pyamqp://%s@127.0.0.1:%d%s" % (parts.netloc.rsplit("@", 1)[0], self.port, parts.path or "/")

    def _serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                self.refused += 1
                client.close()
                continue
            try:
                upstream = eventlet.connect(self.target)
            except OSError:
                client.close()
                continue
            self.accepted += 1
            pair = (client, upstream)
            self._pairs.add(pair)
            eventlet.spawn(self._pump, client, upstream, pair)
            eventlet.spawn(self._pump, upstream, client, pair)

    def _pump(self, src, dst, pair):
        # Each socket is read by exactly one pump, which alone closes it: closing a socket that another green
        # thread waits on leaves eventlet's hub with a stale listener.
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except Exception:  # noqa: BLE001 - reset, closed: the connection is over either way
            pass
        finally:
            self._drop(pair)
            try:
                src.close()
            except Exception:  # noqa: BLE001
                pass

    def _drop(self, pair):
        """End a proxied connection: shutdown wakes both pumps (recv returns EOF), which then close."""
        self._pairs.discard(pair)
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except Exception:  # noqa: BLE001
                pass

    def cut(self):
        self.up = False
        for pair in list(self._pairs):
            self._drop(pair)

    def restore(self):
        self.up = True

    def close(self):
        self.cut()
        self._server.kill()  # first: it waits in accept() on the listener
        self.listener.close()
