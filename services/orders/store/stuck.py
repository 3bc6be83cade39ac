"""Stuck work in the orders schema (docs/architecture.md, "Stuck work"): the candidates of the check, the memory of
what the admin has been told (so a restart does not mail it again), and the repairs. The rules that decide what is
stuck are in domain/stuck.py."""
from libs import outbox
from libs.audit import write_audit
from libs.contracts import events
from services.orders.schemas import withdrawal_to_wire
from services.orders.store.partners import request_withdrawal_payout

SOURCE = events.ORDERS


def withdrawal_candidates(db, after_seconds, limit=500, withdrawal_id=None):
    """Withdrawals approved for a payout at least `after_seconds` ago and not settled, with `age_seconds` since the
    decision (the database narrows; domain/stuck.py decides)."""
    return db.fetchall(
        "SELECT id, partner_id, status, method, amount, currency, "
        "       extract(epoch FROM now() - decided_at)::float8 AS age_seconds "
        "  FROM partner_withdrawals WHERE status = 'approved' AND method = 'payout' "
        "   AND decided_at < now() - %s * interval '1 second' AND (%s::bigint IS NULL OR id = %s) "
        " ORDER BY decided_at LIMIT %s", (after_seconds, withdrawal_id, withdrawal_id, limit))


def remember_and_announce(db, kinds, items, counts):
    """Keep the alert memory of `kinds` equal to `items` (an item no longer stuck is forgotten, so a later episode
    is announced again) and, in the same transaction, announce the items not remembered before in one
    `stuck_work_found`. Returns the announced items."""
    keys = [(i["kind"], i["id"]) for i in items]
    with db.transaction() as cur:
        cur.execute("DELETE FROM stuck_alerts WHERE kind = ANY(%s) AND (kind, item_id) NOT IN "
                    "(SELECT * FROM unnest(%s::text[], %s::bigint[]))",
                    (list(kinds), [k for k, _ in keys], [i for _, i in keys]))
        if not keys:
            return []
        cur.execute("INSERT INTO stuck_alerts (kind, item_id) SELECT * FROM unnest(%s::text[], %s::bigint[]) "
                    "ON CONFLICT DO NOTHING RETURNING kind, item_id", ([k for k, _ in keys], [i for _, i in keys]))
        new = {(row["kind"], row["item_id"]) for row in cur.fetchall()}
        fresh = [i for i in items if (i["kind"], i["id"]) in new]
        if fresh:
            outbox.write_event(cur, SOURCE, events.STUCK_WORK_FOUND, {"service": "orders", "items": fresh,
                                                                      "counts": counts}, aggregate_id="stuck")
    return fresh


def audit_repair(db, actor, detail, outcome="ok"):
    with db.transaction() as cur:
        write_audit(cur, actor, "repair_stuck_work", outcome, detail, order_id=None)


def resend_payout_request(db, withdrawal_id, actor, detail):
    """`partner_payout_requested` again for a withdrawal still approved for a payout: the payload and the
    idempotency key `decide_withdrawal` (store/partners.py) wrote, so payments pays it at most once (a payout it
    already has is never sent again; a final answer is repeated). Audited; None if it is no longer waiting."""
    with db.transaction() as cur:
        cur.execute("SELECT * FROM partner_withdrawals WHERE id = %s AND status = 'approved' AND method = 'payout' "
                    "FOR UPDATE", (withdrawal_id,))
        row = cur.fetchone()
        outcome = "ok" if row is not None else "rejected"
        if row is not None:
            request_withdrawal_payout(cur, row)
        write_audit(cur, actor, "repair_stuck_work", outcome, detail, order_id=None)
    return withdrawal_to_wire(row) if row is not None else None
