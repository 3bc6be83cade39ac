"""The payments service's one dependency: storage, the adapters of the configured payment systems, the poller
and the payouts, built once per container from its config (config.yml, environment)."""
import json
import logging
import os

from nameko.extensions import DependencyProvider

from libs import config, inbox
from libs.db import Database
from libs.contracts import payments as contract
from libs.contracts.orders import OrderEventSchema
from services.payments import adapters as adapters_mod
from services.payments.payouts import Payouts, WithdrawalPayouts
from services.payments.poller import Poller
from services.payments.store import PaymentStore

log = logging.getLogger(__name__)

DEFAULT_SCHEMA = "payments"


def configured_accounts(cfg, environ=os.environ):
    """Accounts to poll: PAYMENT_ACCOUNTS in the environment (JSON list) or in config.yml (YAML list).
    Each: {system, account, currency, payout: true|false (default true)}."""
    raw = environ.get("PAYMENT_ACCOUNTS")
    accounts = json.loads(raw) if raw else (cfg.get("PAYMENT_ACCOUNTS") or [])
    if isinstance(accounts, str):
        accounts = json.loads(accounts)
    systems = cfg.get("PAYMENT_SYSTEMS") or {}
    for acc in accounts:
        missing = [k for k in ("system", "account", "currency") if not acc.get(k)]
        if missing:
            raise ValueError("payment account %r lacks %s" % (acc, ", ".join(missing)))
        if acc["system"] not in systems:
            raise ValueError("payment account %s: no payment system %r in PAYMENT_SYSTEMS" % (
                acc["account"], acc["system"]))
    return accounts


def build_adapters(cfg):
    systems = cfg.get("PAYMENT_SYSTEMS") or {}
    return {name: adapters_mod.build(name, settings) for name, settings in systems.items()}


class Payments:
    """What the entrypoints use: `store`, `poller`, `payouts`, and the event handlers' transactions."""

    def __init__(self, db, store, poller, payouts, withdrawal_payouts=None):
        self.db = db
        self.store = store
        self.poller = poller
        self.payouts = payouts
        self.withdrawal_payouts = withdrawal_payouts

    def on_order_event(self, payload, consumer):
        """order_created / order_status_changed: keep the order copy, match payments that waited for this order,
        and create the payout when the order reached `payout`. Returns a payout id to send now, or None."""
        envelope, data = contract.load(OrderEventSchema, payload)
        order = data["order"]
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, envelope["event_id"]):
                return None
            self.store.apply_order(cur, order)
            self.store.rematch_for_order(cur, order["id"])
            if order["status"] == "payout" and data.get("to_status") in (None, "payout"):
                return self.payouts.on_payout_requested(cur, order)
        return None

    def on_orders_created(self, payloads, consumer):
        """A batch of order_created events in ONE transaction with one inbox insert: keep the order copies and
        match the payments that waited for them (an order is created `new`: no payout can be due yet)."""
        loaded = [contract.load(OrderEventSchema, payload) for payload in payloads]
        with self.db.transaction() as cur:
            fresh = {str(e["event_id"]) for e in inbox.claim_batch(cur, consumer, [e for e, _ in loaded])}
            orders = []
            for envelope, data in loaded:
                if str(envelope["event_id"]) in fresh:
                    fresh.discard(str(envelope["event_id"]))
                    orders.append(data["order"])
            if orders:
                self.store.apply_new_orders(cur, orders)

    def on_partner_payout_requested(self, payload, consumer):
        """orders' partner_payout_requested: commit the withdrawal's payout as `sending` (with the event's key)
        together with the inbox record. Returns a withdrawal payout id to send now, or None."""
        envelope, data = contract.load(contract.PartnerPayoutRequestedSchema, payload)
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, envelope["event_id"]):
                return None
            return self.withdrawal_payouts.on_requested(cur, data)

    def on_payment_rejected(self, payload, consumer):
        envelope, data = contract.load(contract.PaymentRejectedSchema, payload)
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, envelope["event_id"]):
                return None
            return self.store.reject(cur, data["payment_id"], data["order_id"], data["reason"])


def build(cfg):
    """A Payments for a container config (also used by tests and the benchmark)."""
    schema = cfg.get("DB_SCHEMA") or DEFAULT_SCHEMA
    poll_concurrency = int(cfg.get("POLL_CONCURRENCY", 20))
    db = Database(url=cfg.get("DATABASE_URL") or config.database_url(), schema=schema,
                  maxconn=int(cfg.get("DB_POOL_SIZE") or int(cfg.get("max_workers", 10)) + poll_concurrency + 4),
                  application_name="payments")
    store = PaymentStore(db, late_grace_seconds=float(cfg.get("LATE_GRACE_SECONDS", 0)))
    adapters = build_adapters(cfg)
    poller = Poller(db, store, adapters, configured_accounts(cfg),
                    poll_seconds=float(cfg.get("POLL_SECONDS", 2.0)), concurrency=poll_concurrency,
                    overlap_polls=int(cfg.get("OVERLAP_POLLS", 2)),
                    page_limit=int(cfg.get("POLL_PAGE_LIMIT", 500)), max_pages=int(cfg.get("POLL_MAX_PAGES", 20)),
                    balance_refresh_seconds=float(cfg.get("BALANCE_REFRESH_SECONDS", 60)))
    # A payout whose call may still be in flight is not looked up: wait longer than any call can take.
    longest_call = max([getattr(a, "timeout", 0) + getattr(a, "connect_timeout", 0) for a in adapters.values()]
                       or [0])
    reconcile_after = max(float(cfg.get("RECONCILE_AFTER_SECONDS", 30)), longest_call + 1)
    payouts = Payouts(db, store, adapters, reconcile_after_seconds=reconcile_after)
    withdrawal_payouts = WithdrawalPayouts(db, store, adapters, reconcile_after_seconds=reconcile_after)
    return Payments(db, store, poller, payouts, withdrawal_payouts)


class PaymentsProvider(DependencyProvider):
    def setup(self):
        self.payments = build(self.container.config)

    def stop(self):
        self._close()

    def kill(self):
        self._close()

    def _close(self):
        for adapter in self.payments.poller.adapters.values():
            adapter.close()
        self.payments.db.close()

    def get_dependency(self, worker_ctx):
        return self.payments
