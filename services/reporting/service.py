"""Reporting service entrypoints: event handlers that keep the read model, RPC for statistics, and the internal
HTTP endpoint that streams CSV exports (the gateway authenticates staff and relays the stream).

Logic lives in readmodel.py (storage), projection.py (events -> rows), stats.py and export.py.
"""
import hmac
import json

from marshmallow import ValidationError
from libs.rpc import rpc
from nameko.timer import timer
from nameko.web.handlers import http
from werkzeug.wrappers import Response

from libs import config, errors
from libs.contracts import events
from libs.contracts.reporting import ExportQuerySchema, StatsQuerySchema, query_args
from libs.messaging import batch_event_handler, reliable_event_handler
from libs.metrics import EntrypointMetrics
from services.reporting import export, filters
from services.reporting import metrics as report_metrics
from services.reporting.dependencies import ExporterProvider, ReadModelProvider, TooManyExports

expected = errors.EXPECTED
INBOX_PRUNE_SECONDS = config.env_float("REPORTING_INBOX_PRUNE_SECONDS", 3600.0)


def _json(status, code, message, fields=None):
    body = {"error": code, "message": message}
    if fields:
        body["fields"] = fields
    return Response(json.dumps(body), status=status, mimetype="application/json")


class ReportingService:
    name = "reporting"

    readmodel = ReadModelProvider()
    exporter = ExporterProvider()
    metrics = EntrypointMetrics()

    @rpc
    def ping(self):
        return "reporting"

    # -- read model ------------------------------------------------------------------------------------------
    @batch_event_handler(events.ORDERS, events.ORDER_CREATED)
    def on_order_created(self, payloads):
        return self.readmodel.apply_order_events(payloads, "reporting.on_order_created")

    @batch_event_handler(events.ORDERS, events.ORDER_STATUS_CHANGED)
    def on_order_status_changed(self, payloads):
        return self.readmodel.apply_order_events(payloads, "reporting.on_order_status_changed")

    # Payments and payouts as the payments service announces them (libs/contracts/payments.py).
    @reliable_event_handler(events.PAYMENTS, events.PAYMENT_RECEIVED)
    def on_payment_received(self, payload):
        return self.readmodel.apply_payment_event(payload, "reporting.on_payment_received")

    @reliable_event_handler(events.PAYMENTS, events.PAYMENT_UNMATCHED)
    def on_payment_unmatched(self, payload):
        return self.readmodel.apply_payment_event(payload, "reporting.on_payment_unmatched")

    @reliable_event_handler(events.PAYMENTS, events.PAYOUT_SENT)
    def on_payout_sent(self, payload):
        return self.readmodel.apply_payout_event(payload, "reporting.on_payout_sent")

    @reliable_event_handler(events.PAYMENTS, events.PAYOUT_FAILED)
    def on_payout_failed(self, payload):
        return self.readmodel.apply_payout_event(payload, "reporting.on_payout_failed")

    @timer(interval=INBOX_PRUNE_SECONDS)
    def prune_inbox(self):
        return self.readmodel.prune_inbox(config.env_int("REPORTING_INBOX_KEEP_DAYS", 7))

    # -- queries ---------------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def stats(self, date_from=None, date_to=None, group="day"):
        """Requests by status, never-paid share, completion percentiles, turnover and margin (stats.py)."""
        raw = {k: v for k, v in (("from", date_from), ("to", date_to), ("group", group)) if v is not None}
        try:
            start, end, group = filters.stats_window(StatsQuerySchema().load(raw))
        except ValidationError as exc:
            raise errors.ValidationFailed("invalid input", exc.messages)
        return self.readmodel.stats(start, end, group)

    @rpc
    def summary(self):
        """How far the read model is: newest applied event and the lag the metric reports."""
        newest = self.readmodel.newest_event_at()
        return {"newest_event_at": newest.isoformat() if newest else None,
                "lag_seconds": round(report_metrics.lag_seconds(), 3)}

    # -- export ----------------------------------------------------------------------------------------------
    @http("GET", "/orders.csv")
    def export_orders_csv(self, request):
        """Internal: the gateway calls this after checking the staff member's role; bind it to loopback or set
        REPORTING_HTTP_TOKEN (sent by the gateway as X-Internal-Token)."""
        token = self.exporter.internal_token
        if token and not hmac.compare_digest(request.headers.get("X-Internal-Token", ""), token):
            return _json(403, "forbidden", "internal endpoint")
        try:
            params = ExportQuerySchema().load(query_args(request.args))
        except ValidationError as exc:
            return _json(422, "validation_failed", "invalid input", exc.messages)
        try:
            stream = self.exporter.open(params)
        except TooManyExports as exc:
            response = _json(429, "too_many_requests", str(exc))
            response.headers["Retry-After"] = "5"
            return response
        except export.ExportFailed as exc:
            return _json(503, "service_unavailable", "export failed: %s" % str(exc)[:300])
        encoding = params["encoding"]
        headers = {
            "Content-Disposition": 'attachment; filename="%s"' % export.filename(),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
        return Response(stream, status=200, headers=headers, direct_passthrough=True,
                        content_type="text/csv; charset=%s" % encoding)
