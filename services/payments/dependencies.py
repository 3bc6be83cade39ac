"""The payments service's nameko dependencies, one per task, each a small API on the container's one shared pool:

- `incoming`: polling the configured accounts, matching what arrives, the operators' unmatched list;
- `payouts`: payouts of orders and of partner withdrawals (send, reconcile, resolve, list);
- `order_copies`: the copies of orders kept from orders' events (and the payout an order asks for).

The adapters of the configured payment systems are built once per container (`PaymentSystems`) and closed when
it stops.
"""
import json
import os

from nameko.extensions import SharedExtension

from libs import errors, inbox
from libs.contracts import payments as contract
from libs.contracts.orders import OrderEventSchema
from libs.dependencies import ServiceDependency
from services.payments import adapters as adapters_mod
from services.payments import metrics
from services.payments.matching import Matching
from services.payments.payouts import OrderPayouts, WithdrawalPayouts
from services.payments.poller import Poller
from services.payments.store import PaymentStore


# -- configuration -------------------------------------------------------------------------------------------------
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


def reconcile_after_seconds(cfg, adapters):
    """A payout whose call may still be in flight is not looked up: wait longer than any call can take."""
    longest_call = max([getattr(a, "timeout", 0) + getattr(a, "connect_timeout", 0) for a in adapters.values()]
                       or [0])
    return max(float(cfg.get("RECONCILE_AFTER_SECONDS", 30)), longest_call + 1)


def order_payouts(store, adapters, cfg):
    return OrderPayouts(store, adapters, reconcile_after_seconds=reconcile_after_seconds(cfg, adapters))


def matching(db, cfg):
    return Matching(db, late_grace_seconds=float(cfg.get("LATE_GRACE_SECONDS", 0)))


# -- the APIs the entrypoints see ------------------------------------------------------------------------------------
class Incoming:
    """Incoming payments: the polled accounts, matching, and the operators' view of what did not match."""

    def __init__(self, poller, matching):
        self.poller = poller
        self.matching = matching
        self.db = matching.db
        self.store = matching.store

    def poll_all(self):
        return self.poller.poll_all()

    def list_accounts(self):
        return self.store.list_accounts(self.poller.ensure_accounts().values())

    def list_unmatched(self, limit=50, cursor=None):
        return self.store.list_unmatched(limit, cursor)

    def assign_payment(self, payment_id, order_id, actor, note=None):
        return self.matching.assign(int(payment_id), int(order_id), errors.staff_actor(actor), note)

    def order_payments(self, order_id):
        return self.store.order_payments(int(order_id))

    def payment_rejected(self, payload, consumer):
        """orders could not take a payment we matched: back to the unmatched list, with the inbox record."""
        envelope, data = contract.load(contract.PaymentRejectedSchema, payload)
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, envelope["event_id"]):
                return None
            return self.matching.reject(cur, data["payment_id"], data["order_id"], data["reason"])


class Payouts:
    """Payouts of orders and of partner withdrawals: the reconciler, operators' listing and resolving, and the
    withdrawals orders hand over."""

    def __init__(self, store, orders, withdrawals):
        self.db = store.db
        self.store = store
        self.orders = orders
        self.withdrawals = withdrawals

    def reconcile(self):
        outcomes = self.orders.reconcile()
        # Partner withdrawals' payouts, same rules (keys prefixed so the two tables' ids do not collide).
        outcomes.update(("withdrawal:%s" % k, v) for k, v in self.withdrawals.reconcile().items())
        self.refresh_gauges()
        return outcomes

    def refresh_gauges(self):
        row = self.store.gauges()
        metrics.UNMATCHED.set(row["unmatched"])
        metrics.SENDING.set(row["sending"])
        metrics.SENDING_OLDEST.set(float(row["oldest"] or 0))

    def list_payouts(self, status=None, limit=50, cursor=None, order_id=None):
        return self.store.list_payouts(status, limit, cursor, order_id)

    def resolve(self, payout_id, outcome, note, actor):
        return self.orders.resolve(int(payout_id), outcome, note, errors.staff_actor(actor))

    def resolve_withdrawal(self, payout_id, outcome, note, actor):
        return self.withdrawals.resolve(int(payout_id), outcome, note, errors.staff_actor(actor))

    def partner_payout_requested(self, payload, consumer):
        """orders' partner_payout_requested: commit the withdrawal's payout as `sending` (with the event's key)
        together with the inbox record, then call the payment system."""
        envelope, data = contract.load(contract.PartnerPayoutRequestedSchema, payload)
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, envelope["event_id"]):
                return
            payout_id = self.withdrawals.on_requested(cur, data)
        if payout_id is not None:
            # Committed as `sending` above with the withdrawal's key; now the provider call.
            self.withdrawals.send(payout_id)


class OrderCopies:
    """The copies of orders matching and payouts read, kept from orders' events: a payment that waited for its
    order is matched when the order arrives, and an order that reaches `payout` gets its payout."""

    def __init__(self, matching, payouts):
        self.db = matching.db
        self.store = matching.store
        self.matching = matching
        self.payouts = payouts

    def orders_created(self, payloads, consumer):
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
                self.matching.apply_new_orders(cur, orders)

    def order_status_changed(self, payload, consumer):
        """Keep the order copy, match payments that waited for this order, and when the order reached `payout`
        commit its payout as `sending` with the inbox record; then call the payment system."""
        payout_id = self._apply(payload, consumer)
        if payout_id is not None:
            # Committed as `sending` above; now the provider call. Bounded by the adapter's timeout.
            self.payouts.send(payout_id)

    def _apply(self, payload, consumer):
        envelope, data = contract.load(OrderEventSchema, payload)
        order = data["order"]
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, envelope["event_id"]):
                return None
            self.store.lock_references(cur, [order["reference"]])   # meets the poller (store.lock_references)
            self.store.apply_order(cur, order)
            self.matching.rematch_for_order(cur, order["id"])
            if order["status"] == "payout" and data.get("to_status") in (None, "payout"):
                return self.payouts.on_payout_requested(cur, order)
        return None


# -- the providers ---------------------------------------------------------------------------------------------------
class PaymentSystems(SharedExtension):
    """The adapters of the configured payment systems (PAYMENT_SYSTEMS), one set per container: their HTTP
    connections are pooled and closed when the container stops."""

    adapters = None

    def setup(self):
        # Idempotent, as SharedDatabase: the providers call it before building, in whatever order nameko runs.
        if self.adapters is None:
            self.adapters = build_adapters(self.container.config)

    def stop(self):
        self._close()

    def kill(self):
        self._close()

    def _close(self):
        for adapter in (self.adapters or {}).values():
            adapter.close()


class PaymentsDependency(ServiceDependency):
    """A payments provider: the shared pool and the container's payment system adapters."""

    payment_systems = PaymentSystems()

    def setup(self):
        self.payment_systems.setup()
        super().setup()

    @property
    def adapters(self):
        return self.payment_systems.adapters


class IncomingDependency(PaymentsDependency):
    def build(self, db, cfg):
        poll_matching = matching(db, cfg)
        poller = Poller(poll_matching, self.adapters, configured_accounts(cfg),
                        poll_seconds=float(cfg.get("POLL_SECONDS", 2.0)),
                        concurrency=int(cfg.get("POLL_CONCURRENCY", 20)),
                        overlap_polls=int(cfg.get("OVERLAP_POLLS", 2)),
                        page_limit=int(cfg.get("POLL_PAGE_LIMIT", 500)),
                        max_pages=int(cfg.get("POLL_MAX_PAGES", 20)),
                        balance_refresh_seconds=float(cfg.get("BALANCE_REFRESH_SECONDS", 60)))
        return Incoming(poller, poll_matching)


class PayoutsDependency(PaymentsDependency):
    def build(self, db, cfg):
        store = PaymentStore(db)
        return Payouts(store, order_payouts(store, self.adapters, cfg),
                       WithdrawalPayouts(store, self.adapters,
                                         reconcile_after_seconds=reconcile_after_seconds(cfg, self.adapters)))


class OrderCopiesDependency(PaymentsDependency):
    def build(self, db, cfg):
        copies_matching = matching(db, cfg)
        return OrderCopies(copies_matching, order_payouts(copies_matching.store, self.adapters, cfg))
