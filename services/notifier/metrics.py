"""Notifier metrics (module level: registered once per process, served on the service's METRICS_PORT)."""
from prometheus_client import Counter, Gauge, Histogram

from libs.metrics import LATENCY_BUCKETS

SENT = Counter("exchanger_notifications_sent_total", "Notifications delivered to the provider", ["channel", "kind"])
FAILED = Counter("exchanger_notifications_failed_total", "Notifications that ended failed", ["channel", "kind"])
RETRIES = Counter("exchanger_notification_retries_total", "Send attempts that failed and will be retried",
                  ["channel"])
BY_STATUS = Gauge("exchanger_notifications", "Notifications not sent (yet): pending, sending, failed",
                  ["channel", "status"])
OLDEST_PENDING = Gauge("exchanger_notification_oldest_pending_seconds", "Age of the oldest unsent notification")
SEND_SECONDS = Histogram("exchanger_notification_send_seconds", "Provider call latency", ["channel"],
                         buckets=LATENCY_BUCKETS)
CALLBACKS = Counter("exchanger_sms_status_callbacks_total", "Twilio status callbacks", ["outcome"])
CAPPED = Counter("exchanger_notifications_capped_total",
                 "Letters over the per-recipient cap and admin SMS held back in a burst (never sent)",
                 ["channel", "kind"])
