"""Prometheus metrics: defined once at module level (a second container in one process must not register them
twice), exposed by each service on its own METRICS_PORT and by the gateway on /metrics."""
import logging
import threading
import time
from http.server import ThreadingHTTPServer

from nameko.extensions import DependencyProvider
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.exposition import MetricsHandler

from libs import config

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

ENTRYPOINT_CALLS = Counter("exchanger_entrypoint_calls_total", "Entrypoint calls (RPC, events, timers)",
                           ["service", "entrypoint", "outcome"])
ENTRYPOINT_LATENCY = Histogram("exchanger_entrypoint_seconds", "Entrypoint latency",
                               ["service", "entrypoint"], buckets=LATENCY_BUCKETS)
OUTBOX_BACKLOG = Gauge("exchanger_outbox_backlog", "Outbox events not yet published", ["source"])
OUTBOX_PUBLISHED = Counter("exchanger_outbox_published_total", "Outbox events published", ["source"])
OUTBOX_UNROUTED = Counter("exchanger_outbox_unrouted_total", "Outbox events no queue subscribes to", ["source"])
OUTBOX_PUBLISH_ERRORS = Counter("exchanger_outbox_publish_errors_total", "Outbox publish failures", ["source"])
DLQ_MESSAGES = Gauge("exchanger_dlq_messages", "Messages waiting in a dead-letter queue", ["queue"])
DEAD_LETTERED = Counter("exchanger_dead_lettered_total", "Events moved to a dead-letter queue", ["queue"])
EVENT_RETRIES = Counter("exchanger_event_retries_total", "Event deliveries scheduled for a retry", ["queue"])
EVENT_OLDEST_WAITING = Gauge("exchanger_event_oldest_waiting_seconds",
                             "How long the oldest event retried for a transient failure has been waiting", ["queue"])
EVENT_DUPLICATES = Counter("exchanger_event_duplicates_total", "Redelivered events skipped by the inbox",
                           ["consumer"])
EVENT_BATCH_SIZE = Histogram("exchanger_event_batch_size", "Events handled in one batch (one transaction)",
                             ["queue"], buckets=(1, 2, 5, 10, 20, 50, 100, 200))
ORDER_TRANSITIONS = Counter("exchanger_order_transitions_total", "Order status transitions",
                            ["from_status", "to_status"])
STUCK_WORK = Gauge("exchanger_stuck_work", "Money work that should have moved on and has not (libs/contracts/stuck.py)",
                   ["kind"])

_server_lock = threading.Lock()
_server_ports = set()


def serve(port):
    """Start the /metrics HTTP server once per process and port."""
    with _server_lock:
        if port and port not in _server_ports:
            # Not prometheus_client.start_http_server: its address lookup breaks under eventlet's green DNS.
            server = ThreadingHTTPServer(("0.0.0.0", int(port)), MetricsHandler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
            _server_ports.add(port)
            log.info("metrics on :%s/metrics", port)


class EntrypointMetrics(DependencyProvider):
    """Counts and times every worker of the container; starts the metrics endpoint (METRICS_PORT)."""

    def setup(self):
        self.service = self.container.service_name
        # Every service has this provider, so every service refuses production with default credentials here.
        config.refuse_unsafe_production(self.service, self.container.config.get("DATABASE_URL"),
                                        self.container.config.get("AMQP_URI"))
        port = self.container.config.get("METRICS_PORT")
        if port:
            serve(int(port))
        self._started = {}

    def worker_setup(self, worker_ctx):
        self._started[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self._started.pop(worker_ctx, None)
        name = worker_ctx.entrypoint.method_name
        outcome = "ok"
        if exc_info is not None:
            expected = getattr(worker_ctx.entrypoint, "expected_exceptions", ())
            outcome = "rejected" if expected and isinstance(exc_info[1], expected) else "error"
        ENTRYPOINT_CALLS.labels(self.service, name, outcome).inc()
        if started is not None:
            ENTRYPOINT_LATENCY.labels(self.service, name).observe(time.perf_counter() - started)

    def get_dependency(self, worker_ctx):
        return None
