"""Orders service entrypoints: RPC for the gateway, the expiry timer, handlers of payments' and the notifier's
events. Each only routes to one of the APIs in dependencies.py."""
from libs import errors
from libs.contracts import events
from libs.messaging import batch_event_handler, reliable_event_handler
from libs.metrics import EntrypointMetrics
from libs.outbox import OutboxRelayProvider
from libs.rpc import rpc
from libs.timers import config_timer
from services.orders import schemas
from services.orders.dependencies import (AccountsProvider, CatalogueProvider, MonitorExportProvider, OrdersProvider,
                                           PartnersProvider, StuckWorkProvider)

expected = errors.EXPECTED


class OrdersService:
    name = "orders"

    orders = OrdersProvider()
    catalogue = CatalogueProvider()
    accounts = AccountsProvider()
    partners = PartnersProvider()
    stuck_work = StuckWorkProvider()
    monitor_export = MonitorExportProvider()
    relay = OutboxRelayProvider()
    metrics = EntrypointMetrics()

    @rpc
    def echo(self, value=None):
        """Bare round trip through this service: the benchmark's yardstick for the messaging cost."""
        return value

    @rpc
    def ping(self):
        return "orders"

    # -- public --------------------------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def list_directions(self, active_only=True):
        return self.catalogue.list_directions(active_only)

    @rpc(expected_exceptions=expected)
    def get_direction(self, direction_id):
        return self.catalogue.get_direction(direction_id)

    @rpc(expected_exceptions=expected)
    def list_currencies(self):
        return self.catalogue.list_currencies()

    @rpc(expected_exceptions=expected)
    def create_order(self, data, actor=None):
        return self.orders.create_order(data, actor)

    @rpc(expected_exceptions=expected)
    def get_order_by_token(self, token):
        return self.orders.get_order_by_token(token)

    @rpc(expected_exceptions=expected)
    def claim_paid(self, token, actor=None):
        return self.orders.claim_paid(token, actor)

    @rpc(expected_exceptions=expected)
    def cancel_by_customer(self, token, actor=None):
        return self.orders.cancel_by_customer(token, actor)

    @rpc(expected_exceptions=expected)
    def sms_offer(self):
        return self.orders.sms_offer()

    # -- operators (an operator command without an actor is refused) ---------------------------------------------------
    @rpc(expected_exceptions=expected)
    def list_orders(self, filters=None):
        return self.orders.list_orders(filters)

    @rpc(expected_exceptions=expected)
    def get_order(self, order_id):
        return self.orders.get_order(order_id, with_history=True)

    @rpc(expected_exceptions=expected)
    def count_by_status(self):
        return self.orders.count_by_status()

    @rpc(expected_exceptions=expected)
    def process(self, order_id, notice, actor):
        return self.orders.transition("process", errors.staff_actor(actor), order_id=order_id, note=notice)

    @rpc(expected_exceptions=expected)
    def finalize(self, order_id, notice, actor):
        return self.orders.transition("finalize", errors.staff_actor(actor), order_id=order_id, note=notice)

    @rpc(expected_exceptions=expected)
    def cancel(self, order_id, reason, actor):
        return self.orders.transition("cancel", errors.staff_actor(actor), order_id=order_id, note=reason)

    @rpc(expected_exceptions=expected)
    def request_payout(self, order_id, actor):
        return self.orders.transition("payout", errors.staff_actor(actor), order_id=order_id)

    @rpc(expected_exceptions=expected)
    def delete(self, order_id, actor):
        return self.orders.transition("delete", errors.staff_actor(actor), order_id=order_id)

    # -- timers --------------------------------------------------------------------------------------------------------
    @config_timer("EXPIRY_SWEEP_SECONDS", 5.0)
    def expire_unpaid(self):
        return self.orders.expire_due()

    # -- directions and currencies management (admin only at the gateway; audited in orders.audit_log) ----------------
    @rpc(expected_exceptions=expected)
    def create_direction(self, data, actor):
        return self.catalogue.create_direction(data, errors.staff_actor(actor))

    @rpc(expected_exceptions=expected)
    def update_direction(self, direction_id, changes, actor):
        return self.catalogue.update_direction(direction_id, changes, errors.staff_actor(actor))

    @rpc(expected_exceptions=expected)
    def create_currency(self, data, actor):
        return self.catalogue.create_currency(data, errors.staff_actor(actor))

    @rpc(expected_exceptions=expected)
    def update_currency(self, code, changes, actor):
        return self.catalogue.update_currency(code, changes, errors.staff_actor(actor))

    # -- the monitors' rates file (docs/monitors.md) -------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def monitor_export_document(self, known_version=None):
        return self.monitor_export.document(known_version)

    @rpc(expected_exceptions=expected)
    def monitor_export_state(self):
        return self.monitor_export.state()

    @rpc(expected_exceptions=expected)
    def set_monitor_maintenance(self, on, actor):
        return self.monitor_export.set_maintenance(on, errors.staff_actor(actor))

    @batch_event_handler(events.ORDERS, events.DIRECTIONS_CHANGED)
    def handle_directions_changed(self, payloads):
        return self.monitor_export.refresh(payloads)

    # what open orders hold moves the file's `amount` without an event: rendered again on this beat
    @config_timer("MONITOR_EXPORT_REFRESH_SECONDS", 10.0, eager=True)
    def refresh_monitor_export(self):
        return self.monitor_export.refresh()

    # -- payments events (libs/contracts/payments.py) ------------------------------------------------------------------
    @reliable_event_handler(events.PAYMENTS, events.PAYMENT_RECEIVED)
    def handle_payment_received(self, payload):
        self.orders.payment_received(payload, "orders.handle_payment_received")

    @reliable_event_handler(events.PAYMENTS, events.PAYOUT_SENT)
    def handle_payout_sent(self, payload):
        self.orders.payout_result(payload, "orders.handle_payout_sent", sent=True)

    @reliable_event_handler(events.PAYMENTS, events.PAYOUT_FAILED)
    def handle_payout_failed(self, payload):
        self.orders.payout_result(payload, "orders.handle_payout_failed", sent=False)

    @reliable_event_handler(events.PAYMENTS, events.BALANCE_CHANGED)
    def handle_balance_changed(self, payload):
        self.orders.balance_changed(payload, "orders.handle_balance_changed")

    @reliable_event_handler(events.PAYMENTS, events.WITHDRAWAL_PAYOUT_SENT)
    def handle_withdrawal_payout_sent(self, payload):
        self.partners.withdrawal_payout_result(payload, "orders.handle_withdrawal_payout_sent", sent=True)

    @reliable_event_handler(events.PAYMENTS, events.WITHDRAWAL_PAYOUT_FAILED)
    def handle_withdrawal_payout_failed(self, payload):
        self.partners.withdrawal_payout_result(payload, "orders.handle_withdrawal_payout_failed", sent=False)

    @reliable_event_handler(events.PAYMENTS, events.PAYOUT_SUCCEEDED_AFTER_RESOLVE)
    def handle_payout_succeeded_after_resolve(self, payload):
        self.orders.payout_succeeded_after_resolve(payload, "orders.handle_payout_succeeded_after_resolve")

    # -- the rate engine's verdicts on directions (libs/contracts/rates.py, docs/rates.md) -----------------------------
    @reliable_event_handler(events.RATES, events.RATES_COMPUTED)
    def handle_rates_computed(self, payload):
        self.catalogue.rates_computed(payload, "orders.handle_rates_computed")

    # -- notifier events -----------------------------------------------------------------------------------------------
    @reliable_event_handler(events.NOTIFIER, events.SETTINGS_CHANGED)
    def handle_settings_changed(self, payload):
        self.orders.settings_changed(payload, "orders.handle_settings_changed")

    # -- read-model rebuilds (python -m services.reporting.rebuild) ----------------------------------------------------
    @rpc(expected_exceptions=expected)
    def export_orders(self, after_id=0, limit=500):
        return self.orders.export_orders(after_id, limit)

    # -- customer accounts (docs/partners.md): the gateway sends only hashes of session tokens -------------------------
    @rpc(expected_exceptions=expected)
    def account_signup(self, email, password, language="en", request_id=None):
        return self.accounts.signup(email, password, language, request_id)

    @rpc(expected_exceptions=expected)
    def account_confirm(self, token, password=None):
        return self.accounts.confirm(token, password)

    @rpc(expected_exceptions=expected)
    def account_sign_in(self, email, password, session_hash, kind, ttl_seconds, ip=None, code=None):
        return self.accounts.sign_in(email, password, session_hash, kind, ttl_seconds, ip, code)

    @rpc(expected_exceptions=expected)
    def account_change_password(self, account_id, current_password, new_password, keep_session_hash=None):
        return self.accounts.change_password(account_id, current_password, new_password, keep_session_hash)

    @rpc(expected_exceptions=expected)
    def account_totp_begin(self, account_id):
        return self.accounts.totp_begin(account_id)

    @rpc(expected_exceptions=expected)
    def account_totp_confirm(self, account_id, code):
        return self.accounts.totp_confirm(account_id, code)

    @rpc(expected_exceptions=expected)
    def account_totp_disable(self, account_id, password, code):
        return self.accounts.totp_disable(account_id, password, code)

    @rpc(expected_exceptions=expected)
    def confirm_withdrawal_destination(self, token):
        return self.partners.confirm_destination(token)

    @rpc(expected_exceptions=expected)
    def account_for_session(self, session_hash, idle_seconds=None):
        return self.accounts.account_for_session(session_hash, idle_seconds)

    @rpc(expected_exceptions=expected)
    def account_sign_out(self, session_hash):
        return self.accounts.sign_out(session_hash)

    @rpc(expected_exceptions=expected)
    def account_password_reset_request(self, email, request_id=None):
        return self.accounts.request_password_reset(email, request_id)

    @rpc(expected_exceptions=expected)
    def account_password_reset(self, token, password):
        return self.accounts.reset_password(token, password)

    @rpc(expected_exceptions=expected)
    def account_orders(self, account_id, limit=50, cursor=None):
        return self.accounts.list_account_orders(account_id, limit, cursor)

    # -- the partner programme: the partner's side ---------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def become_partner(self, account_id):
        return schemas.partner_joined(*self.partners.become_partner(account_id))

    @rpc(expected_exceptions=expected)
    def partner_overview(self, account_id):
        return self.partners.partner_overview(account_id)

    @rpc(expected_exceptions=expected)
    def count_partner_click(self, code):
        return self.partners.count_click(code)

    @rpc(expected_exceptions=expected)
    def request_withdrawal(self, account_id, amount, currency, to_account, request_id=None):
        return self.partners.request_withdrawal(account_id, amount, currency, to_account, request_id)

    # -- the partner programme: operators and admins (audited in orders.audit_log) -------------------------------------
    @rpc(expected_exceptions=expected)
    def list_partners(self, filters=None):
        return self.partners.list_partners(filters)

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
        return self.partners.list_withdrawals(filters)

    @rpc(expected_exceptions=expected)
    def decide_withdrawal(self, withdrawal_id, action, actor, method=None, reference=None, reason=None):
        return self.partners.decide_withdrawal(withdrawal_id, action, errors.staff_actor(actor), method, reference,
                                               reason)

    # -- stuck work (docs/architecture.md, "Stuck work") ---------------------------------------------------------------
    @config_timer("STUCK_CHECK_SECONDS", 60.0, eager=True)
    def check_stuck_work(self):
        return self.stuck_work.check()

    @rpc(expected_exceptions=expected)
    def list_stuck_work(self):
        return self.stuck_work.list()

    @rpc(expected_exceptions=expected)
    def repair_stuck_work(self, kind, item_id, action, actor):
        return self.stuck_work.repair(kind, item_id, action, actor)
