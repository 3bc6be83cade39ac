"""The payments service's nameko dependencies, one per task, each a small API on the container's one shared pool:

- `incoming`: polling the configured accounts, matching what arrives, the operators' unmatched list;
- `payouts`: payouts of orders and of partner withdrawals (send, reconcile, resolve, list);
- `order_copies`: the copies of orders kept from orders' events (and the payout an order asks for);
- `stuck_work`: money work that should have moved on and has not: the check, the list and the repairs.

The adapters of the configured payment systems are built once per container (`PaymentSystems`) and closed when
it stops.
"""
import json
import os

from nameko.extensions import SharedExtension

from libs import errors, inbox
from libs import metrics as metrics_lib
from libs.contracts import events
from libs.contracts import payments as contract
from libs.contracts import stuck as stuck_contract
from libs.contracts.orders import OrderEventSchema
from libs.dependencies import ServiceDependency
from services.payments import adapters as adapters_mod
from services.payments import domain, metrics
from services.payments.matching import Matching
from services.payments.payouts import OrderPayouts, WithdrawalPayouts
from services.payments.poller import Poller
from services.payments.schemas import payment_to_wire, payout_to_wire
from services.payments.store import ChainStore, PaymentStore
from services.payments.chains import ChainFollower


# -- configuration -------------------------------------------------------------------------------------------------
def configured_accounts(cfg, environ=os.environ):
    """Accounts to poll: PAYMENT_ACCOUNTS in the environment (JSON list) or in config.yml (YAML list).
    Each: {system, account, currency, payout: true|false (default true)}."""
    raw = environ.get("PAYMENT_ACCOUNTS")
    accounts = json.loads(raw) if raw else (cfg.get("PAYMENT_ACCOUNTS") or [])
    if isinstance(accounts, str):
        accounts = json.loads(accounts)
    systems = cfg.get("PAYMENT_SYSTEMS") or {}
    # The accounts of a payment system switched off (`enabled: false`, e.g. a chain whose node is not run here)
    # are not polled.
    accounts = [acc for acc in accounts if acc.get("system") not in systems or enabled(systems[acc["system"]])]
    for acc in accounts:
        missing = [k for k in ("system", "account", "currency") if not acc.get(k)]
        if missing:
            raise ValueError("payment account %r lacks %s" % (acc, ", ".join(missing)))
        if acc["system"] not in systems:
            raise ValueError("payment account %s: no payment system %r in PAYMENT_SYSTEMS" % (
                acc["account"], acc["system"]))
    return accounts


def enabled(settings):
    value = (settings or {}).get("enabled", True)
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def build_adapters(cfg):
    systems = cfg.get("PAYMENT_SYSTEMS") or {}
    return {name: adapters_mod.build(name, settings) for name, settings in systems.items() if enabled(settings)}


def bind_chains(adapters, db):
    """Chain adapters keep their signed transactions and deposit addresses in the payments schema (docs/chains.md):
    hand them the store (the container's one pool; binding again is harmless)."""
    for adapter in adapters.values():
        if getattr(adapter, "follows_chain", False):
            adapter.bind(ChainStore(db))


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

    def order_deposit(self, order_id, reference, system):
        """The order's deposit address on a chain (made at the first ask) and the deposits seen on it with their
        confirmations (docs/chains.md): what the order page shows the customer."""
        adapter = self.poller.adapters.get(system)
        if not getattr(adapter, "follows_chain", False):
            raise errors.ValidationFailed("%s is not a chain" % system, {"system": ["not a chain"]})
        chain_store = ChainStore(self.db)
        row = chain_store.deposit_address(int(order_id))
        if row is None:
            address, derivation = adapter.new_deposit_address(int(order_id), reference)
            row = chain_store.insert_deposit_address(int(order_id), system, address, reference, derivation)
        return domain.deposit_to_wire(row, chain_store.order_deposits(int(order_id)), adapter.confirmations,
                                      adapter.network_fee_estimate())

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
        bind_chains(self.adapters, db)
        poll_matching = matching(db, cfg)
        poller = Poller(poll_matching, self.adapters, configured_accounts(cfg),
                        poll_seconds=float(cfg.get("POLL_SECONDS", 2.0)),
                        concurrency=int(cfg.get("POLL_CONCURRENCY", 20)),
                        overlap_polls=int(cfg.get("OVERLAP_POLLS", 2)),
                        page_limit=int(cfg.get("POLL_PAGE_LIMIT", 500)),
                        max_pages=int(cfg.get("POLL_MAX_PAGES", 20)),
                        balance_refresh_seconds=float(cfg.get("BALANCE_REFRESH_SECONDS", 60)),
                        chain_follower=ChainFollower(poll_matching, ChainStore(db)))
        return Incoming(poller, poll_matching)


class PayoutsDependency(PaymentsDependency):
    def build(self, db, cfg):
        bind_chains(self.adapters, db)
        store = PaymentStore(db)
        return Payouts(store, order_payouts(store, self.adapters, cfg),
                       WithdrawalPayouts(store, self.adapters,
                                         reconcile_after_seconds=reconcile_after_seconds(cfg, self.adapters)))


class OrderCopiesDependency(PaymentsDependency):
    def build(self, db, cfg):
        bind_chains(self.adapters, db)
        copies_matching = matching(db, cfg)
        return OrderCopies(copies_matching, order_payouts(copies_matching.store, self.adapters, cfg))


# -- stuck work (docs/architecture.md, "Stuck work") -------------------------------------------------------------------
class StuckWork:
    """Money work of payments that should have moved on and has not: found by a timer's check (the gauge
    `exchanger_stuck_work{kind}`, and `stuck_work_found` once per item while it stays stuck), listed for operators,
    and repaired by them (each repair audited in payments.audit_log, refusals too)."""

    KINDS = stuck_contract.kinds_of("payments")

    def __init__(self, store, payouts, after_seconds=600.0, sending_after_seconds=630.0):
        self.db = store.db
        self.store = store
        self.payouts = payouts
        self.after_seconds = float(after_seconds)
        self.sending_after_seconds = float(sending_after_seconds)

    def find(self):
        orders, matched, sending = self.store.stuck_candidates(self.after_seconds, self.sending_after_seconds,
                                                               domain.PAYMENT_SETTLED_ORDER_STATUSES)
        return domain.stuck_payments_work(orders, matched, sending, self.after_seconds, self.sending_after_seconds)

    def check(self):
        """The timer's check: count per kind, and announce the items not announced before (one event, in the
        transaction that remembers them). Returns {"counts", "announced"}."""
        items = self.find()
        counts = stuck_contract.counts(items, self.KINDS)
        for kind, n in counts.items():
            metrics_lib.STUCK_WORK.labels(kind).set(n)
        with self.db.transaction() as cur:
            new = self.store.remember_stuck(cur, self.KINDS, [(i["kind"], i["id"]) for i in items])
            fresh = [i for i in items if (i["kind"], i["id"]) in new]
            if fresh:
                self.store.event(cur, events.STUCK_WORK_FOUND, {"service": "payments", "items": fresh,
                                                                "counts": counts}, aggregate_id="stuck")
        return {"counts": counts, "announced": len(fresh)}

    def list(self):
        return self.find()

    def repair(self, kind, item_id, action, actor):
        actor = errors.staff_actor(actor)
        item_id = int(item_id)
        if kind not in self.KINDS or action not in stuck_contract.repairs(kind):
            self._refused(actor, kind, item_id, action, "no such repair")
            raise errors.ValidationFailed("no repair %r for %r here" % (action, kind), {
                "action": ["one of %s" % ", ".join(stuck_contract.repairs(kind))] if kind in self.KINDS
                else ["unknown kind"]})
        item = next((i for i in self.find() if (i["kind"], i["id"]) == (kind, item_id)), None)
        if item is None:
            self._refused(actor, kind, item_id, action, "not stuck")
            raise errors.Conflict("%s %s is not stuck (any more)" % (kind, item_id), {"id": ["not stuck"]})
        return getattr(self, "_" + action)(item, actor)

    def _refused(self, actor, kind, item_id, action, reason):
        with self.db.transaction() as cur:
            self.store.audit(cur, actor, "repair_stuck_work", outcome="rejected",
                             detail={"kind": kind, "id": item_id, "action": action, "reason": reason})

    def _detail(self, item, action, **more):
        return dict({"kind": item["kind"], "id": item["id"], "action": action, "age_seconds": item["age_seconds"]},
                    **more)

    def _create_payout(self, item, actor):
        """The order copy is in `payout` and no attempt answers it: the order event handler's path (commit the
        attempt as `sending` with its deterministic key, then call the payment system)."""
        with self.db.transaction() as cur:
            order = self.store.order(cur, order_id=item["order_id"], lock=True)
            payout_id = self.payouts.on_payout_requested(cur, order) if order["status"] == "payout" else None
            latest = self.store.latest_payout(cur, order["id"])
            self.store.audit(cur, actor, "repair_stuck_work", order_id=order["id"],
                             payout_id=latest["id"] if latest else None,
                             detail=self._detail(item, "create_payout", order_status=order["status"]))
        if payout_id is not None:
            self.payouts.send(payout_id)
        latest = self.store.order_payments(order["id"])["payouts"]
        return {"kind": item["kind"], "id": item["id"], "action": "create_payout",
                "payout": latest[-1] if latest else None}

    def _unmatch(self, item, actor):
        """The payment goes to the unmatched list (reason code `stuck`) for an operator to assign or refund."""
        reason = "stuck: matched to order %s, which is not paid" % item["order_id"]
        with self.db.transaction() as cur:
            done = self.store.unmatch_stuck(cur, item["id"], item["order_id"], reason)
            wire = payment_to_wire(self.store.payment(cur, item["id"]))
            if done:
                self.store.event(cur, events.PAYMENT_UNMATCHED, {"payment": wire, "reason_code": "stuck",
                                                                 "reason": reason}, aggregate_id=item["order_id"])
            self.store.audit(cur, actor, "repair_stuck_work", payment_id=item["id"], order_id=item["order_id"],
                             outcome="ok" if done else "rejected", detail=self._detail(item, "unmatch"))
        if not done:  # changed meanwhile (orders' rejection, an operator): the refusal is on the record
            raise errors.Conflict("payment %s is no longer matched to order %s" % (item["id"], item["order_id"]))
        metrics.INGESTED.labels("stuck").inc()
        return {"kind": item["kind"], "id": item["id"], "action": "unmatch", "payment": wire}

    def _reconcile(self, item, actor):
        """The reconciler's step for this one payout now: look it up by its key; found -> settled, definitely
        not there -> sent again with the same key."""
        row = self.store.payout(self.payouts.TABLE, item["id"], sending=True)
        outcome = self.payouts.reconcile_one(row) if row is not None else "settled_meanwhile"
        with self.db.transaction() as cur:
            self.store.audit(cur, actor, "repair_stuck_work", payout_id=item["id"], order_id=item["order_id"],
                             detail=self._detail(item, "reconcile", outcome=outcome))
        return {"kind": item["kind"], "id": item["id"], "action": "reconcile", "outcome": outcome,
                "payout": payout_to_wire(self.store.payout(self.payouts.TABLE, item["id"]))}


class StuckWorkDependency(PaymentsDependency):
    def build(self, db, cfg):
        bind_chains(self.adapters, db)
        store = PaymentStore(db)
        reconcile_after = reconcile_after_seconds(cfg, self.adapters)
        return StuckWork(store, order_payouts(store, self.adapters, cfg),
                         after_seconds=float(cfg.get("STUCK_AFTER_SECONDS", 600)),
                         sending_after_seconds=reconcile_after + float(cfg.get("STUCK_SENDING_AFTER_SECONDS", 600)))
