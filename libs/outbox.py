"""Transactional outbox (docs/reliability.md, P8).

`write_event(cur, ...)` inserts the event in the caller's transaction, so the state change and its event commit
together or not at all. `OutboxRelay` publishes unpublished rows with publisher confirms and mandatory routing,
then marks them published. A crash between publish and mark means the event is published again: consumers
dedupe on `event_id` (libs/inbox.py), so it still has one effect.

Run inside a service (`OutboxRelayProvider`) or alone: `python -m libs.outbox --schema orders --source orders`.
"""
import argparse
import json
import logging
import threading
import time

from nameko.extensions import DependencyProvider

from libs import config, metrics, topology
from libs.amqp_publish import ConfirmingPublisher, PublishError
from libs.contracts import events
from libs.db import Database, Listener, execute_batch
from libs.faults import crash_point

log = logging.getLogger(__name__)

def notify_channel(schema):
    return "outbox_%s" % schema


def event_statements(source, event_type, data, aggregate_id=None, schema=None):
    """The statements that add one event to the outbox: ([(sql, params), ...], envelope).
    Run them in the transaction of the state change (libs.db.execute_batch sends them with other writes)."""
    message = events.envelope(source, event_type, data)
    return [
        ("INSERT INTO outbox (id, source, event_type, aggregate_id, payload) VALUES (%s, %s, %s, %s, %s)",
         (message["event_id"], source, event_type, None if aggregate_id is None else str(aggregate_id),
          json.dumps(message))),
        # Delivered only if the transaction commits: wakes the relay at once instead of at its next poll.
        ("SELECT pg_notify(%s, '')", (notify_channel(schema or source),)),
    ], message


def write_event(cur, source, event_type, data, aggregate_id=None, schema=None):
    """Add one event to the outbox in the current transaction; returns its envelope (with event_id)."""
    statements, message = event_statements(source, event_type, data, aggregate_id, schema)
    execute_batch(cur, statements)
    return message


class OutboxRelay:
    def __init__(self, database, source, amqp_uri=None, batch_size=200, idle_wait=1.0, coalesce=0.02):
        self.db = database
        self.source = source
        self.schema = database.schema
        self.amqp_uri = amqp_uri or config.amqp_uri()
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self.coalesce = coalesce
        self.publisher = ConfirmingPublisher(self.amqp_uri)
        self.exchange = "%s.events" % source
        self._topology_ready = False
        self._stopping = threading.Event()
        self.listener = Listener(lambda: database.connect(autocommit=True), notify_channel(database.schema))
        self._last_backlog_check = 0.0
        self._last_cleanup = 0.0

    def prepare(self):
        """Queues exist before we publish, or an event with no queue yet is dropped (docs/reliability.md, pitfall N3):
        declare every subscription of the topology."""
        if not self._topology_ready:
            topology.declare_all(self.amqp_uri)
            self.publisher.declare_exchange(self.exchange)
            self._topology_ready = True

    def run_once(self):
        """Publish one batch; returns the number of rows handled."""
        self.prepare()
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT id, event_type, payload FROM outbox WHERE published_at IS NULL "
                "ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED", (self.batch_size,))
            rows = cur.fetchall()
            if not rows:
                return 0
            crash_point("relay_before_publish")
            batch = [{"message_id": str(r["id"]), "exchange": self.exchange, "routing_key": r["event_type"],
                      "body": json.dumps(r["payload"])} for r in rows]
            try:
                results = self.publisher.publish_batch(batch)
            except PublishError as exc:
                # Recorded when this transaction commits (raising here would roll the record back), then raised.
                cur.execute("UPDATE outbox SET attempts = attempts + 1, last_error = %s WHERE id = ANY(%s)",
                            (str(exc)[:500], [r["id"] for r in rows]))
                metrics.OUTBOX_PUBLISH_ERRORS.labels(self.source).inc(len(rows))
                failure = exc
            else:
                crash_point("relay_after_publish")
                ok = [r["id"] for r, res in zip(rows, results) if res == "ok"]
                returned = [r["id"] for r, res in zip(rows, results) if res == "returned"]
                nacked = [r["id"] for r, res in zip(rows, results) if res == "nacked"]
                if ok:
                    cur.execute("UPDATE outbox SET published_at = now(), routed = true WHERE id = ANY(%s)", (ok,))
                if returned:
                    subscribed = topology.subscribed_event_types(self.source)
                    lost = [r["id"] for r, res in zip(rows, results)
                            if res == "returned" and r["event_type"] in subscribed]
                    unrouted = [row_id for row_id in returned if row_id not in lost]
                    if lost:
                        # Someone subscribes, yet no queue took it: a queue was deleted or never declared on this
                        # broker. Never marked published (that would lose it): declare the topology again and retry.
                        cur.execute("UPDATE outbox SET attempts = attempts + 1, last_error = 'returned: no queue "
                                    "bound although subscribed' WHERE id = ANY(%s)", (lost,))
                        self._topology_ready = False
                        log.warning("outbox %s: %d events came back unrouted although subscribed; declaring the "
                                    "topology again", self.source, len(lost))
                    if unrouted:
                        # Nobody subscribes to this event type: kept and counted, not retried forever.
                        cur.execute("UPDATE outbox SET published_at = now(), routed = false WHERE id = ANY(%s)",
                                    (unrouted,))
                        metrics.OUTBOX_UNROUTED.labels(self.source).inc(len(unrouted))
                    returned = unrouted
                if nacked:
                    cur.execute("UPDATE outbox SET attempts = attempts + 1, last_error = 'nacked' "
                                "WHERE id = ANY(%s)", (nacked,))
                metrics.OUTBOX_PUBLISHED.labels(self.source).inc(len(ok) + len(returned))
                return len(rows)
        raise failure

    def update_backlog_metric(self, force=False):
        now = time.monotonic()
        if not force and now - self._last_backlog_check < 5:
            return
        self._last_backlog_check = now
        row = self.db.fetchone("SELECT count(*) AS n, min(created_at) AS oldest FROM outbox "
                               "WHERE published_at IS NULL")
        metrics.OUTBOX_BACKLOG.labels(self.source).set(row["n"])
        if now - self._last_cleanup > 3600:
            self._last_cleanup = now
            self.db.fetchone("WITH gone AS (DELETE FROM outbox WHERE published_at < now() - interval '7 days' "
                             "RETURNING 1) SELECT count(*) FROM gone")

    def run_forever(self):
        backoff = 0.5
        try:
            while not self._stopping.is_set():
                try:
                    handled = self.run_once()
                    self.update_backlog_metric()
                    backoff = 0.5
                    if handled >= self.batch_size:
                        continue
                    if handled:
                        # Under load, let a few more commits gather: one confirmed batch instead of many small
                        # ones (the relay shares its process's CPU with the service).
                        self._stopping.wait(self.coalesce)
                    else:
                        self.listener.wait(self.idle_wait)
                except Exception:  # noqa: BLE001 - the relay must outlive broker and database outages
                    log.exception("outbox relay %s: publish failed, retrying in %.1fs", self.source, backoff)
                    self._topology_ready = False
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, 10)
        finally:
            # Closed by the loop itself (see Listener).
            self.listener.close()
            self.publisher.close()

    def stop(self):
        """Ask the loop to end; it closes its own connections (within idle_wait)."""
        self._stopping.set()


class OutboxRelayProvider(DependencyProvider):
    """Runs the relay in a managed thread of the service container. Several instances are safe (SKIP LOCKED)."""

    def __init__(self, schema=None, source=None):
        self.schema = schema
        self.source = source

    def setup(self):
        cfg = self.container.config
        # The container's schema (DB_SCHEMA in its config, else the service name) unless one is given.
        self.schema = cfg.get("DB_SCHEMA") or self.schema or self.container.service_name
        self.source = self.source or self.container.service_name
        self.database = Database(url=cfg.get("DATABASE_URL") or config.database_url(), schema=self.schema,
                                 maxconn=2, application_name="%s-relay" % self.source)
        self.relay = OutboxRelay(self.database, self.source, cfg.get("AMQP_URI"),
                                 idle_wait=float(cfg.get("OUTBOX_IDLE_WAIT", 1.0)),
                                 coalesce=float(cfg.get("OUTBOX_COALESCE_MS") or 20) / 1000.0)

    def start(self):
        self.container.spawn_managed_thread(self.relay.run_forever)

    def stop(self):
        self.relay.stop()
        self.database.close()

    def kill(self):
        self.stop()

    def get_dependency(self, worker_ctx):
        return self.relay


def main(argv=None):
    parser = argparse.ArgumentParser(description="Publish a service's outbox to RabbitMQ.")
    parser.add_argument("--schema", required=True)
    parser.add_argument("--source", default=None)
    parser.add_argument("--once", action="store_true", help="publish what is pending, then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    db = Database(schema=args.schema, maxconn=2, application_name="%s-relay" % args.schema)
    relay = OutboxRelay(db, args.source or args.schema)
    if args.once:
        while relay.run_once():
            pass
        return 0
    relay.run_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
