"""Payments service entrypoints: the poll timer, the payout reconciler, handlers of orders' events and RPC for
operators. Each only routes to its dependency (dependencies.py)."""
from libs import errors
from libs.contracts import events
from libs.messaging import batch_event_handler, reliable_event_handler
from libs.metrics import EntrypointMetrics
from libs.outbox import OutboxRelayProvider
from libs.rpc import rpc
from libs.timers import config_timer
from services.payments.dependencies import (IncomingDependency, OrderCopiesDependency, PayoutsDependency,
                                             StuckWorkDependency)

expected = errors.EXPECTED


class PaymentsService:
    name = "payments"

    incoming = IncomingDependency()
    payouts = PayoutsDependency()
    order_copies = OrderCopiesDependency()
    stuck_work = StuckWorkDependency()
    relay = OutboxRelayProvider()
    metrics = EntrypointMetrics()

    @rpc
    def ping(self):
        return "payments"

    # -- timers ----------------------------------------------------------------------------------------------
    @config_timer("POLL_SECONDS", 2.0, eager=True)
    def poll_accounts(self):
        """Eager: the first tick at start is the catch-up of everything that arrived while we were down."""
        return self.incoming.poll_all()

    @config_timer("RECONCILE_SECONDS", 5.0, eager=True)
    def reconcile_payouts(self):
        return self.payouts.reconcile()

    @config_timer("STUCK_CHECK_SECONDS", 60.0, eager=True)
    def check_stuck_work(self):
        return self.stuck_work.check()

    # -- orders' events ----------------------------------------------------------------------------------------
    @batch_event_handler(events.ORDERS, events.ORDER_CREATED)
    def handle_order_created(self, payloads):
        self.order_copies.orders_created(payloads, "payments.handle_order_created")

    @reliable_event_handler(events.ORDERS, events.ORDER_STATUS_CHANGED)
    def handle_order_status_changed(self, payload):
        self.order_copies.order_status_changed(payload, "payments.handle_order_status_changed")

    @reliable_event_handler(events.ORDERS, events.PAYMENT_REJECTED)
    def handle_payment_rejected(self, payload):
        self.incoming.payment_rejected(payload, "payments.handle_payment_rejected")

    @reliable_event_handler(events.ORDERS, events.PARTNER_PAYOUT_REQUESTED)
    def handle_partner_payout_requested(self, payload):
        self.payouts.partner_payout_requested(payload, "payments.handle_partner_payout_requested")

    # -- operators -------------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def list_unmatched(self, limit=50, cursor=None):
        return self.incoming.list_unmatched(limit, cursor)

    @rpc(expected_exceptions=expected)
    def assign_payment(self, payment_id, order_id, actor, note=None):
        return self.incoming.assign_payment(payment_id, order_id, actor, note)

    @rpc(expected_exceptions=expected)
    def list_accounts(self):
        return self.incoming.list_accounts()

    @rpc(expected_exceptions=expected)
    def list_payouts(self, status=None, limit=50, cursor=None, order_id=None):
        return self.payouts.list_payouts(status, limit, cursor, order_id)

    @rpc(expected_exceptions=expected)
    def order_payments(self, order_id):
        return self.incoming.order_payments(order_id)

    @rpc(expected_exceptions=expected)
    def order_deposit(self, order_id, reference, system):
        return self.incoming.order_deposit(order_id, reference, system)

    @rpc(expected_exceptions=expected)
    def resolve_payout(self, payout_id, outcome, note, actor):
        return self.payouts.resolve(payout_id, outcome, note, actor)

    @rpc(expected_exceptions=expected)
    def resolve_withdrawal_payout(self, payout_id, outcome, note, actor):
        """`payout_id`: the withdrawal_payouts row (not the withdrawal)."""
        return self.payouts.resolve_withdrawal(payout_id, outcome, note, actor)

    # -- stuck work (docs/architecture.md, "Stuck work") -------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def list_stuck_work(self):
        return self.stuck_work.list()

    @rpc(expected_exceptions=expected)
    def repair_stuck_work(self, kind, item_id, action, actor):
        return self.stuck_work.repair(kind, item_id, action, actor)
