"""Reporting service entrypoints: event handlers that keep the read model, RPC for statistics, and the internal
HTTP endpoint that streams CSV exports (the gateway authenticates staff and relays the stream).

The work is done by the dependencies (dependencies.py): rules in domain.py, SQL in store.py, wire forms in
schemas.py, the export's child process in export.py.
"""
from nameko.web.handlers import http

from libs import errors
from libs.contracts import events
from libs.messaging import batch_event_handler, reliable_event_handler
from libs.metrics import EntrypointMetrics
from libs.rpc import rpc
from libs.timers import config_timer
from services.reporting.dependencies import ExporterProvider, ReadModelProvider, StatisticsProvider

expected = errors.EXPECTED


class ReportingService:
    name = "reporting"

    readmodel = ReadModelProvider()
    statistics = StatisticsProvider()  # `stats` is the RPC's name
    exporter = ExporterProvider()
    metrics = EntrypointMetrics()

    @rpc
    def ping(self):
        return "reporting"

    # -- read model ------------------------------------------------------------------------------------------
    @batch_event_handler(events.ORDERS, events.ORDER_CREATED)
    def handle_order_created(self, payloads):
        return self.readmodel.apply_order_events(payloads, "reporting.handle_order_created")

    @batch_event_handler(events.ORDERS, events.ORDER_STATUS_CHANGED)
    def handle_order_status_changed(self, payloads):
        return self.readmodel.apply_order_events(payloads, "reporting.handle_order_status_changed")

    # Payments and payouts as the payments service announces them (libs/contracts/payments.py).
    @reliable_event_handler(events.PAYMENTS, events.PAYMENT_RECEIVED)
    def handle_payment_received(self, payload):
        return self.readmodel.apply_payment_event(payload, "reporting.handle_payment_received")

    @reliable_event_handler(events.PAYMENTS, events.PAYMENT_UNMATCHED)
    def handle_payment_unmatched(self, payload):
        return self.readmodel.apply_payment_event(payload, "reporting.handle_payment_unmatched")

    @reliable_event_handler(events.PAYMENTS, events.PAYOUT_SENT)
    def handle_payout_sent(self, payload):
        return self.readmodel.apply_payout_event(payload, "reporting.handle_payout_sent")

    @reliable_event_handler(events.PAYMENTS, events.PAYOUT_FAILED)
    def handle_payout_failed(self, payload):
        return self.readmodel.apply_payout_event(payload, "reporting.handle_payout_failed")

    @config_timer("INBOX_PRUNE_SECONDS", 3600.0)
    def prune_inbox(self):
        return self.readmodel.prune_inbox()

    # -- queries ---------------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def stats(self, date_from=None, date_to=None, group="day"):
        return self.statistics.stats(date_from, date_to, group)

    @rpc
    def summary(self):
        return self.readmodel.summary()

    # -- export ----------------------------------------------------------------------------------------------
    @http("GET", "/orders.csv")
    def export_orders_csv(self, request):
        """Internal: the gateway calls this after checking the staff member's role; bind it to loopback or set
        REPORTING_HTTP_TOKEN (sent by the gateway as X-Internal-Token)."""
        return self.exporter.csv_response(request)
