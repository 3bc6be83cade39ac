"""Orders service entrypoints: RPC for the gateway, the expiry timer. Logic lives in domain.py and
dependencies.py; this module only routes calls."""
from libs.rpc import rpc
from nameko.timer import timer

from libs import config, errors
from libs.contracts import events, payments
from libs.metrics import EntrypointMetrics
from libs.messaging import reliable_event_handler
from libs.outbox import OutboxRelayProvider
from services.orders.dependencies import OrderStoreProvider
from services.orders.partners import PartnerStoreProvider

EXPIRY_SWEEP_SECONDS = config.env_float("EXPIRY_SWEEP_SECONDS", 5.0)

expected = errors.EXPECTED


class OrdersService:
    name = "orders"

    store = OrderStoreProvider()
    partners = PartnerStoreProvider()   # accounts and the partner program (issue 7), same pool as the store
    relay = OutboxRelayProvider("orders")
    metrics = EntrypointMetrics()

    @rpc
    def echo(self, value=None):
        """Bare round trip through this service: the benchmark's yardstick for the messaging cost."""
        return value

    @rpc
    def ping(self):
        return "orders"

    # -- public --------------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def list_directions(self, active_only=True):
        return self.store.list_directions(active_only)

    @rpc(expected_exceptions=expected)
    def get_direction(self, direction_id):
        return self.store.get_direction(direction_id)

    @rpc(expected_exceptions=expected)
    def list_currencies(self):
        return self.store.list_currencies()

    @rpc(expected_exceptions=expected)
    def create_order(self, data, actor=None):
        return self.store.create_order(data, dict(actor or {}, kind="customer"))

    @rpc(expected_exceptions=expected)
    def get_order_by_token(self, token):
        return self.store.get_order_by_token(token)

    @rpc(expected_exceptions=expected)
    def claim_paid(self, token, actor=None):
        return self.store.transition("claim", dict(actor or {}, kind="customer", name="customer"), token=token)

    @rpc(expected_exceptions=expected)
    def cancel_by_customer(self, token, actor=None):
        return self.store.transition("customer_cancel", dict(actor or {}, kind="customer", name="customer"),
                                     token=token)

    # -- operators -----------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def list_orders(self, filters=None):
        return self.store.list_orders(filters or {})

    @rpc(expected_exceptions=expected)
    def get_order(self, order_id):
        return self.store.get_order(order_id, with_history=True)

    @rpc(expected_exceptions=expected)
    def count_by_status(self):
        return self.store.count_by_status()

    @rpc(expected_exceptions=expected)
    def process(self, order_id, notice, actor):
        return self.store.transition("process", errors.staff_actor(actor), order_id=order_id, note=notice)

    @rpc(expected_exceptions=expected)
    def finalize(self, order_id, notice, actor):
        return self.store.transition("finalize", errors.staff_actor(actor), order_id=order_id, note=notice)

    @rpc(expected_exceptions=expected)
    def cancel(self, order_id, reason, actor):
        return self.store.transition("cancel", errors.staff_actor(actor), order_id=order_id, note=reason)

    @rpc(expected_exceptions=expected)
    def request_payout(self, order_id, actor):
        return self.store.transition("payout", errors.staff_actor(actor), order_id=order_id)

    @rpc(expected_exceptions=expected)
    def delete(self, order_id, actor):
        return self.store.transition("delete", errors.staff_actor(actor), order_id=order_id)

    # -- timers --------------------------------------------------------------------------------------------
    @timer(interval=EXPIRY_SWEEP_SECONDS)
    def expire_unpaid(self):
        return self.store.expire_due()

    # -- directions and currencies management (admin only at the gateway; audited in orders.audit_log) ----------
    @rpc(expected_exceptions=expected)
    def create_direction(self, data, actor):
        return self.store.create_direction(data, errors.staff_actor(actor))

    @rpc(expected_exceptions=expected)
    def update_direction(self, direction_id, changes, actor):
        return self.store.update_direction(direction_id, changes, errors.staff_actor(actor))

    @rpc(expected_exceptions=expected)
    def create_currency(self, data, actor):
        return self.store.create_currency(data, errors.staff_actor(actor))

    @rpc(expected_exceptions=expected)
    def update_currency(self, code, changes, actor):
        return self.store.update_currency(code, changes, errors.staff_actor(actor))

    # -- payments events (libs/contracts/payments.py) ------------------------------------------------------------
    @reliable_event_handler(events.PAYMENTS, events.PAYMENT_RECEIVED)
    def handle_payment_received(self, payload):
        envelope, data = payments.load(payments.PaymentReceivedSchema, payload)
        self.store.apply_payment(envelope["event_id"], "orders.handle_payment_received", data)

    @reliable_event_handler(events.PAYMENTS, events.PAYOUT_SENT)
    def handle_payout_sent(self, payload):
        envelope, data = payments.load(payments.PayoutResultSchema, payload)
        self.store.apply_payout_result(envelope["event_id"], "orders.handle_payout_sent", data, sent=True)

    @reliable_event_handler(events.PAYMENTS, events.PAYOUT_FAILED)
    def handle_payout_failed(self, payload):
        envelope, data = payments.load(payments.PayoutResultSchema, payload)
        self.store.apply_payout_result(envelope["event_id"], "orders.handle_payout_failed", data, sent=False)

    @reliable_event_handler(events.PAYMENTS, events.BALANCE_CHANGED)
    def handle_balance_changed(self, payload):
        envelope, data = payments.load(payments.BalanceChangedSchema, payload)
        self.store.apply_balance(envelope["event_id"], "orders.handle_balance_changed", data)

    @reliable_event_handler(events.PAYMENTS, events.WITHDRAWAL_PAYOUT_SENT)
    def handle_withdrawal_payout_sent(self, payload):
        envelope, data = payments.load(payments.WithdrawalPayoutResultSchema, payload)
        self.partners.apply_withdrawal_payout(envelope["event_id"], "orders.handle_withdrawal_payout_sent", data,
                                              sent=True)

    @reliable_event_handler(events.PAYMENTS, events.WITHDRAWAL_PAYOUT_FAILED)
    def handle_withdrawal_payout_failed(self, payload):
        envelope, data = payments.load(payments.WithdrawalPayoutResultSchema, payload)
        self.partners.apply_withdrawal_payout(envelope["event_id"], "orders.handle_withdrawal_payout_failed", data,
                                              sent=False)

    # -- notifier events --------------------------------------------------------------------------------------
    @reliable_event_handler(events.NOTIFIER, events.SETTINGS_CHANGED)
    def handle_settings_changed(self, payload):
        envelope = events.load_envelope(payload)
        self.store.apply_sms_fee_setting(envelope["event_id"], "orders.handle_settings_changed", envelope["data"])

    # -- read-model rebuilds (python -m services.reporting.rebuild) ----------------------------------------------
    @rpc(expected_exceptions=expected)
    def export_orders(self, after_id=0, limit=500):
        return self.store.export_orders(after_id, limit)

    # -- customer accounts (issue 7, docs/partners.md): the gateway sends only hashes of session tokens ----------
    @rpc(expected_exceptions=expected)
    def account_signup(self, email, password, language="en", request_id=None):
        return self.partners.signup(email, password, language, request_id)

    @rpc(expected_exceptions=expected)
    def account_confirm(self, token):
        return self.partners.confirm(token)

    @rpc(expected_exceptions=expected)
    def account_sign_in(self, email, password, session_hash, kind, ttl_seconds, ip=None):
        return self.partners.sign_in(email, password, session_hash, kind, ttl_seconds, ip)

    @rpc(expected_exceptions=expected)
    def account_for_session(self, session_hash, idle_seconds=None):
        return self.partners.account_for_session(session_hash, idle_seconds)

    @rpc(expected_exceptions=expected)
    def account_sign_out(self, session_hash):
        return self.partners.sign_out(session_hash)

    @rpc(expected_exceptions=expected)
    def account_password_reset_request(self, email, request_id=None):
        return self.partners.request_password_reset(email, request_id)

    @rpc(expected_exceptions=expected)
    def account_password_reset(self, token, password):
        return self.partners.reset_password(token, password)

    @rpc(expected_exceptions=expected)
    def account_orders(self, account_id, limit=50, cursor=None):
        return self.partners.list_account_orders(account_id, limit, cursor)

    # -- the partner program: the partner's side ---------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def become_partner(self, account_id):
        partner, created = self.partners.become_partner(account_id)
        return {"partner": partner, "created": created}

    @rpc(expected_exceptions=expected)
    def partner_overview(self, account_id):
        return self.partners.partner_overview(account_id)

    @rpc(expected_exceptions=expected)
    def count_partner_click(self, code):
        return self.partners.count_click(code)

    @rpc(expected_exceptions=expected)
    def request_withdrawal(self, account_id, amount, currency, to_account, request_id=None):
        return self.partners.request_withdrawal(account_id, amount, currency, to_account, request_id)

    # -- the partner program: operators and admins (audited in orders.audit_log) ---------------------------------
    @rpc(expected_exceptions=expected)
    def list_partners(self, filters=None):
        return self.partners.list_partners(filters or {})

    @rpc(expected_exceptions=expected)
    def get_partner(self, partner_id):
        return self.partners.get_partner(partner_id)

    @rpc(expected_exceptions=expected)
    def update_partner(self, partner_id, changes, actor):
        return self.partners.update_partner(partner_id, changes, errors.staff_actor(actor))

    @rpc(expected_exceptions=expected)
    def get_commission(self):
        return self.partners.get_commission()

    @rpc(expected_exceptions=expected)
    def update_commission(self, changes, actor, expected_version=None):
        return self.partners.update_commission(changes, errors.staff_actor(actor), expected_version)

    @rpc(expected_exceptions=expected)
    def set_direction_commission(self, direction_id, rule, actor):
        return self.partners.set_direction_commission(direction_id, rule, errors.staff_actor(actor))

    @rpc(expected_exceptions=expected)
    def list_withdrawals(self, filters=None):
        return self.partners.list_withdrawals(filters or {})

    @rpc(expected_exceptions=expected)
    def decide_withdrawal(self, withdrawal_id, action, actor, method=None, reference=None, reason=None):
        return self.partners.decide_withdrawal(withdrawal_id, action, errors.staff_actor(actor), method, reference,
                                               reason)
