"""All SQL of the payments service: the configured accounts and their poll state, the order copy, incoming
payments, payouts (of orders and of partner withdrawals), the operators' views and the audit trail.

Every write that others must hear of writes its outbox event in the same transaction (libs/outbox.py). Methods
that take `cur` run inside the caller's transaction; the others open their own. What to do with a payment or a
payout is decided elsewhere (domain.py, matching.py, payouts.py): this module only reads and writes rows.
"""
import json
from decimal import Decimal

from libs import money, outbox
from libs.audit import write_audit
from libs.contracts import events
from services.payments.schemas import account_to_wire, payment_to_wire, payout_to_wire

SOURCE = events.PAYMENTS

PAYMENT_SQL = ("SELECT p.*, a.system, a.account FROM payments p JOIN accounts a ON a.id = p.account_id")

# The two payout tables share the columns the sending discipline touches (payouts.py).
PAYOUT_TABLES = ("payouts", "withdrawal_payouts")


def _table(table):
    if table not in PAYOUT_TABLES:
        raise ValueError("not a payout table: %r" % table)
    return table


class PaymentStore:
    def __init__(self, db):
        self.db = db
        self.schema = db.schema
        self._key_prefix = None

    def event(self, cur, event_type, data, aggregate_id=None):
        return outbox.write_event(cur, SOURCE, event_type, data, aggregate_id=aggregate_id, schema=self.schema)

    def key_prefix(self):
        """This installation's prefix of payout keys (fixed at migration; read once)."""
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

    def due_accounts(self, ids, force, fresh_seconds):
        """The accounts among `ids` not polled (by any instance) in the last `fresh_seconds`, least recently
        polled first; all of them when `force`."""
        return self.db.fetchall(
            "SELECT id, account FROM accounts WHERE id = ANY(%s) AND (%s OR polled_at IS NULL "
            "OR polled_at <= now() - %s * interval '1 second') ORDER BY polled_at NULLS FIRST",
            (list(ids), force, fresh_seconds))

    def last_polled_ok(self, ids):
        return self.db.fetchall("SELECT account, polled_ok_at FROM accounts WHERE id = ANY(%s)", (list(ids),))

    @staticmethod
    def try_poll_lock(cur, key):
        """Take the session advisory lock of `key` if free (never waits); True if taken."""
        cur.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0)) AS got", (key,))
        return cur.fetchone()["got"]

    @staticmethod
    def poll_unlock(cur, key):
        cur.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))

    @staticmethod
    def account_to_poll(cur, account_id, fresh_seconds):
        """The accounts row, with `fresh`: polled by someone in the last `fresh_seconds`."""
        cur.execute("SELECT *, (polled_at > now() - %s * interval '1 second') AS fresh FROM accounts "
                    "WHERE id = %s", (fresh_seconds, account_id))
        return cur.fetchone()

    @staticmethod
    def record_poll_error(cur, account_id, error):
        cur.execute("UPDATE accounts SET polled_at = now(), poll_error = %s, updated_at = now() "
                    "WHERE id = %s", (error[:500], account_id))

    @staticmethod
    def record_poll(cur, account_id, cursor, cursor_log, ingested):
        cur.execute("UPDATE accounts SET cursor = %s, cursor_log = %s, polled_at = now(), "
                    "polled_ok_at = now(), poll_error = NULL, ingested = ingested + %s, updated_at = now() "
                    "WHERE id = %s", (cursor, json.dumps(cursor_log), ingested, account_id))

    @staticmethod
    def record_balance(cur, account_id, balance):
        """Store the balance read now; returns the database's time of it."""
        cur.execute("UPDATE accounts SET balance = %s, balance_at = now() WHERE id = %s "
                    "RETURNING balance_at", (balance, account_id))
        return cur.fetchone()["balance_at"]

    @staticmethod
    def payout_account(cur, currency):
        cur.execute("SELECT * FROM accounts WHERE currency = %s AND payout", (currency,))
        return cur.fetchone()

    # -- the order copy --------------------------------------------------------------------------------------
    @staticmethod
    def apply_order(cur, order):
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

    @staticmethod
    def order(cur, order_id=None, reference=None, lock=False):
        if order_id is not None:
            cur.execute("SELECT * FROM orders WHERE id = %s" + (" FOR UPDATE" if lock else ""), (order_id,))
        else:
            cur.execute("SELECT * FROM orders WHERE reference = %s", (reference,))
        return cur.fetchone()

    @staticmethod
    def order_has_payment(cur, order_id, exclude_payment=None):
        """The order already has a payment: matched to it, or noted on it (a manual exchange's)."""
        cur.execute("SELECT 1 FROM payments WHERE order_id = %s AND status IN ('matched', 'manual') AND id <> %s "
                    "LIMIT 1", (order_id, exclude_payment or 0))
        return cur.fetchone() is not None

    @staticmethod
    def received(cur, order_id):
        """The sum of the payments matched to the order."""
        cur.execute("SELECT coalesce(sum(amount), 0) AS received FROM payments WHERE order_id = %s "
                    "AND status = 'matched'", (order_id,))
        return cur.fetchone()["received"]

    # -- incoming payments -----------------------------------------------------------------------------------
    @staticmethod
    def known_external_ids(cur, account_id, external_ids):
        cur.execute("SELECT external_id FROM payments WHERE account_id = %s AND external_id = ANY(%s)",
                    (account_id, list(external_ids)))
        return {r["external_id"] for r in cur.fetchall()}

    @staticmethod
    def insert_payment(cur, account, entry, reference, decision, order):
        """Insert one entry of the account's history as a payment with its decision; returns its id, or None
        when a concurrent poller inserted it first."""
        cur.execute(
            """INSERT INTO payments (account_id, external_id, amount, currency, reference, match_reference,
                   counterparty, occurred_at, provider_cursor, status, order_id, candidate_order_id, flag,
                   reason_code, reason)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (account_id, external_id) DO NOTHING RETURNING id""",
            (account["id"], entry.external_id, entry.amount, entry.currency, (entry.reference or "")[:500],
             reference, entry.counterparty, entry.occurred_at, entry.cursor, decision.status,
             order["id"] if order and decision.status != "unmatched" else None,
             order["id"] if order and decision.status == "unmatched" else None,
             decision.flag, decision.reason_code, decision.reason))
        row = cur.fetchone()
        return row["id"] if row else None

    @staticmethod
    def payment(cur, payment_id, lock=False):
        cur.execute(PAYMENT_SQL + " WHERE p.id = %s" + (" FOR UPDATE OF p" if lock else ""), (payment_id,))
        return cur.fetchone()

    @staticmethod
    def lock_references(cur, references):
        """Serialise the two sides that meet on a reference: the poller looking for the order of a new payment and
        an order's copy looking for payments that came first. Without it each could miss the other's uncommitted
        row and the payment would wait, unmatched, until the order expired. Transaction-scoped, in one order."""
        references = sorted({r for r in references if r})
        if references:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended('payments.reference:' || r, 0)) "
                        "FROM unnest(%s::text[]) AS r ORDER BY r", (references,))

    @staticmethod
    def waiting_references(cur, references):
        """Which of `references` have payments that arrived before their order (unknown reference then)."""
        cur.execute("SELECT DISTINCT match_reference FROM payments WHERE status = 'unmatched' "
                    "AND reason_code = 'unknown_reference' AND match_reference = ANY(%s)", (references,))
        return {row["match_reference"] for row in cur.fetchall()}

    @staticmethod
    def waiting_payments(cur, reference):
        """The payments waiting for the order of `reference`, locked."""
        cur.execute(PAYMENT_SQL + " WHERE p.status = 'unmatched' AND p.reason_code = 'unknown_reference' "
                    "AND p.match_reference = %s ORDER BY p.id FOR UPDATE OF p", (reference,))
        return cur.fetchall()

    @staticmethod
    def set_decision(cur, payment_id, order_id, decision):
        cur.execute("UPDATE payments SET status = %s, order_id = %s, candidate_order_id = %s, flag = %s, "
                    "reason_code = %s, reason = %s, updated_at = now() WHERE id = %s",
                    (decision.status, order_id if decision.status != "unmatched" else None,
                     order_id if decision.status == "unmatched" else None, decision.flag,
                     decision.reason_code, decision.reason, payment_id))

    @staticmethod
    def unmatch_rejected(cur, payment_id, order_id, reason):
        """Back to unmatched a payment orders refused; False if it is no longer matched to that order."""
        cur.execute("UPDATE payments SET status = 'unmatched', order_id = NULL, candidate_order_id = %s, "
                    "flag = NULL, reason_code = 'rejected', reason = %s, updated_at = now() "
                    "WHERE id = %s AND status = 'matched' AND order_id = %s RETURNING id",
                    (order_id, reason[:500], payment_id, order_id))
        return cur.fetchone() is not None

    @staticmethod
    def assign(cur, payment_id, order_id, flag, assigned_by):
        cur.execute("UPDATE payments SET status = 'matched', order_id = %s, candidate_order_id = NULL, "
                    "flag = %s, reason_code = NULL, reason = NULL, assigned_by = %s, updated_at = now() "
                    "WHERE id = %s AND status = 'unmatched'",
                    (order_id, flag, assigned_by, payment_id))

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

    # -- payouts (table: payouts or withdrawal_payouts) ---------------------------------------------------------
    @staticmethod
    def latest_payout(cur, order_id):
        """The order's last payout attempt, locked (None before the first)."""
        cur.execute("SELECT * FROM payouts WHERE order_id = %s ORDER BY attempt DESC LIMIT 1 FOR UPDATE",
                    (order_id,))
        return cur.fetchone()

    @staticmethod
    def insert_payout(cur, order, attempt, key, account, received, error):
        """The order's payout attempt: `sending` (one send counted), or `failed` with `error` when refused
        before any call. Returns the row."""
        cur.execute(
            """INSERT INTO payouts (order_id, attempt, idempotency_key, order_version, system, from_account,
                   to_account, amount, currency, reference, received, status, error, sends, failed_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)
               RETURNING *""",
            (order["id"], attempt, key, order["version"], account["system"] if account else "-",
             account["account"] if account else "-", order["recipient"], order["amount_out"],
             order["currency_out"], order["reference"], received, "failed" if error else "sending", error,
             0 if error else 1, bool(error)))
        return cur.fetchone()

    @staticmethod
    def insert_withdrawal_payout(cur, request, key, account, error):
        """The withdrawal's payout under `key`, like insert_payout; None if the withdrawal or the key already has
        one. The transfer's reference is the key orders gave the request (what the partner recognises)."""
        cur.execute(
            """INSERT INTO withdrawal_payouts (withdrawal_id, partner_id, idempotency_key, system, from_account,
                   to_account, amount, currency, reference, status, error, sends, failed_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)
               ON CONFLICT DO NOTHING RETURNING *""",
            (request["withdrawal_id"], request.get("partner_id"), key,
             account["system"] if account else "-", account["account"] if account else "-",
             request["to_account"], request["amount"], request["currency"], request["idempotency_key"],
             "failed" if error else "sending", error, 0 if error else 1, bool(error)))
        return cur.fetchone()

    @staticmethod
    def withdrawal_payout(cur, withdrawal_id):
        cur.execute("SELECT * FROM withdrawal_payouts WHERE withdrawal_id = %s", (withdrawal_id,))
        return cur.fetchone()

    def payout(self, table, payout_id, sending=False):
        """A payout row (only if still `sending` when asked), or None."""
        return self.db.fetchone("SELECT * FROM %s WHERE id = %%s%s" % (
            _table(table), " AND status = 'sending'" if sending else ""), (payout_id,))

    @staticmethod
    def finish_payout(cur, table, payout_id, status, provider_id=None, error=None, resolved_by=None):
        """`sending` -> `status` (sent or failed); the row, or None if it was no longer sending."""
        cur.execute(("UPDATE {} SET status = %s, provider_id = coalesce(%s, provider_id), error = %s, "
                     "sent_at = CASE WHEN %s = 'sent' THEN now() END, "
                     "failed_at = CASE WHEN %s = 'failed' THEN now() END, resolved_by = %s, updated_at = now() "
                     "WHERE id = %s AND status = 'sending' RETURNING *").format(_table(table)),
                    (status, provider_id, error, status, status, resolved_by, payout_id))
        return cur.fetchone()

    @staticmethod
    def claim_resolve(cur, table, payout_id, attempted_at, older_than_seconds, status, error, resolved_by):
        """An operator's `sent` / `failed` for a payout in doubt, as a compare-and-set: only while it is still
        `sending`, its last call is the one the caller saw (`attempted_at`: a resend since moves it) and that
        call is older than `older_than_seconds` (it cannot be in flight any more). The row, or None."""
        cur.execute(("UPDATE {} SET status = %s, error = %s, sent_at = CASE WHEN %s = 'sent' THEN now() END, "
                     "failed_at = CASE WHEN %s = 'failed' THEN now() END, resolved_by = %s, updated_at = now() "
                     "WHERE id = %s AND status = 'sending' AND attempted_at = %s "
                     "AND attempted_at < now() - %s * interval '1 second' RETURNING *").format(_table(table)),
                    (status, error, status, status, resolved_by, payout_id, attempted_at, older_than_seconds))
        return cur.fetchone()

    @staticmethod
    def record_late_success(cur, table, payout_id, provider_id):
        """A `failed` payout the provider reports sent after all: flag it (once) and keep the provider's id.
        The row, or None if it is not failed or already flagged."""
        cur.execute(("UPDATE {} SET late_success = true, late_success_at = now(), "
                     "provider_id = coalesce(%s, provider_id), updated_at = now() "
                     "WHERE id = %s AND status = 'failed' AND NOT late_success RETURNING *").format(_table(table)),
                    (provider_id, payout_id))
        return cur.fetchone()

    def note_payout(self, table, payout_id, error):
        """Record why a `sending` payout is still in doubt; the row, or None if it is no longer sending."""
        with self.db.transaction() as cur:
            cur.execute("UPDATE %s SET error = %%s, updated_at = now() WHERE id = %%s AND status = 'sending' "
                        "RETURNING *" % _table(table), (error[:1000], payout_id))
            return cur.fetchone()

    def payouts_in_doubt(self, table, older_than_seconds, limit):
        """`sending` payouts whose last call is older than `older_than_seconds`, oldest first."""
        return self.db.fetchall(
            ("SELECT * FROM {} WHERE status = 'sending' AND attempted_at < now() - %s * interval '1 second' "
             "ORDER BY attempted_at LIMIT %s").format(_table(table)), (older_than_seconds, limit))

    def count_check(self, table, payout_id, error=None):
        """One more lookup of the payout; `error` recorded when the lookup itself failed."""
        if error is None:
            self.db.fetchone("UPDATE %s SET checks = checks + 1 WHERE id = %%s RETURNING id" % _table(table),
                             (payout_id,))
        else:
            self.db.fetchone("UPDATE %s SET checks = checks + 1, error = %%s, updated_at = now() "
                             "WHERE id = %%s RETURNING id" % _table(table), (error[:1000], payout_id))

    def claim_resend(self, table, payout_id, older_than_seconds):
        """Claim a payout in doubt for one more send (a compare-and-set on attempted_at, so two reconcilers
        never send at the same moment); the row, or None if someone else claimed it or it was settled."""
        return self.db.fetchone(
            ("UPDATE {} SET attempted_at = now(), sends = sends + 1, updated_at = now() WHERE id = %s "
             "AND status = 'sending' AND attempted_at < now() - %s * interval '1 second' RETURNING *"
             ).format(_table(table)),
            (payout_id, older_than_seconds))

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

    def gauges(self):
        """Unmatched payments, unresolved payouts and the age in seconds of the oldest of those."""
        return self.db.fetchone(
            "SELECT (SELECT count(*) FROM payments WHERE status = 'unmatched') AS unmatched, "
            "(SELECT count(*) FROM payouts WHERE status = 'sending') AS sending, "
            "(SELECT extract(epoch FROM now() - min(created_at)) FROM payouts WHERE status = 'sending') AS oldest")

    # -- stuck work (docs/architecture.md, "Stuck work") -------------------------------------------------------
    # The database narrows the candidates by age; domain.stuck_payments_work decides what is stuck.
    def stuck_candidates(self, after_seconds, sending_after_seconds, settled_statuses, limit=500):
        """(order copies in payout with their latest payout attempt, matched payments whose order is not in
        `settled_statuses`, sending payouts), each row with `age_seconds` by the database's clock."""
        orders = self.db.fetchall(
            "SELECT o.id, o.version, extract(epoch FROM now() - o.updated_at)::float8 AS age_seconds, "
            "       p.status AS payout_status, p.order_version AS payout_order_version "
            "  FROM orders o LEFT JOIN LATERAL (SELECT status, order_version FROM payouts "
            "       WHERE order_id = o.id ORDER BY attempt DESC LIMIT 1) p ON true "
            " WHERE o.status = 'payout' AND o.updated_at < now() - %s * interval '1 second' "
            " ORDER BY o.updated_at LIMIT %s", (after_seconds, limit))
        payments = self.db.fetchall(
            "SELECT p.id, p.order_id, p.amount, p.currency, o.status AS order_status, "
            "       extract(epoch FROM now() - greatest(p.updated_at, o.updated_at))::float8 AS age_seconds "
            "  FROM payments p JOIN orders o ON o.id = p.order_id "
            " WHERE p.status = 'matched' AND o.status <> ALL(%s) "
            "   AND greatest(p.updated_at, o.updated_at) < now() - %s * interval '1 second' "
            " ORDER BY p.id LIMIT %s", (list(settled_statuses), after_seconds, limit))
        sending = self.db.fetchall(
            "SELECT id, order_id, sends, checks, error, "
            "       extract(epoch FROM now() - created_at)::float8 AS age_seconds "
            "  FROM payouts WHERE status = 'sending' AND created_at < now() - %s * interval '1 second' "
            " ORDER BY created_at LIMIT %s", (sending_after_seconds, limit))
        return orders, payments, sending

    @staticmethod
    def remember_stuck(cur, kinds, keys):
        """Keep the alert memory of `kinds` equal to `keys` [(kind, id)] (items no longer stuck are forgotten, so
        a later episode is announced again); returns the keys not remembered before, i.e. to announce now."""
        cur.execute("DELETE FROM stuck_alerts WHERE kind = ANY(%s) AND (kind, item_id) NOT IN "
                    "(SELECT * FROM unnest(%s::text[], %s::bigint[]))",
                    (list(kinds), [k for k, _ in keys], [i for _, i in keys]))
        if not keys:
            return set()
        cur.execute("INSERT INTO stuck_alerts (kind, item_id) SELECT * FROM unnest(%s::text[], %s::bigint[]) "
                    "ON CONFLICT DO NOTHING RETURNING kind, item_id",
                    ([k for k, _ in keys], [i for _, i in keys]))
        return {(row["kind"], row["item_id"]) for row in cur.fetchall()}

    @staticmethod
    def unmatch_stuck(cur, payment_id, order_id, reason):
        """A matched payment of an order that is not paid goes to the unmatched list (reason code `stuck`), the
        order kept as the candidate; False if it is no longer matched to that order."""
        cur.execute("UPDATE payments SET status = 'unmatched', order_id = NULL, candidate_order_id = %s, "
                    "flag = NULL, reason_code = 'stuck', reason = %s, updated_at = now() "
                    "WHERE id = %s AND status = 'matched' AND order_id = %s RETURNING id",
                    (order_id, reason[:500], payment_id, order_id))
        return cur.fetchone() is not None

    # -- audit -----------------------------------------------------------------------------------------------
    @staticmethod
    def audit(cur, actor, action, payment_id=None, payout_id=None, order_id=None, outcome="ok", detail=None):
        # a payout resolved by hand also alerts every admin (libs/contracts/security.py)
        write_audit(cur, actor, action, outcome, detail, alert_source=events.PAYMENTS, payment_id=payment_id,
                    payout_id=payout_id, order_id=order_id)


class ChainStore:
    """SQL of the chain rails (docs/chains.md): deposit addresses, the followed blocks, deposits and their depth,
    signed payout transactions and EVM nonces. Methods taking `cur` run in the caller's transaction."""

    def __init__(self, db):
        self.db = db

    # -- deposit addresses --------------------------------------------------------------------------------------
    def deposit_address(self, order_id):
        return self.db.fetchone("SELECT * FROM chain_addresses WHERE order_id = %s", (order_id,))

    def insert_deposit_address(self, order_id, system, address, reference, derivation=None):
        """The order's address; the one stored first wins (two callers may race)."""
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO chain_addresses (order_id, system, address, reference, derivation) "
                        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (order_id) DO NOTHING",
                        (order_id, system, address, reference, derivation))
            cur.execute("SELECT * FROM chain_addresses WHERE order_id = %s", (order_id,))
            return cur.fetchone()

    @staticmethod
    def addresses(cur, system, addresses):
        """{address: row} of the given addresses that are deposit addresses of `system`."""
        cur.execute("SELECT * FROM chain_addresses WHERE system = %s AND address = ANY(%s)",
                    (system, list(addresses)))
        return {r["address"]: r for r in cur.fetchall()}

    @staticmethod
    def all_addresses(cur, system):
        cur.execute("SELECT * FROM chain_addresses WHERE system = %s", (system,))
        return {r["address"]: r for r in cur.fetchall()}

    # -- followed blocks ------------------------------------------------------------------------------------------
    @staticmethod
    def tip(cur, system):
        cur.execute("SELECT height, hash FROM chain_blocks WHERE system = %s ORDER BY height DESC LIMIT 1",
                    (system,))
        return cur.fetchone()

    @staticmethod
    def block_hash(cur, system, height):
        cur.execute("SELECT hash FROM chain_blocks WHERE system = %s AND height = %s", (system, height))
        row = cur.fetchone()
        return row["hash"] if row else None

    @staticmethod
    def record_block(cur, system, height, block_hash, keep=500):
        cur.execute("INSERT INTO chain_blocks (system, height, hash) VALUES (%s, %s, %s) "
                    "ON CONFLICT (system, height) DO UPDATE SET hash = EXCLUDED.hash", (system, height, block_hash))
        cur.execute("DELETE FROM chain_blocks WHERE system = %s AND height < %s", (system, height - keep))

    @staticmethod
    def roll_back(cur, system, fork_height):
        """Forget the blocks above the fork; deposits in them lose their block (read again by the rescan).
        Returns the deposits that lost their block."""
        cur.execute("DELETE FROM chain_blocks WHERE system = %s AND height > %s", (system, fork_height))
        cur.execute("UPDATE chain_deposits SET block_height = NULL, block_hash = NULL, confirmations = 0, "
                    "updated_at = now() WHERE system = %s AND block_height > %s RETURNING *", (system, fork_height))
        return cur.fetchall()

    # -- deposits ---------------------------------------------------------------------------------------------------
    @staticmethod
    def upsert_deposit(cur, system, txid, index, address_row, amount, currency, height, block_hash, mined_at,
                       required):
        """A transfer to a deposit address found in block `height`: new, or back in a block after a reorg
        (a `removed` deposit found again is confirming again; a `reversed` one stays reversed for the operator)."""
        cur.execute(
            """INSERT INTO chain_deposits (system, txid, output_index, address, order_id, reference, amount, currency,
                   block_height, block_hash, mined_at, required)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (system, txid, output_index) DO UPDATE SET block_height = EXCLUDED.block_height,
                   block_hash = EXCLUDED.block_hash, mined_at = EXCLUDED.mined_at, updated_at = now(),
                   status = CASE WHEN chain_deposits.status = 'removed' THEN 'confirming'
                                 ELSE chain_deposits.status END
               RETURNING *""",
            (system, txid, index, address_row["address"], address_row["order_id"], address_row["reference"],
             amount, currency, height, block_hash, mined_at, required))
        return cur.fetchone()

    @staticmethod
    def set_confirmations(cur, system, tip_height):
        cur.execute("UPDATE chain_deposits SET confirmations = %s - block_height + 1 "
                    "WHERE system = %s AND block_height IS NOT NULL AND status IN ('confirming', 'credited') "
                    "AND confirmations <> %s - block_height + 1", (tip_height, system, tip_height))

    @staticmethod
    def deposits_at_depth(cur, system):
        cur.execute("SELECT * FROM chain_deposits WHERE system = %s AND status = 'confirming' "
                    "AND block_height IS NOT NULL AND confirmations >= required ORDER BY id FOR UPDATE",
                    (system,))
        return cur.fetchall()

    @staticmethod
    def mark_credited(cur, deposit_id, payment_id):
        cur.execute("UPDATE chain_deposits SET status = 'credited', payment_id = %s, credited_at = now(), "
                    "updated_at = now() WHERE id = %s", (payment_id, deposit_id))

    @staticmethod
    def orphaned_deposits(cur, system):
        """Deposits that lost their block and were not found again by the rescan."""
        cur.execute("SELECT * FROM chain_deposits WHERE system = %s AND block_height IS NULL "
                    "AND status IN ('confirming', 'credited') FOR UPDATE", (system,))
        return cur.fetchall()

    @staticmethod
    def set_deposit_status(cur, deposit_id, status):
        cur.execute("UPDATE chain_deposits SET status = %s, updated_at = now() WHERE id = %s", (status, deposit_id))

    def order_deposits(self, order_id):
        return self.db.fetchall("SELECT * FROM chain_deposits WHERE order_id = %s ORDER BY id", (order_id,))

    # -- signed payout transactions ----------------------------------------------------------------------------
    def txs_for_key(self, key):
        return self.db.fetchall("SELECT * FROM chain_txs WHERE idempotency_key = %s ORDER BY id", (key,))

    @staticmethod
    def insert_tx(cur, key, system, txid, raw, to_address, amount, currency, fee, nonce=None, replaces=None):
        """Commit a signed transaction before it is broadcast. None when the key already has its first one
        (another process signed it first: that one is used, this one never leaves the process)."""
        cur.execute(
            """INSERT INTO chain_txs (idempotency_key, system, txid, raw, to_address, amount, currency, fee, nonce,
                   replaces) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING *""",
            (key, system, txid, raw, to_address, amount, currency, fee, nonce, replaces))
        return cur.fetchone()

    def note_broadcast(self, tx_id, error=None):
        with self.db.transaction() as cur:
            cur.execute("UPDATE chain_txs SET broadcasts = broadcasts + 1, last_broadcast_at = now(), "
                        "last_error = %s WHERE id = %s", (error, tx_id))

    def note_confirmations(self, tx_id, confirmations):
        with self.db.transaction() as cur:
            cur.execute("UPDATE chain_txs SET confirmations = %s WHERE id = %s AND confirmations <> %s",
                        (confirmations, tx_id, confirmations))

    @staticmethod
    def take_nonce(cur, system, address, chain_nonce):
        """The sender's next nonce, under the row's lock (held until the caller commits): the larger of ours and
        the chain's pending count, so a nonce used outside us is never reused."""
        cur.execute("INSERT INTO chain_nonces (system, address, next_nonce) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING", (system, address, chain_nonce))
        cur.execute("SELECT next_nonce FROM chain_nonces WHERE system = %s AND address = %s FOR UPDATE",
                    (system, address))
        nonce = max(cur.fetchone()["next_nonce"], int(chain_nonce))
        cur.execute("UPDATE chain_nonces SET next_nonce = %s WHERE system = %s AND address = %s",
                    (nonce + 1, system, address))
        return nonce
