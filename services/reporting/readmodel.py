"""Every read and write of the `reporting` schema except the CSV stream (export.py).

Applying an event is one transaction: the inbox claim (libs/inbox.py) and the row change commit together, and a
row is only replaced by a newer snapshot (`WHERE reporting.orders.version < EXCLUDED.version`), so redelivered
and reordered events leave the read model as the newest snapshot says.
"""
import json
import logging

from libs import inbox
from services.reporting import metrics, projection, stats

log = logging.getLogger(__name__)

_ORDER_UPDATE = ", ".join("%s = EXCLUDED.%s" % (c, c) for c in projection.ORDER_COLUMNS if c != "id")
UPSERT_ORDER_SQL = (
    "INSERT INTO orders (%s, applied_at) VALUES (%s, now()) "
    "ON CONFLICT (id) DO UPDATE SET %s, applied_at = now() "
    "WHERE orders.version < EXCLUDED.version "
    "RETURNING (xmax = 0) AS inserted"
) % (", ".join(projection.ORDER_COLUMNS), ", ".join("%%(%s)s" % c for c in projection.ORDER_COLUMNS),
     _ORDER_UPDATE)

# Payments and payouts have no version from every producer: a newer version wins, and at the same version the
# later event (occurred_at) wins.
_NEWER = ("WHERE {t}.version < EXCLUDED.version OR ({t}.version = EXCLUDED.version "
          "AND ({t}.event_at IS NULL OR {t}.event_at <= EXCLUDED.event_at))")


def _upsert_sql(table, columns):
    return (
        "INSERT INTO {t} ({cols}, applied_at) VALUES ({vals}, now()) "
        "ON CONFLICT (id) DO UPDATE SET {sets}, applied_at = now() " + _NEWER + " RETURNING id"
    ).format(t=table, cols=", ".join(columns), vals=", ".join("%%(%s)s" % c for c in columns),
             sets=", ".join("%s = EXCLUDED.%s" % (c, c) for c in columns if c != "id"))


PAYMENT_COLUMNS = ("id", "order_id", "status", "amount", "currency", "flag", "received_at", "version", "data",
                   "event_at")
PAYOUT_COLUMNS = ("id", "order_id", "status", "amount", "currency", "error", "sent_at", "version", "data",
                  "event_at")
UPSERT_PAYMENT_SQL = _upsert_sql("payments", PAYMENT_COLUMNS)
UPSERT_PAYOUT_SQL = _upsert_sql("payouts", PAYOUT_COLUMNS)

# The payment and payout summaries on the order row, recomputed from the rows we hold (cheap: by order_id).
REFRESH_MONEY_SQL = """
UPDATE orders SET
    payments_count = (SELECT count(*) FROM payments WHERE order_id = %(id)s),
    payments_total = (SELECT sum(amount) FROM payments WHERE order_id = %(id)s),
    last_payment_at = (SELECT max(received_at) FROM payments WHERE order_id = %(id)s),
    (payout_status, payout_amount, payout_at) = (
        SELECT status, amount, sent_at FROM payouts WHERE order_id = %(id)s
         ORDER BY version DESC, event_at DESC NULLS LAST LIMIT 1)
 WHERE id = %(id)s
"""


class ReadModel:
    def __init__(self, db):
        self.db = db

    # -- orders ----------------------------------------------------------------------------------------------
    def upsert_order(self, cur, row):
        """Insert or replace by a newer version; True if the row changed."""
        cur.execute(UPSERT_ORDER_SQL, row)
        result = cur.fetchone()
        if result is None:
            return False
        if result["inserted"]:
            # A payment event may have come first (another source, another queue): pick up what we hold.
            cur.execute("SELECT EXISTS (SELECT 1 FROM payments WHERE order_id = %(id)s) "
                        "OR EXISTS (SELECT 1 FROM payouts WHERE order_id = %(id)s) AS has", row)
            if cur.fetchone()["has"]:
                cur.execute(REFRESH_MONEY_SQL, {"id": row["id"]})
        return True

    def apply_order_events(self, envelopes, consumer):
        """A batch of order events in ONE transaction with one inbox insert; returns the outcome of each
        ('applied', 'stale' or 'duplicate'). ValidationError for a malformed event (the batch is then re-run event
        by event, libs/messaging.py)."""
        parsed = [projection.row_from_order_event(envelope) for envelope in envelopes]
        outcomes = []
        with self.db.transaction() as cur:
            fresh = {str(e["event_id"]) for e in inbox.claim_batch(cur, consumer, envelopes)}
            for event_id, occurred_at, row in parsed:
                if str(event_id) in fresh:
                    fresh.discard(str(event_id))
                    outcomes.append("applied" if self.upsert_order(cur, row) else "stale")
                else:
                    outcomes.append("duplicate")
        for envelope, (event_id, occurred_at, row), outcome in zip(envelopes, parsed, outcomes):
            metrics.EVENTS.labels(envelope.get("event_type") or "?", outcome).inc()
            if outcome != "duplicate":
                metrics.event_applied(occurred_at)
        return outcomes

    def upsert_snapshots(self, orders):
        """Rebuild: a page of snapshots from the owner, one transaction. Returns how many rows changed."""
        rows = [projection.row_from_snapshot(o) for o in orders]
        changed = 0
        with self.db.transaction() as cur:
            for row in rows:
                changed += bool(self.upsert_order(cur, row))
        return changed

    # -- payments --------------------------------------------------------------------------------------------
    def _upsert_money(self, cur, table, sql, row):
        row = dict(row, data=json.dumps(row["data"], default=str))
        # A payment can move between orders (matched, rejected, assigned by an operator): both summaries change.
        cur.execute("SELECT order_id FROM %s WHERE id = %%s FOR UPDATE" % table, (row["id"],))
        before = cur.fetchone()
        cur.execute(sql, row)
        changed = cur.fetchone() is not None
        if changed:
            for order_id in {row["order_id"], before["order_id"] if before else None} - {None}:
                cur.execute(REFRESH_MONEY_SQL, {"id": order_id})
        return changed

    def apply_payment_event(self, envelope, consumer):
        event_id, occurred_at, row = projection.payment_row(envelope)
        return self._apply(consumer, envelope.get("event_type"), event_id, occurred_at,
                           lambda cur: self._upsert_money(cur, "payments", UPSERT_PAYMENT_SQL, row))

    def apply_payout_event(self, envelope, consumer):
        event_id, occurred_at, row = projection.payout_row(envelope)
        return self._apply(consumer, envelope.get("event_type"), event_id, occurred_at,
                           lambda cur: self._upsert_money(cur, "payouts", UPSERT_PAYOUT_SQL, row))

    def _apply(self, consumer, event_type, event_id, occurred_at, effect):
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, event_id):
                outcome = "duplicate"
            else:
                outcome = "applied" if effect(cur) else "stale"
        metrics.EVENTS.labels(event_type or "?", outcome).inc()
        if outcome != "duplicate":
            metrics.event_applied(occurred_at)
        return outcome

    # -- housekeeping ----------------------------------------------------------------------------------------
    def newest_event_at(self):
        row = self.db.fetchone(
            "SELECT greatest((SELECT max(event_at) FROM orders), (SELECT max(event_at) FROM payments), "
            "(SELECT max(event_at) FROM payouts)) AS newest")
        return row["newest"] if row else None

    def prune_inbox(self, keep_days):
        """Dedupe only needs the redelivery window; older duplicates are stopped by the version check anyway."""
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM processed_events WHERE processed_at < now() - %s * interval '1 day'",
                        (keep_days,))
            return cur.rowcount

    def wipe(self):
        with self.db.transaction() as cur:
            cur.execute("TRUNCATE orders")

    # -- statistics ------------------------------------------------------------------------------------------
    def stats(self, start, end, group):
        queries = stats.queries(group)
        window = {"start": start, "end": end}
        # One snapshot for all three queries, so the numbers add up.
        with self.db.transaction(isolation="REPEATABLE READ") as cur:
            results = []
            for sql in queries:
                cur.execute(sql, window)
                results.append(cur.fetchall())
        return stats.shape(start, end, group, *results)
