"""nameko dependencies of the reporting service, one per task, all on the container's one connection pool
(libs/dependencies.py):

- `readmodel`: applies order, payment and payout events to the read model (inbox claim and upsert in one
  transaction, the version rule in store.py) and prunes the inbox;
- `statistics`: the statistics over the read model (the `stats` RPC);
- `exporter`: the CSV export over HTTP (child processes running COPY, at most MAX_EXPORTS at once).
"""
import hmac
import logging
import threading

from marshmallow import ValidationError

from libs.dependencies import ServiceDependency
from services.reporting import domain, export, metrics, schemas
from services.reporting.store import ReadModelStore

log = logging.getLogger(__name__)


class ReadModel:
    """The read model as the event handlers and the rebuild command see it."""

    def __init__(self, db, inbox_keep_days=7):
        self.store = ReadModelStore(db)
        self.inbox_keep_days = inbox_keep_days

    def apply_order_events(self, envelopes, consumer):
        """A batch of order events in ONE transaction; returns the outcome of each ('applied', 'stale' or
        'duplicate'). ValidationError for a malformed event (the batch is then re-run event by event,
        libs/messaging.py)."""
        parsed = [domain.row_from_order_event(envelope) for envelope in envelopes]
        outcomes = self.store.apply_orders(consumer, envelopes, parsed)
        for envelope, (_, occurred_at, _), outcome in zip(envelopes, parsed, outcomes):
            _count(envelope.get("event_type"), outcome, occurred_at)
        return outcomes

    def apply_payment_event(self, envelope, consumer):
        event_id, occurred_at, row = domain.payment_row(envelope)
        outcome = self.store.apply_money(consumer, event_id, "payments", row)
        _count(envelope.get("event_type"), outcome, occurred_at)
        return outcome

    def apply_payout_event(self, envelope, consumer):
        event_id, occurred_at, row = domain.payout_row(envelope)
        outcome = self.store.apply_money(consumer, event_id, "payouts", row)
        _count(envelope.get("event_type"), outcome, occurred_at)
        return outcome

    def upsert_snapshots(self, orders):
        """Rebuild: a page of snapshots from the owner, one transaction. Returns how many rows changed."""
        return self.store.upsert_orders([domain.row_from_snapshot(o) for o in orders])

    def wipe(self):
        self.store.wipe()

    def prune_inbox(self):
        return self.store.prune_inbox(self.inbox_keep_days)

    def newest_event_at(self):
        return self.store.newest_event_at()

    def summary(self):
        """How far the read model is: newest applied event and the lag the metric reports."""
        return schemas.summary_to_wire(self.store.newest_event_at(), metrics.lag_seconds())


def _count(event_type, outcome, occurred_at):
    metrics.EVENTS.labels(event_type or "?", outcome).inc()
    if outcome != "duplicate":
        metrics.event_applied(occurred_at)


class ReadModelProvider(ServiceDependency):
    def build(self, db, cfg):
        return ReadModel(db, int(cfg.get("INBOX_KEEP_DAYS") or 7))

    def start_api(self, readmodel):
        # The lag metric starts from what the read model already holds, not from "no event yet".
        try:
            metrics.event_applied(readmodel.newest_event_at())
        except Exception:  # noqa: BLE001 - a metric must not stop the service from starting
            log.warning("reporting: could not read the newest event time at start", exc_info=True)


class Statistics:
    def __init__(self, db):
        self.store = ReadModelStore(db)

    def stats(self, date_from=None, date_to=None, group="day"):
        """Requests by status, never-paid share, completion percentiles, turnover and margin (domain.py)."""
        start, end, group = schemas.load_stats_query(date_from, date_to, group)
        return domain.shape_stats(start, end, group, *self.store.stats_rows(start, end, group))


class StatisticsProvider(ServiceDependency):
    def build(self, db, cfg):
        return Statistics(db)


class TooManyExports(Exception):
    pass


class Exporter:
    def __init__(self, db, database_url, max_concurrent, statement_timeout_ms, internal_token=None, engine="auto"):
        self.store = ReadModelStore(db)
        self.internal_token = internal_token or ""
        self.engine = engine
        self.database_url = database_url
        self.max_concurrent = max_concurrent
        self.statement_timeout_ms = statement_timeout_ms
        self._lock = threading.Lock()
        self._running = set()

    def _release(self, stream):
        with self._lock:
            self._running.discard(stream)
            metrics.EXPORTS_IN_PROGRESS.set(len(self._running))

    def open(self, filters):
        """Start an export; returns an ExportStream whose first bytes have arrived (or raises)."""
        select, options = self.store.export_select(filters)
        job = export.make_job(self.engine, select, options, self.database_url, self.statement_timeout_ms)
        stream = export.ExportStream(job, filters.get("encoding") or "utf-8", on_close=self._release)
        with self._lock:
            if len(self._running) >= self.max_concurrent:
                raise TooManyExports("%d exports are running; try again shortly" % len(self._running))
            self._running.add(stream)
            metrics.EXPORTS_IN_PROGRESS.set(len(self._running))
        return stream.open()

    def csv_response(self, request):
        """GET /orders.csv: the internal token (when configured), the filters, then the stream or an error."""
        token = self.internal_token
        if token and not hmac.compare_digest(request.headers.get("X-Internal-Token", ""), token):
            return schemas.error_response(403, "forbidden", "internal endpoint")
        try:
            params = schemas.load_export_query(request.args)
        except ValidationError as exc:
            return schemas.error_response(422, "validation_failed", "invalid input", exc.messages)
        try:
            stream = self.open(params)
        except TooManyExports as exc:
            response = schemas.error_response(429, "too_many_requests", str(exc))
            response.headers["Retry-After"] = "5"
            return response
        except export.ExportFailed as exc:
            return schemas.error_response(503, "service_unavailable", "export failed: %s" % str(exc)[:300])
        return schemas.csv_response(stream, params["encoding"], export.filename())


class ExporterProvider(ServiceDependency):
    def build(self, db, cfg):
        # The endpoint streams every order: off loopback it must ask for the token (docs/security.md).
        domain.check_export_endpoint(cfg.get("WEB_SERVER_ADDRESS"), cfg.get("INTERNAL_TOKEN"))
        return Exporter(db, db.url, int(cfg.get("MAX_EXPORTS") or 4),
                        int(cfg.get("EXPORT_STATEMENT_TIMEOUT_MS") or 0) or None,
                        internal_token=cfg.get("INTERNAL_TOKEN"), engine=cfg.get("EXPORT_ENGINE") or "auto")
