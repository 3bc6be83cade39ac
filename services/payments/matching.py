"""Matching incoming payments to orders: what a new entry of an account's history does (domain.decide), the
payments that waited for an order we had not heard of yet, a payment orders refused, and an operator's assignment.
Each announces its outcome (payment_received / payment_unmatched) in the transaction that records it.
"""
from libs import errors
from libs.audit import actor_name
from libs.contracts import events
from services.payments import domain, metrics
from services.payments.schemas import payment_to_wire
from services.payments.store import PaymentStore


class Matching:
    def __init__(self, db, late_grace_seconds=0, store=None):
        self.db = db
        self.store = store or PaymentStore(db)
        self.late_grace_seconds = late_grace_seconds

    def _decide(self, payment, order, has_payment, operator=False):
        return domain.decide(payment, order, has_payment, self.late_grace_seconds, operator=operator)

    # -- new entries of an account's history --------------------------------------------------------------------
    def ingest(self, cur, account, entries):
        """Insert the incoming entries of one account; match and announce only those this transaction inserted,
        so an entry read twice (overlapping polls, two pollers) is credited once. `account` is the accounts row.
        Returns the new payments (wire form)."""
        incoming = {}
        for e in entries:
            if e.direction == "in":
                incoming.setdefault(e.external_id, e)
        if not incoming:
            return []
        known = self.store.known_external_ids(cur, account["id"], incoming)
        self.store.lock_references(cur, [domain.find_reference(e.reference) for e in incoming.values()
                                         if e.external_id not in known])
        created = []
        for e in incoming.values():
            if e.external_id in known:
                continue
            reference = domain.find_reference(e.reference)
            order = self.store.order(cur, reference=reference) if reference else None
            payment = {"system": account["system"], "account": account["account"], "amount": e.amount,
                       "currency": e.currency, "occurred_at": e.occurred_at}
            has_payment = order is not None and self.store.order_has_payment(cur, order["id"])
            decision = self._decide(payment, order, has_payment)
            payment_id = self.store.insert_payment(cur, account, e, reference, decision, order)
            if payment_id is None:
                continue  # a concurrent poller inserted it first: it announces, we do not
            created.append(self._announce(cur, payment_id, decision))
        return created

    def _announce(self, cur, payment_id, decision, assigned_by=None):
        wire = payment_to_wire(self.store.payment(cur, payment_id))
        if decision.status == "matched":
            self.store.event(cur, events.PAYMENT_RECEIVED, {
                "payment": wire, "order_id": wire["order_id"], "flag": decision.flag,
                "on_time": decision.on_time, "assigned_by": assigned_by}, aggregate_id=wire["order_id"])
        elif decision.status == "unmatched":
            self.store.event(cur, events.PAYMENT_UNMATCHED, {
                "payment": wire, "reason_code": decision.reason_code, "reason": decision.reason},
                aggregate_id=wire["candidate_order_id"])
        metrics.INGESTED.labels(decision.status if decision.status != "matched" else
                                "matched_" + (decision.flag or "exact")).inc()
        return wire

    # -- orders we hear of ------------------------------------------------------------------------------------
    def apply_new_orders(self, cur, orders):
        """A batch of order_created snapshots: store them, and rematch the payments that arrived before their
        orders. One query finds which references have such payments, so a batch where none waits (the usual
        case) costs one statement per order and no per-order lookups."""
        self.store.lock_references(cur, [order["reference"] for order in orders])
        for order in orders:
            self.store.apply_order(cur, order)
        waiting = self.store.waiting_references(cur, [order["reference"] for order in orders])
        for order in orders:
            if order["reference"] in waiting:
                self.rematch_for_order(cur, order["id"])

    def rematch_for_order(self, cur, order_id):
        """A payment that arrived before we heard of its order (its reference was unknown then) is matched now
        that the order is here: the customer paid faster than the order event travelled."""
        order = self.store.order(cur, order_id=order_id)
        rematched = []
        for p in self.store.waiting_payments(cur, order["reference"]):
            has_payment = self.store.order_has_payment(cur, order["id"], exclude_payment=p["id"])
            decision = self._decide(p, order, has_payment)
            if decision.status == "unmatched" and decision.reason_code == "unknown_reference":
                continue
            self.store.set_decision(cur, p["id"], order["id"], decision)
            rematched.append(self._announce(cur, p["id"], decision))
        return rematched

    def reject(self, cur, payment_id, order_id, reason):
        """Orders could not take a payment we matched (the order changed meanwhile): it goes to the operators'
        unmatched list, never lost."""
        if not self.store.unmatch_rejected(cur, payment_id, order_id, "orders refused it: %s" % reason):
            return None
        wire = payment_to_wire(self.store.payment(cur, payment_id))
        self.store.event(cur, events.PAYMENT_UNMATCHED, {"payment": wire, "reason_code": "rejected",
                                                           "reason": wire["reason"]}, aggregate_id=order_id)
        metrics.INGESTED.labels("rejected").inc()
        return wire

    # -- operators ---------------------------------------------------------------------------------------------
    def assign(self, payment_id, order_id, actor, note=None):
        """An operator credits an unmatched payment to an order (audited, also when refused)."""
        with self.db.transaction() as cur:
            payment = self.store.payment(cur, payment_id, lock=True)
            if payment is None:
                raise errors.NotFound("payment not found")
            if payment["status"] != "unmatched":
                self._audit_refused(cur, actor, payment, order_id, "payment is %s" % payment["status"])
                raise errors.Conflict("payment %s is %s, not unmatched" % (payment_id, payment["status"]),
                                      {"status": [payment["status"]]})
            order = self.store.order(cur, order_id=order_id)
            if order is None:
                self._audit_refused(cur, actor, payment, order_id, "unknown order")
                raise errors.NotFound("order %s is not known to payments" % order_id)
            has_payment = self.store.order_has_payment(cur, order_id)
            decision = self._decide(payment, order, has_payment, operator=True)
            if decision.status != "matched":
                self._audit_refused(cur, actor, payment, order_id, decision.reason)
                if decision.reason_code == "wrong_currency":
                    raise errors.ValidationFailed(decision.reason, {"order_id": [decision.reason]})
                raise errors.Conflict(decision.reason, {"order_id": [decision.reason]})
            self.store.assign(cur, payment_id, order_id, decision.flag, actor_name(actor))
            self.store.audit(cur, actor, "assign", payment_id=payment_id, order_id=order_id,
                             detail={"note": note, "flag": decision.flag, "previous_reason": payment["reason"]})
            return self._announce(cur, payment_id, decision, assigned_by=actor_name(actor))

    def _audit_refused(self, cur, actor, payment, order_id, reason):
        """A refused assignment is audited too: written and committed before the error is raised."""
        self.store.audit(cur, actor, "assign", payment_id=payment["id"], order_id=order_id, outcome="rejected",
                         detail={"reason": reason})
        cur.connection.commit()
