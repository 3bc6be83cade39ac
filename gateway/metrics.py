"""Gateway request metrics. With several gunicorn workers set PROMETHEUS_MULTIPROC_DIR (make run does) so
/metrics sums all workers."""
import os
import time

from flask import Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import REGISTRY, multiprocess

from libs.metrics import LATENCY_BUCKETS

HTTP_REQUESTS = Counter("exchanger_http_requests_total", "Gateway HTTP requests", ["method", "route", "status"])
# Forged or broken Twilio status callbacks: counted, not audited one row each (a flood would fill the audit log).
TWILIO_BAD_SIGNATURES = Counter("exchanger_twilio_bad_signatures_total",
                                "Twilio status callbacks refused for a missing or wrong signature", ["reason"])
IDEMPOTENT_REPLAYS = Counter("exchanger_idempotent_replays_total",
                             "Requests answered again for a repeated Idempotency-Key (nothing written)", ["route"])
HTTP_LATENCY = Histogram("exchanger_http_request_seconds", "Gateway HTTP latency", ["method", "route"],
                         buckets=LATENCY_BUCKETS)


def init_app(app):
    @app.before_request
    def _start_timer():
        g._started = time.perf_counter()

    @app.after_request
    def _record(response):
        route = request.url_rule.rule if request.url_rule else "unmatched"
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        started = g.get("_started")
        if started is not None:
            HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        return response


def exposition():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
