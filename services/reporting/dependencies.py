"""nameko dependencies of the reporting service: the read model (pooled, green) and the exporter (child
processes running COPY, at most REPORTING_MAX_EXPORTS at once)."""
import threading

from nameko.extensions import DependencyProvider

from libs import config
from libs.db import Database
from services.reporting import export, metrics
from services.reporting.readmodel import ReadModel


class ReadModelProvider(DependencyProvider):
    def setup(self):
        cfg = self.container.config
        self.database = Database(url=cfg.get("DATABASE_URL") or config.database_url(), schema="reporting",
                                 maxconn=int(cfg.get("DB_POOL_SIZE", int(cfg.get("max_workers", 10)) + 2)),
                                 application_name="reporting")
        self.readmodel = ReadModel(self.database)

    def start(self):
        # The lag metric starts from what the read model already holds, not from "no event yet".
        try:
            metrics.event_applied(self.readmodel.newest_event_at())
        except Exception:  # noqa: BLE001 - a metric must not stop the service from starting
            pass

    def stop(self):
        self.database.close()

    def kill(self):
        self.database.close()

    def get_dependency(self, worker_ctx):
        return self.readmodel


class TooManyExports(Exception):
    pass


class Exporter:
    def __init__(self, database, database_url, max_concurrent, statement_timeout_ms, internal_token=None,
                 engine="auto"):
        self.database = database
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
        with self.database.transaction() as cur:
            select, options = export.export_select(filters, cur.mogrify)
        job = export.make_job(self.engine, select, options, self.database_url, self.statement_timeout_ms)
        stream = export.ExportStream(job, filters.get("encoding") or "utf-8", on_close=self._release)
        with self._lock:
            if len(self._running) >= self.max_concurrent:
                raise TooManyExports("%d exports are running; try again shortly" % len(self._running))
            self._running.add(stream)
            metrics.EXPORTS_IN_PROGRESS.set(len(self._running))
        return stream.open()


class ExporterProvider(DependencyProvider):
    def setup(self):
        cfg = self.container.config
        url = cfg.get("DATABASE_URL") or config.database_url()
        self.database = Database(url=url, schema="reporting", maxconn=2, application_name="reporting")
        self.exporter = Exporter(self.database, url, int(cfg.get("MAX_EXPORTS") or 4),
                                 int(cfg.get("EXPORT_STATEMENT_TIMEOUT_MS") or 0) or None,
                                 internal_token=cfg.get("INTERNAL_TOKEN"), engine=cfg.get("EXPORT_ENGINE") or "auto")

    def stop(self):
        self.database.close()

    def kill(self):
        self.database.close()

    def get_dependency(self, worker_ctx):
        return self.exporter
