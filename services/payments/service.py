"""Payments service entrypoints: the poll timer, the payout reconciler, handlers for order events and RPC for
operators. Logic lives in poller.py, payouts.py, store.py and domain.py; this module only routes calls."""
from nameko.timer import Timer

from libs import errors
from libs.contracts import events
from libs.messaging import batch_event_handler, reliable_event_handler
from libs.metrics import EntrypointMetrics
from libs.outbox import OutboxRelayProvider
from libs.rpc import rpc
from services.payments.dependencies import DEFAULT_SCHEMA, PaymentsProvider

expected = errors.EXPECTED


class ConfigTimer(Timer):
    """A nameko timer whose interval comes from the container config (tests and deployments set it)."""

    def __init__(self, config_key, default, eager=False, **kwargs):
        super().__init__(interval=default, eager=eager, **kwargs)
        self.config_key = config_key

    def setup(self):
        self.interval = float(self.container.config.get(self.config_key, self.interval))


config_timer = ConfigTimer.decorator


class PaymentsRelayProvider(OutboxRelayProvider):
    """The outbox relay of the configured schema (payments; a private copy in tests)."""

    def setup(self):
        self.schema = self.container.config.get("DB_SCHEMA") or DEFAULT_SCHEMA
        super().setup()


class PaymentsService:
    name = "payments"

    payments = PaymentsProvider()
    relay = PaymentsRelayProvider(DEFAULT_SCHEMA, source="payments")
    metrics = EntrypointMetrics()

    @rpc
    def ping(self):
        return "payments"

    # -- timers ----------------------------------------------------------------------------------------------
    @config_timer("POLL_SECONDS", 2.0, eager=True)
    def poll_accounts(self):
        """Eager: the first tick at start is the catch-up of everything that arrived while we were down."""
        return self.payments.poller.poll_all()

    @config_timer("RECONCILE_SECONDS", 5.0, eager=True)
    def reconcile_payouts(self):
        outcomes = self.payments.payouts.reconcile()
        # Partner withdrawals' payouts, same rules (keys prefixed so the two tables' ids do not collide).
        outcomes.update(("withdrawal:%s" % k, v) for k, v in self.payments.withdrawal_payouts.reconcile().items())
        self.payments.store.refresh_gauges()
        return outcomes

    # -- order events ------------------------------------------------------------------------------------------
    @batch_event_handler(events.ORDERS, events.ORDER_CREATED)
    def handle_order_created(self, payloads):
        self.payments.on_orders_created(payloads, "payments.handle_order_created")

    @reliable_event_handler(events.ORDERS, events.ORDER_STATUS_CHANGED)
    def handle_order_status_changed(self, payload):
        payout_id = self.payments.on_order_event(payload, "payments.handle_order_status_changed")
        if payout_id is not None:
            # Committed as `sending` above; now the provider call. Bounded by the adapter's timeout.
            self.payments.payouts.send(payout_id)

    @reliable_event_handler(events.ORDERS, events.PAYMENT_REJECTED)
    def handle_payment_rejected(self, payload):
        self.payments.on_payment_rejected(payload, "payments.handle_payment_rejected")

    @reliable_event_handler(events.ORDERS, events.PARTNER_PAYOUT_REQUESTED)
    def handle_partner_payout_requested(self, payload):
        payout_id = self.payments.on_partner_payout_requested(payload, "payments.handle_partner_payout_requested")
        if payout_id is not None:
            # Committed as `sending` above with the withdrawal's key; now the provider call.
            self.payments.withdrawal_payouts.send(payout_id)

    # -- operators -------------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def list_unmatched(self, limit=50, cursor=None):
        return self.payments.store.list_unmatched(limit, cursor)

    @rpc(expected_exceptions=expected)
    def assign_payment(self, payment_id, order_id, actor, note=None):
        return self.payments.store.assign(int(payment_id), int(order_id), errors.staff_actor(actor), note)

    @rpc(expected_exceptions=expected)
    def list_accounts(self):
        ids = self.payments.poller.ensure_accounts()
        return self.payments.store.list_accounts(ids.values())

    @rpc(expected_exceptions=expected)
    def list_payouts(self, status=None, limit=50, cursor=None, order_id=None):
        return self.payments.store.list_payouts(status, limit, cursor, order_id)

    @rpc(expected_exceptions=expected)
    def order_payments(self, order_id):
        return self.payments.store.order_payments(int(order_id))

    @rpc(expected_exceptions=expected)
    def resolve_payout(self, payout_id, outcome, note, actor):
        return self.payments.payouts.resolve(int(payout_id), outcome, note, errors.staff_actor(actor))
