"""The sender: takes due notifications from the database and hands them to SMTP or Twilio, after the commit that
created them, so a slow or dead provider never holds up event consumption (or order processing).

Loop: claim up to `concurrency` due rows (committed as `sending`, SKIP LOCKED so several instances share the
work) -> send each in a green thread over pooled connections -> commit sent / retry later / failed. Woken at once
by `pg_notify('notifier_send')` from the transaction that queued a row; otherwise polls every `idle_wait`.

The only duplicate window: the provider accepted the message and the process died before `sent` committed. The
row's lease then runs out, another pass takes it again (flagged outcome_unknown) and, for e-mail, sends it once
more (same Message-ID); for SMS it first asks Twilio whether that text already went to that number.

The loop runs in a thread the `sender` dependency starts and stops with the container (dependencies.py).
"""
import logging
import threading
import time

import eventlet

from libs.db import Listener
from libs.faults import crash_point
from services.notifier import domain, metrics
from services.notifier.store import WAKE_CHANNEL
from services.notifier.transports import SendError

log = logging.getLogger(__name__)


class Sender:
    def __init__(self, store, mailer, sms, concurrency=8, lease_seconds=120.0, retry_base=5.0, retry_cap=600.0,
                 idle_wait=1.0, metrics_interval=5.0):
        self.store = store
        self.mailer = mailer
        self.sms = sms
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.idle_wait = idle_wait
        self.metrics_interval = metrics_interval
        self.pool = eventlet.GreenPool(concurrency)
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self.listener = Listener(lambda: store.db.connect(autocommit=True), WAKE_CHANNEL)
        self._last_metrics = 0.0

    # -- one notification ------------------------------------------------------------------------------------
    def process(self, row):
        channel = row["channel"]
        if row["attempts"] > row["max_attempts"]:  # taken again after a crash on its last allowed attempt
            self._failed(row, "gave up after %d attempts; the last one was interrupted" % row["max_attempts"],
                         outcome_unknown=True)
            return
        unknown = False
        started = time.perf_counter()
        try:
            if channel == "email":
                crash_point("notifier_before_send")
                message_id = self.mailer.send(domain.fill_link(row))
                crash_point("notifier_after_send")
                self._sent(row, message_id)
            elif channel == "sms":
                if row["outcome_unknown"]:
                    unknown = True
                    found = self.sms.find_sent(row, row["created_at"])
                    if found is not None:  # the interrupted attempt did reach Twilio: do not send it again
                        self._sent(row, found[0], found[1], "already accepted by Twilio as %s" % found[0])
                        return
                    unknown = False
                crash_point("notifier_before_send")
                sid, status = self.sms.send(row)
                crash_point("notifier_after_send")
                self._sent(row, sid, status)
            else:
                self._failed(row, "channel %s is not sent by the sender" % channel)
        except SendError as exc:
            self._send_error(row, exc.message, exc.transient, exc.outcome_unknown or unknown)
        except Exception as exc:  # noqa: BLE001 - a bug or the database: retry later, bounded like the rest
            log.exception("notification %s: unexpected error", row["id"])
            self._send_error(row, "%s: %s" % (type(exc).__name__, exc), True, unknown)
        finally:
            metrics.SEND_SECONDS.labels(channel).observe(time.perf_counter() - started)

    def _sent(self, row, provider_id, provider_status=None, detail=None):
        if self.store.mark_sent(row, provider_id, provider_status, detail) is not None:
            metrics.SENT.labels(row["channel"], row["kind"]).inc()
            log.info("notification %s %s/%s to %s sent (%s)", row["id"], row["kind"], row["channel"],
                     row["recipient"], provider_id)

    def _failed(self, row, error, outcome_unknown=False):
        if self.store.mark_failed(row, error, outcome_unknown) is not None:
            metrics.FAILED.labels(row["channel"], row["kind"]).inc()
            log.warning("notification %s %s/%s to %s failed after %d attempts: %s", row["id"], row["kind"],
                        row["channel"], row["recipient"], row["attempts"], error)

    def _send_error(self, row, error, transient, outcome_unknown):
        if transient and row["attempts"] < row["max_attempts"]:
            delay = domain.retry_delay(row["attempts"], self.retry_base, self.retry_cap)
            if self.store.mark_retry(row, error, delay, outcome_unknown) is not None:
                metrics.RETRIES.labels(row["channel"]).inc()
                log.info("notification %s attempt %d failed (%s): retry in %.1fs", row["id"], row["attempts"],
                         error, delay)
        else:
            self._failed(row, error, outcome_unknown)

    # -- the loop --------------------------------------------------------------------------------------------
    def run_once(self):
        """Claim what the pool can take now and start sending it; returns the number of rows claimed."""
        # A whole pool's worth per claim (one transaction for many letters); spawning blocks while the pool is
        # busy, so at most `concurrency` claimed rows wait here, well inside their lease.
        rows = self.store.claim(self.concurrency, self.lease_seconds)
        for row in rows:
            self.pool.spawn_n(self.process, row)  # blocks while the pool is full
        return len(rows)

    def drain(self, timeout=None):
        """Send everything due now and wait for it (tests and the benchmark)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.run_once():
            if deadline is not None and time.monotonic() > deadline:
                break
        self.pool.waitall()

    def update_metrics(self, force=False):
        now = time.monotonic()
        if not force and now - self._last_metrics < self.metrics_interval:
            return
        self._last_metrics = now
        rows, oldest = self.store.status_counts()
        seen = set()
        for r in rows:
            metrics.BY_STATUS.labels(r["channel"], r["status"]).set(r["n"])
            seen.add((r["channel"], r["status"]))
        for channel in domain.CHANNELS:
            for status in ("pending", "sending", "failed"):
                if (channel, status) not in seen:
                    metrics.BY_STATUS.labels(channel, status).set(0)
        metrics.OLDEST_PENDING.set(oldest)

    def run_forever(self):
        backoff = 0.5
        announced = False
        self._done.clear()
        try:
            while not self._stopping.is_set():
                try:
                    if not announced:
                        self.store.announce_if_changed()
                        announced = True
                    claimed = self.run_once()
                    self.update_metrics()
                    backoff = 0.5
                    if claimed == 0:
                        self.listener.wait(self.idle_wait, pause=self._stopping.wait)
                except Exception:  # noqa: BLE001 - the sender must outlive database outages
                    log.exception("notifier sender: pass failed, retrying in %.1fs", backoff)
                    self.listener.close()
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, 10)
        finally:
            # Closed by the loop itself (see libs.db.Listener).
            self.listener.close()
            self._done.set()

    def stop(self, wait=5.0):
        """End the loop (within idle_wait) and let sends in flight finish and commit; a send cut short leaves
        its row `sending` until the lease runs out."""
        self._stopping.set()
        self._done.wait(self.idle_wait + 1)
        with eventlet.Timeout(wait, False):
            self.pool.waitall()
        if self.mailer is not None:
            self.mailer.close()

