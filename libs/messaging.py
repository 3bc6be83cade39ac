"""Event handlers with delayed retries and a dead-letter queue (docs/reliability.md, P11 and pitfall N2).

nameko's stock handler acks a message whose handler raised (the event is gone) or, with requeue_on_error,
requeues it at once forever. `reliable_event_handler` instead republishes a failed message to a retry queue
(it comes back after a delay), then acks the original. What happens next depends on the failure:
- a bad message (ValidationError, PermanentError...): parked in the dead-letter queue at once;
- a transient failure (database or broker unreachable, too many clients, lock timeout, deadlock): retried
  without limit, the delay capped at the last retry queue's, the wait shown as
  `exchanger_event_oldest_waiting_seconds` — a money event must never park because PostgreSQL was down a minute;
- anything else (a bug): `max_attempts` tries, then the dead-letter queue (`exchanger_dlq_messages`), where
  `python -m libs.dlq` lists, shows, replays or discards it.
A poison message never loops and never blocks the queue.
"""
import collections
import logging
import threading
import time

import amqp
import eventlet
import psycopg2
from marshmallow import ValidationError
from nameko.events import EventHandler, SERVICE_POOL
from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import QueueConsumer

from libs import metrics, topology
from libs.amqp_publish import ConfirmingPublisher, PublishError, connect

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-exchanger-attempt"
ERROR_HEADER = "x-exchanger-error"
FIRST_FAILURE_HEADER = "x-exchanger-first-failure"   # epoch seconds of the first failed attempt


class PermanentError(Exception):
    """A failure that no retry can fix (malformed event): straight to the dead-letter queue."""


PERMANENT = (PermanentError, ValidationError, KeyError, TypeError)

# PostgreSQL error classes that pass by themselves: connection lost or refused, the server shutting down or full,
# a lock or statement timeout, a serialization failure or deadlock (the transaction rolled back; run it again).
TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57P", "40001", "40P01", "55P03", "57014")


def is_transient(exc):
    """A failure that waiting fixes: retried without limit, never parked (docs/reliability.md, P11). Money events
    must outlive a database outage of any length, or an order stays in `payout` forever."""
    if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError, ConnectionError, TimeoutError,
                        amqp.exceptions.ConnectionError)):
        return True
    code = getattr(exc, "pgcode", None)
    return bool(code) and code.startswith(TRANSIENT_SQLSTATE_PREFIXES)


class WaitingEvents:
    """Events of one queue waiting out a transient failure in this process: their first failure time, so
    `exchanger_event_oldest_waiting_seconds` shows how long the oldest has waited."""

    def __init__(self, queue):
        self.queue = queue
        self.first_failed = {}
        self._lock = threading.Lock()

    def failed(self, event_key, first_failed_at):
        with self._lock:
            self.first_failed.setdefault(event_key, first_failed_at)
        self.update()

    def done(self, event_key):
        with self._lock:
            found = self.first_failed.pop(event_key, None)
        if found is not None:
            self.update()

    def update(self):
        with self._lock:
            oldest = min(self.first_failed.values()) if self.first_failed else None
        metrics.EVENT_OLDEST_WAITING.labels(self.queue).set(time.time() - oldest if oldest else 0)


class ReliableEventHandler(EventHandler):
    def __init__(self, source_service, event_type, max_attempts=None, base_delay_ms=None, **kwargs):
        kwargs.pop("handler_type", None)
        super().__init__(source_service, event_type, handler_type=SERVICE_POOL, reliable_delivery=True,
                         requeue_on_error=False, **kwargs)
        self._max_attempts = max_attempts
        self._base_delay_ms = base_delay_ms

    def subscription(self):
        for s in topology.all_subscriptions():
            if (s.source, s.event_type, s.service, s.method) == (
                    self.source_service, self.event_type, self.container.service_name, self.method_name):
                return s
        raise RuntimeError("handler %s.%s for %s/%s is not in libs/topology.py" % (
            self.container.service_name, self.method_name, self.source_service, self.event_type))

    def setup(self):
        super().setup()
        s = self.subscription()
        # Never more attempts than the topology declared retry queues for (a missing queue would loop).
        self.max_attempts = min(self._max_attempts or s.max_attempts, s.max_attempts)
        self.base_delay_ms = self._base_delay_ms or s.base_delay_ms
        self.queue_name = self.queue.name
        self.dlq_name = topology.dead_letter_queue_name(self.queue_name)
        self.waiting = WaitingEvents(self.queue_name)
        amqp_uri = self.container.config["AMQP_URI"]
        conn = connect(amqp_uri)
        try:
            topology.declare_subscription(conn.channel(), s)
        finally:
            conn.close()
        self.publisher = ConfirmingPublisher(amqp_uri)
        self._monitor_stop = threading.Event()

    def start(self):
        super().start()
        self.container.spawn_managed_thread(self._watch_dead_letters)

    def stop(self):
        self._monitor_stop.set()
        self.publisher.close()
        super().stop()

    def kill(self):
        self._monitor_stop.set()
        self.publisher.close()
        super().kill()

    def _watch_dead_letters(self):
        """Keep the DLQ size gauge current (passive declare returns the message count)."""
        conn = None
        while not self._monitor_stop.is_set():
            try:
                if conn is None:
                    conn = connect(self.container.config["AMQP_URI"])
                    channel = conn.channel()
                _, count, _ = channel.queue_declare(self.dlq_name, passive=True)
                metrics.DLQ_MESSAGES.labels(self.dlq_name).set(count)
                self.waiting.update()
            except (OSError, amqp.exceptions.AMQPError):
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001 - already broken
                        pass
                conn = None
            self._monitor_stop.wait(float(self.container.config.get("DLQ_WATCH_INTERVAL", 10)))
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is None:
            self.acknowledge(message)
            return
        self.route_failure(message, exc_info)

    def acknowledge(self, message):
        if (message.headers or {}).get(FIRST_FAILURE_HEADER) is not None:
            self.waiting.done(message.properties.get("message_id") or id(message))
        self.queue_consumer.ack_message(message)

    def route_failure(self, message, exc_info):
        """Move a failed delivery to its next retry queue, or to the dead-letter queue, then ack it."""
        headers = dict(message.headers or {})
        attempt = int(headers.get(ATTEMPT_HEADER, 1))
        exc = exc_info[1]
        event_key = message.properties.get("message_id") or id(message)
        if isinstance(exc, PERMANENT):
            target = self.dlq_name       # a bad message: no retry can fix it, parked at once
        elif is_transient(exc) and self.max_attempts > 1:
            # Waiting fixes it: retried without limit, the delay capped at the last retry queue's.
            target = topology.retry_queue_name(self.queue_name, min(attempt, self.max_attempts - 1))
            headers.setdefault(FIRST_FAILURE_HEADER, time.time())
            self.waiting.failed(event_key, float(headers[FIRST_FAILURE_HEADER]))
        elif attempt >= self.max_attempts:
            target = self.dlq_name       # a failure we cannot classify: bounded attempts, then parked
        else:
            target = topology.retry_queue_name(self.queue_name, attempt)
        if target == self.dlq_name:
            self.waiting.done(event_key)
            metrics.DEAD_LETTERED.labels(self.queue_name).inc()
            log.error("event to %s failed on attempt %d (%r): dead-lettered", self.queue_name, attempt, exc)
        else:
            metrics.EVENT_RETRIES.labels(self.queue_name).inc()
            log.warning("event to %s failed on attempt %d (%r): retry later", self.queue_name, attempt, exc)
        # On the DLQ the header says how many attempts were made; on a retry queue, which attempt comes next.
        headers[ATTEMPT_HEADER] = attempt if target == self.dlq_name else attempt + 1
        headers[ERROR_HEADER] = ("%s: %s" % (type(exc).__name__, exc))[:500]
        try:
            results = self.publisher.publish_batch([{
                "message_id": message.properties.get("message_id") or "retry",
                "exchange": "", "routing_key": target, "body": message.body,
                "content_type": message.content_type, "headers": headers}])
            if results != ["ok"]:
                raise PublishError("retry publish %s" % results)
        except PublishError:
            log.exception("could not move a failed event to %s; requeueing it", target)
            eventlet.sleep(1)  # the broker is in trouble: no hot requeue loop
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)


reliable_event_handler = ReliableEventHandler.decorator


# -- batches -----------------------------------------------------------------------------------------------------

class BatchQueueConsumer(QueueConsumer):
    """The queue consumer of batch handlers: a prefetch large enough to fill a batch (nameko's own consumer
    prefetches `max_workers` messages, which would cap every batch at that)."""

    @property
    def prefetch_count(self):
        return int(self.container.config.get("EVENT_BATCH_PREFETCH") or 200)

    def handle_message(self, provider, body, message):
        # A batch handler only queues the delivery (it never blocks): no green thread per message, as nameko's
        # consumer would start to call it.
        provider.handle_message(body, message)


class BatchEventHandler(ReliableEventHandler):
    """Delivers events to the service method in batches: `handle_x(self, payloads)` gets a list of event payloads
    and handles them in ONE transaction with one inbox insert (libs.inbox.claim_many).

    A batch closes when it holds `EVENT_BATCH_SIZE` events or when `EVENT_BATCH_LINGER_MS` passed since its first
    event arrived, so under load one transaction carries many events and when idle an event waits a few ms at
    most. Every message of a batch is acked only after the batch committed. When a batch fails, each of its events
    is run again alone, so one poison message is retried or dead-lettered by itself (the rules of
    ReliableEventHandler) and does not hold back the others. At most `EVENT_BATCH_CONCURRENCY` batches of one
    handler are in flight at once.
    """

    queue_consumer = BatchQueueConsumer()

    def setup(self):
        super().setup()
        cfg = self.container.config
        self.batch_size = int(cfg.get("EVENT_BATCH_SIZE") or 100)
        self.linger = float(cfg.get("EVENT_BATCH_LINGER_MS") or 20) / 1000.0
        self._pending = collections.deque()
        self._arrived = threading.Event()
        self._slots = threading.BoundedSemaphore(int(cfg.get("EVENT_BATCH_CONCURRENCY") or 2))

    def start(self):
        super().start()
        self.container.spawn_managed_thread(self._collect_batches)

    def handle_message(self, body, message):
        self._pending.append((body, message))
        self._arrived.set()

    def _collect_batches(self):
        while not self._monitor_stop.is_set():
            if not self._arrived.wait(1.0):
                continue
            # Let the prefetched deliveries arrive, so the batch is as full as the load makes it.
            deadline = time.monotonic() + self.linger
            while len(self._pending) < self.batch_size and time.monotonic() < deadline:
                eventlet.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
            batch = []
            while self._pending and len(batch) < self.batch_size:
                batch.append(self._pending.popleft())
            if not self._pending:
                self._arrived.clear()
            if batch:
                self._slots.acquire()
                self._spawn(batch)

    def _spawn(self, batch):
        bodies = [body for body, _ in batch]
        metrics.EVENT_BATCH_SIZE.labels(self.queue_name).observe(len(batch))

        def handle_result(worker_ctx, result=None, exc_info=None):
            # The slot goes back first: re-running a failed batch's events alone takes slots of its own.
            self._slots.release()
            self._finish(batch, exc_info)
            return result, exc_info

        try:
            self.container.spawn_worker(self, (bodies,), {},
                                        context_data=self.unpack_message_headers(batch[0][1]),
                                        handle_result=handle_result)
        except ContainerBeingKilled:
            self._slots.release()
            for _, message in batch:
                self.queue_consumer.requeue_message(message)

    def _finish(self, batch, exc_info):
        if exc_info is None:
            for _, message in batch:
                self.acknowledge(message)
        elif len(batch) == 1:
            self.route_failure(batch[0][1], exc_info)
        else:
            log.warning("a batch of %d events to %s failed (%r): each is run alone", len(batch),
                        self.queue_name, exc_info[1])
            for delivery in batch:
                self._slots.acquire()
                self._spawn([delivery])


batch_event_handler = BatchEventHandler.decorator
