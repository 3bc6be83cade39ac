"""Reporting metrics (module level: registered once per process), served on the service's METRICS_PORT.

- exchanger_reporting_lag_seconds: now − occurred_at of the newest event applied to the read model. It grows
  when events stop arriving (a stuck queue, or simply a quiet night): alert on it together with the owners'
  exchanger_outbox_backlog. exchanger_reporting_last_event_timestamp_seconds gives the raw time.
- exchanger_reporting_events_total{event_type, outcome}: applied, stale (an older version than the row),
  duplicate (inbox), unmatched (a payment for an order we do not have yet).
- exchanger_reporting_exports_total{encoding, outcome}, exchanger_reporting_export_seconds,
  exchanger_reporting_export_size_rows (histogram),
  exchanger_reporting_exported_rows_total, exchanger_reporting_exports_in_progress.
"""
import threading
import time

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("exchanger_reporting_events_total", "Events handled by the read model", ["event_type", "outcome"])
EXPORTS = Counter("exchanger_reporting_exports_total", "CSV exports", ["encoding", "outcome"])
EXPORT_SECONDS = Histogram("exchanger_reporting_export_seconds", "CSV export duration",
                           buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
EXPORT_ROWS = Histogram("exchanger_reporting_export_size_rows", "Rows per CSV export",
                        buckets=(0, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7))
EXPORT_ROWS_TOTAL = Counter("exchanger_reporting_exported_rows_total", "Rows exported as CSV")
EXPORTS_IN_PROGRESS = Gauge("exchanger_reporting_exports_in_progress", "CSV exports streaming now")
LAST_EVENT = Gauge("exchanger_reporting_last_event_timestamp_seconds",
                   "occurred_at of the newest event applied to the read model (unix time)")
LAG = Gauge("exchanger_reporting_lag_seconds", "now - occurred_at of the newest applied event")

_lock = threading.Lock()
_newest = [None]  # unix time of the newest applied event


def lag_seconds():
    newest = _newest[0]
    return max(0.0, time.time() - newest) if newest is not None else 0.0


LAG.set_function(lag_seconds)


def event_applied(occurred_at):
    """Remember the newest occurred_at (a datetime) seen by the read model."""
    if occurred_at is None:
        return
    ts = occurred_at.timestamp()
    with _lock:
        if _newest[0] is None or ts > _newest[0]:
            _newest[0] = ts
            LAST_EVENT.set(ts)


def newest_event_time():
    return _newest[0]


def record_export(encoding, outcome, seconds, rows):
    EXPORTS.labels(encoding, outcome).inc()
    EXPORT_SECONDS.observe(seconds)
    if rows is not None:
        EXPORT_ROWS.observe(rows)
        EXPORT_ROWS_TOTAL.inc(rows)
