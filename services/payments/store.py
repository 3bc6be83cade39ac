"""Payments storage: the order copy, incoming payments and their matching, operator views and actions.

Every write that others must hear of writes its outbox event in the same transaction (P8). Functions that take
`cur` run inside the caller's transaction; the others open their own.
"""
import logging
from decimal import Decimal

from libs import errors, money, outbox
from libs.audit import actor_name, write_audit
from libs.contracts import events
from services.payments import domain, metrics
from services.payments.schemas import account_to_wire, payment_to_wire, payout_to_wire

log = logging.getLogger(__name__)

SOURCE = events.PAYMENTS

PAYMENT_SQL = ("SELECT p.*, a.system, a.account FROM payments p JOIN accounts a ON a.id = p.account_id")


class PaymentStore:
    def __init__(self, db, late_grace_seconds=0):
        self.db = db
        self.schema = db.schema
        self.late_grace_seconds = late_grace_seconds
        self._key_prefix = None

    def event(self, cur, event_type, data, aggregate_id=None):
        return outbox.write_event(cur, SOURCE, event_type, data, aggregate_id=aggregate_id, schema=self.schema)

    def key_prefix(self):
        if self._key_prefix is None:
            self._key_prefix = self.db.fetchone("SELECT key_prefix FROM installation")["key_prefix"]
        return self._key_prefix

    # -- accounts ------------------------------------------------------------------------------------------
    def sync_accounts(self, accounts):
        """Make the configured accounts exist (their poll state is kept); returns {(system, account): id}.

        Only changed rows are updated: an UPDATE whose WHERE does not match never waits for a poller's lock.
        Accounts no longer configured stay (with their history) but nobody polls them.
        """
        ids = {}
        with self.db.transaction() as cur:
            # Payout flags off first, then on: moving the payout role between two accounts of one currency
            # never violates "one payout account per currency" midway.
            for acc in sorted(accounts, key=lambda a: bool(a.get("payout", True))):
                payout = bool(acc.get("payout", True))
                cur.execute("INSERT INTO accounts (system, account, currency, payout) VALUES (%s, %s, %s, %s) "
                            "ON CONFLICT (system, account) DO NOTHING",
                            (acc["system"], acc["account"], acc["currency"], payout))
                cur.execute("UPDATE accounts SET currency = %s, payout = %s, updated_at = now() "
                            "WHERE system = %s AND account = %s AND (currency, payout) IS DISTINCT FROM (%s, %s)",
                            (acc["currency"], payout, acc["system"], acc["account"], acc["currency"], payout))
                cur.execute("SELECT id FROM accounts WHERE system = %s AND account = %s",
                            (acc["system"], acc["account"]))
                ids[(acc["system"], acc["account"])] = cur.fetchone()["id"]
        return ids

    def list_accounts(self, ids=None):
        sql = "SELECT *, now() AS db_now FROM accounts"
        params = ()
        if ids is not None:
            sql += " WHERE id = ANY(%s)"
            params = (list(ids),)
        rows = self.db.fetchall(sql + " ORDER BY currency, system, account", params)
        return [account_to_wire(r, now=r["db_now"]) for r in rows]

    # -- the order copy --------------------------------------------------------------------------------------
    def apply_order(self, cur, order):
        """Store the snapshot if it is newer than what we have; True if it was applied."""
        cur.execute(
            """INSERT INTO orders (id, version, reference, status, exchange_type, pay_system, pay_account,
                   currency_in, amount_in, currency_out, amount_out, rate_in, rate_out, fee, recipient, expires_at)
               VALUES (%(id)s, %(version)s, %(reference)s, %(status)s, %(exchange_type)s, %(pay_system)s,
                   %(pay_account)s, %(currency_in)s, %(amount_in)s, %(currency_out)s, %(amount_out)s, %(rate_in)s,
                   %(rate_out)s, %(fee)s, %(recipient)s, %(expires_at)s)
               ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, status = EXCLUDED.status,
                   amount_out = EXCLUDED.amount_out, recipient = EXCLUDED.recipient,
                   expires_at = EXCLUDED.expires_at, updated_at = now()
               WHERE orders.version < EXCLUDED.version
               RETURNING id""",
            dict(order, pay_system=order["pay_to"]["system"], pay_account=order["pay_to"]["account"],
                 fee=order.get("fee") or 0))
        return cur.fetchone() is not None

    def apply_new_orders(self, cur, orders):
        """A batch of order_created snapshots: store them, and rematch the payments that arrived before their
        orders. One query finds which references have such payments, so a batch where none waits (the usual
        case) costs one statement per order and no per-order lookups."""
        for order in orders:
            self.apply_order(cur, order)
        references = [order["reference"] for order in orders]
        cur.execute("SELECT DISTINCT match_reference FROM payments WHERE status = 'unmatched' "
                    "AND reason_code = 'unknown_reference' AND match_reference = ANY(%s)", (references,))
        waiting = {row["match_reference"] for row in cur.fetchall()}
        for order in orders:
            if order["reference"] in waiting:
                self.rematch_for_order(cur, order["id"])

    @staticmethod
    def _order(cur, order_id=None, reference=None, lock=False):
        if order_id is not None:
            cur.execute("SELECT * FROM orders WHERE id = %s" + (" FOR UPDATE" if lock else ""), (order_id,))
        else:
            cur.execute("SELECT * FROM orders WHERE reference = %s", (reference,))
        return cur.fetchone()

    @staticmethod
    def _order_has_payment(cur, order_id, exclude_payment=None):
        cur.execute("SELECT 1 FROM payments WHERE order_id = %s AND status = 'matched' AND id <> %s LIMIT 1",
                    (order_id, exclude_payment or 0))
        return cur.fetchone() is not None

    # -- ingestion -------------------------------------------------------------------------------------------
    def ingest(self, cur, account, entries):
        """Insert the incoming entries of one account; match and announce only those this transaction inserted
        (P1). `account` is the accounts row. Returns the new payments (wire form)."""
        incoming = {}
        for e in entries:
            if e.direction == "in":
                incoming.setdefault(e.external_id, e)
        if not incoming:
            return []
        cur.execute("SELECT external_id FROM payments WHERE account_id = %s AND external_id = ANY(%s)",
                    (account["id"], list(incoming)))
        known = {r["external_id"] for r in cur.fetchall()}
        created = []
        for e in incoming.values():
            if e.external_id in known:
                continue
            reference = domain.find_reference(e.reference)
            order = self._order(cur, reference=reference) if reference else None
            payment = {"system": account["system"], "account": account["account"], "amount": e.amount,
                       "currency": e.currency, "occurred_at": e.occurred_at}
            has_payment = order is not None and self._order_has_payment(cur, order["id"])
            decision = domain.decide(payment, order, has_payment, self.late_grace_seconds)
            cur.execute(
                """INSERT INTO payments (account_id, external_id, amount, currency, reference, match_reference,
                       counterparty, occurred_at, provider_cursor, status, order_id, candidate_order_id, flag,
                       reason_code, reason)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (account_id, external_id) DO NOTHING RETURNING id""",
                (account["id"], e.external_id, e.amount, e.currency, (e.reference or "")[:500], reference,
                 e.counterparty, e.occurred_at, e.cursor, decision.status,
                 order["id"] if order and decision.status != "unmatched" else None,
                 order["id"] if order and decision.status == "unmatched" else None,
                 decision.flag, decision.reason_code, decision.reason))
            row = cur.fetchone()
            if row is None:
                continue  # a concurrent poller inserted it first: it announces, we do not
            created.append(self._announce(cur, row["id"], decision))
        return created

    def _payment(self, cur, payment_id, lock=False):
        cur.execute(PAYMENT_SQL + " WHERE p.id = %s" + (" FOR UPDATE OF p" if lock else ""), (payment_id,))
        return cur.fetchone()

    def _announce(self, cur, payment_id, decision, assigned_by=None):
        wire = payment_to_wire(self._payment(cur, payment_id))
        if decision.status == "matched":
            self.event(cur, events.PAYMENT_RECEIVED, {
                "payment": wire, "order_id": wire["order_id"], "flag": decision.flag,
                "on_time": decision.on_time, "assigned_by": assigned_by}, aggregate_id=wire["order_id"])
        elif decision.status == "unmatched":
            self.event(cur, events.PAYMENT_UNMATCHED, {
                "payment": wire, "reason_code": decision.reason_code, "reason": decision.reason},
                aggregate_id=wire["candidate_order_id"])
        metrics.INGESTED.labels(decision.status if decision.status != "matched" else
                                "matched_" + (decision.flag or "exact")).inc()
        return wire

    def rematch_for_order(self, cur, order_id):
        """A payment that arrived before we heard of its order (its reference was unknown then) is matched now
        that the order is here: the customer paid faster than the order event travelled."""
        order = self._order(cur, order_id=order_id)
        cur.execute(PAYMENT_SQL + " WHERE p.status = 'unmatched' AND p.reason_code = 'unknown_reference' "
                    "AND p.match_reference = %s ORDER BY p.id FOR UPDATE OF p", (order["reference"],))
        rematched = []
        for p in cur.fetchall():
            has_payment = self._order_has_payment(cur, order["id"], exclude_payment=p["id"])
            decision = domain.decide(p, order, has_payment, self.late_grace_seconds)
            if decision.status == "unmatched" and decision.reason_code == "unknown_reference":
                continue
            cur.execute("UPDATE payments SET status = %s, order_id = %s, candidate_order_id = %s, flag = %s, "
                        "reason_code = %s, reason = %s, updated_at = now() WHERE id = %s",
                        (decision.status, order["id"] if decision.status != "unmatched" else None,
                         order["id"] if decision.status == "unmatched" else None, decision.flag,
                         decision.reason_code, decision.reason, p["id"]))
            rematched.append(self._announce(cur, p["id"], decision))
        return rematched

    def reject(self, cur, payment_id, order_id, reason):
        """Orders could not take a payment we matched (the order changed meanwhile): it goes to the operators'
        unmatched list, never lost (P3)."""
        cur.execute("UPDATE payments SET status = 'unmatched', order_id = NULL, candidate_order_id = %s, "
                    "flag = NULL, reason_code = 'rejected', reason = %s, updated_at = now() "
                    "WHERE id = %s AND status = 'matched' AND order_id = %s RETURNING id",
                    (order_id, ("orders refused it: %s" % reason)[:500], payment_id, order_id))
        if cur.fetchone() is None:
            return None
        wire = payment_to_wire(self._payment(cur, payment_id))
        self.event(cur, events.PAYMENT_UNMATCHED, {"payment": wire, "reason_code": "rejected",
                                                     "reason": wire["reason"]}, aggregate_id=order_id)
        metrics.INGESTED.labels("rejected").inc()
        return wire

    # -- operators -------------------------------------------------------------------------------------------
    def assign(self, payment_id, order_id, actor, note=None):
        """An operator credits an unmatched payment to an order (audited, also when refused)."""
        with self.db.transaction() as cur:
            payment = self._payment(cur, payment_id, lock=True)
            if payment is None:
                raise errors.NotFound("payment not found")
            if payment["status"] != "unmatched":
                self._audit_refused(cur, actor, "assign", payment, order_id, "payment is %s" % payment["status"])
                raise errors.Conflict("payment %s is %s, not unmatched" % (payment_id, payment["status"]),
                                      {"status": [payment["status"]]})
            order = self._order(cur, order_id=order_id)
            if order is None:
                self._audit_refused(cur, actor, "assign", payment, order_id, "unknown order")
                raise errors.NotFound("order %s is not known to payments" % order_id)
            has_payment = self._order_has_payment(cur, order_id)
            decision = domain.decide(payment, order, has_payment, self.late_grace_seconds, operator=True)
            if decision.status != "matched":
                self._audit_refused(cur, actor, "assign", payment, order_id, decision.reason)
                if decision.reason_code == "wrong_currency":
                    raise errors.ValidationFailed(decision.reason, {"order_id": [decision.reason]})
                raise errors.Conflict(decision.reason, {"order_id": [decision.reason]})
            cur.execute("UPDATE payments SET status = 'matched', order_id = %s, candidate_order_id = NULL, "
                        "flag = %s, reason_code = NULL, reason = NULL, assigned_by = %s, updated_at = now() "
                        "WHERE id = %s AND status = 'unmatched'",
                        (order_id, decision.flag, actor_name(actor), payment_id))
            self._audit(cur, actor, "assign", payment_id=payment_id, order_id=order_id,
                        detail={"note": note, "flag": decision.flag, "previous_reason": payment["reason"]})
            return self._announce(cur, payment_id, decision, assigned_by=actor_name(actor))

    def list_unmatched(self, limit=50, cursor=None):
        limit = max(1, min(int(limit or 50), 500))
        params = []
        sql = PAYMENT_SQL + " WHERE p.status = 'unmatched'"
        if cursor:
            sql += " AND p.id < %s"
            params.append(int(cursor))
        rows = self.db.fetchall(sql + " ORDER BY p.id DESC LIMIT %s", params + [limit + 1])
        items = [payment_to_wire(r) for r in rows[:limit]]
        return {"items": items, "next_cursor": str(rows[limit - 1]["id"]) if len(rows) > limit else None}

    def order_payments(self, order_id):
        payments = self.db.fetchall(PAYMENT_SQL + " WHERE p.order_id = %s OR p.candidate_order_id = %s "
                                    "ORDER BY p.id", (order_id, order_id))
        payouts = self.db.fetchall("SELECT * FROM payouts WHERE order_id = %s ORDER BY attempt", (order_id,))
        received = sum((p["amount"] for p in payments if p["status"] == "matched" and p["order_id"] == order_id),
                       Decimal(0))
        return {"order_id": order_id, "received": money.to_str(received),
                "payments": [payment_to_wire(p) for p in payments],
                "payouts": [payout_to_wire(p) for p in payouts]}

    def list_payouts(self, status=None, limit=50, cursor=None, order_id=None):
        limit = max(1, min(int(limit or 50), 500))
        where, params = [], []
        if status:
            where.append("status = %s")
            params.append(status)
        if order_id:
            where.append("order_id = %s")
            params.append(int(order_id))
        if cursor:
            where.append("id < %s")
            params.append(int(cursor))
        sql = "SELECT * FROM payouts" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.db.fetchall(sql + " ORDER BY id DESC LIMIT %s", params + [limit + 1])
        return {"items": [payout_to_wire(r) for r in rows[:limit]],
                "next_cursor": str(rows[limit - 1]["id"]) if len(rows) > limit else None}

    def refresh_gauges(self):
        row = self.db.fetchone(
            "SELECT (SELECT count(*) FROM payments WHERE status = 'unmatched') AS unmatched, "
            "(SELECT count(*) FROM payouts WHERE status = 'sending') AS sending, "
            "(SELECT extract(epoch FROM now() - min(created_at)) FROM payouts WHERE status = 'sending') AS oldest")
        metrics.UNMATCHED.set(row["unmatched"])
        metrics.SENDING.set(row["sending"])
        metrics.SENDING_OLDEST.set(float(row["oldest"] or 0))

    # -- audit -----------------------------------------------------------------------------------------------
    def _audit(self, cur, actor, action, payment_id=None, payout_id=None, order_id=None, outcome="ok",
               detail=None):
        write_audit(cur, actor, action, outcome, detail, payment_id=payment_id, payout_id=payout_id,
                    order_id=order_id)

    def _audit_refused(self, cur, actor, action, payment, order_id, reason):
        """A refused operator action is audited too: written and committed before the error is raised."""
        self._audit(cur, actor, action, payment_id=payment["id"], order_id=order_id, outcome="rejected",
                    detail={"reason": reason})
        cur.connection.commit()

    def audit_entries(self, payment_id=None, payout_id=None):
        where, params = [], []
        if payment_id is not None:
            where.append("payment_id = %s")
            params.append(payment_id)
        if payout_id is not None:
            where.append("payout_id = %s")
            params.append(payout_id)
        rows = self.db.fetchall("SELECT * FROM audit_log" + (" WHERE " + " OR ".join(where) if where else "") +
                                " ORDER BY id", params)
        return [dict(r, created_at=r["created_at"].isoformat()) for r in rows]
