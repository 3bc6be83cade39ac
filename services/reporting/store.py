"""All SQL of the reporting service: the read model's writes and reads, the statistics queries, the export's
WHERE clause and its COPY statement.

Applying an event is one transaction: the inbox claim (libs/inbox.py) and the row change commit together, and a
row is only replaced by a newer snapshot (`WHERE reporting.orders.version < EXCLUDED.version`), so redelivered
and reordered events leave the read model as the newest snapshot says.
"""
import json

from libs import inbox
from services.reporting.domain import ORDER_COLUMNS, PERCENTILES

# -- the read model ------------------------------------------------------------------------------------------------
_ORDER_UPDATE = ", ".join("%s = EXCLUDED.%s" % (c, c) for c in ORDER_COLUMNS if c != "id")
UPSERT_ORDER_SQL = (
    "INSERT INTO orders (%s, applied_at) VALUES (%s, now()) "
    "ON CONFLICT (id) DO UPDATE SET %s, applied_at = now() "
    "WHERE orders.version < EXCLUDED.version "
    "RETURNING (xmax = 0) AS inserted"
) % (", ".join(ORDER_COLUMNS), ", ".join("%%(%s)s" % c for c in ORDER_COLUMNS), _ORDER_UPDATE)

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
UPSERT_MONEY_SQL = {"payments": _upsert_sql("payments", PAYMENT_COLUMNS),
                    "payouts": _upsert_sql("payouts", PAYOUT_COLUMNS)}

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


class ReadModelStore:
    def __init__(self, db):
        self.db = db

    @staticmethod
    def _lock_orders(cur, order_ids):
        """Serialise the writers of one order's money summary: a payment or payout event and the order's first
        snapshot, or two payout events, each see the other's rows (a refresh computed from a snapshot that missed
        a concurrent insert left the summary wrong). Transaction-scoped advisory locks, in id order."""
        ids = sorted({int(i) for i in order_ids if i is not None})
        if ids:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended('reporting.order:' || i, 0)) "
                        "FROM unnest(%s::bigint[]) AS i ORDER BY i", (ids,))

    def _upsert_orders(self, cur, rows):
        """Insert or replace each by a newer version; returns, per row, True if it changed. Orders seen for the
        first time pick up the payments and payouts that arrived before them (another queue, another source):
        one lock and one lookup for the whole batch."""
        changed, inserted = [], []
        for row in rows:
            cur.execute(UPSERT_ORDER_SQL, row)
            result = cur.fetchone()
            changed.append(result is not None)
            if result is not None and result["inserted"]:
                inserted.append(row["id"])
        if inserted:
            self._lock_orders(cur, inserted)
            cur.execute("SELECT order_id FROM payments WHERE order_id = ANY(%(ids)s) "
                        "UNION SELECT order_id FROM payouts WHERE order_id = ANY(%(ids)s)", {"ids": inserted})
            for found in cur.fetchall():
                cur.execute(REFRESH_MONEY_SQL, {"id": found["order_id"]})
        return changed

    def apply_orders(self, consumer, envelopes, parsed):
        """A batch of order events in ONE transaction with one inbox insert. `parsed` holds (event_id, occurred_at,
        row) per envelope; returns the outcome of each: 'applied', 'stale' or 'duplicate'."""
        with self.db.transaction() as cur:
            fresh = {str(e["event_id"]) for e in inbox.claim_batch(cur, consumer, envelopes)}
            todo, outcomes = [], []
            for event_id, _, row in parsed:
                if str(event_id) in fresh:
                    fresh.discard(str(event_id))
                    todo.append(row)
                    outcomes.append(None)
                else:
                    outcomes.append("duplicate")
            changed = iter(self._upsert_orders(cur, todo))
        return [outcome or ("applied" if next(changed) else "stale") for outcome in outcomes]

    def upsert_orders(self, rows):
        """Rebuild: a page of rows, one transaction. Returns how many rows changed."""
        with self.db.transaction() as cur:
            return sum(self._upsert_orders(cur, rows))

    def apply_money(self, consumer, event_id, table, row):
        """A payment ('payments') or payout ('payouts') row with its inbox claim: 'applied', 'stale' or
        'duplicate'."""
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, event_id):
                return "duplicate"
            return "applied" if self._upsert_money(cur, table, row) else "stale"

    def _upsert_money(self, cur, table, row):
        row = dict(row, data=json.dumps(row["data"], default=str))
        # A payment can move between orders (matched, rejected, assigned by an operator): both summaries change.
        # The money row's lock first (events of one payment in turn), then the orders' (never the other way round).
        cur.execute("SELECT order_id FROM %s WHERE id = %%s FOR UPDATE" % table, (row["id"],))
        before = cur.fetchone()
        touched = {row["order_id"], before["order_id"] if before else None} - {None}
        self._lock_orders(cur, touched)
        cur.execute(UPSERT_MONEY_SQL[table], row)
        changed = cur.fetchone() is not None
        if changed:
            for order_id in sorted(touched):
                cur.execute(REFRESH_MONEY_SQL, {"id": order_id})
        return changed

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

    def stats_rows(self, start, end, group):
        """The rows of the three statistics queries, read in one snapshot so the numbers add up."""
        window = {"start": start, "end": end}
        with self.db.transaction(isolation="REPEATABLE READ") as cur:
            results = []
            for sql in stats_queries(group):
                cur.execute(sql, window)
                results.append(cur.fetchall())
        return results

    def export_select(self, filters):
        """(SELECT text with the parameters inlined, COPY options); a pooled connection does the quoting."""
        with self.db.transaction() as cur:
            return export_select(filters, cur.mogrify)


# -- statistics (definitions in domain.py) ---------------------------------------------------------------------------
NEVER_PAID = ("status = 'expired' OR (status IN ('canceled', 'deleted') "
              "AND previous_status IN ('new', 'expired'))")
CREATED_DAY = "(created_at AT TIME ZONE 'UTC')::date"
COMPLETED_DAY = "(completed_at AT TIME ZONE 'UTC')::date"


def stats_queries(group):
    created_key = CREATED_DAY if group == "day" else "direction_id"
    completed_key = COMPLETED_DAY if group == "day" else "direction_id"
    requests = (
        "SELECT {k} AS key, status, count(*) AS n, count(*) FILTER (WHERE {np}) AS never_paid, "
        "min(currency_in) AS currency_in, min(currency_out) AS currency_out "
        "FROM orders WHERE created_at >= %(start)s AND created_at < %(end)s "
        "GROUP BY 1, 2 ORDER BY 1, 2").format(k=created_key, np=NEVER_PAID)
    completion = (
        "SELECT GROUPING({k}) = 1 AS is_total, {k} AS key, count(*) AS n, "
        "percentile_cont(ARRAY[{p}]) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at)) AS p "
        "FROM orders WHERE completed_at >= %(start)s AND completed_at < %(end)s "
        "GROUP BY GROUPING SETS (({k}), ())").format(k=completed_key, p=", ".join(str(p) for p in PERCENTILES))
    turnover = (
        "SELECT {day} AS day, direction_id, currency_in, currency_out, count(*) AS completed, "
        "sum(amount_in) AS amount_in, sum(amount_out) AS amount_out, sum(coalesce(fee_amount, 0)) AS margin "
        "FROM orders WHERE completed_at >= %(start)s AND completed_at < %(end)s "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2").format(day=COMPLETED_DAY)
    return [requests, completion, turnover]


# -- the export's filters and COPY statement ---------------------------------------------------------------------
DELIMITERS = {"utf-8": ",", "windows-1251": ";"}


def where_clause(filters, alias="o"):
    """Filters (loaded by libs/contracts/reporting.py) -> (SQL condition, params) over reporting.orders. Deleted
    orders are left out unless a status filter names `deleted` (as on the admin list)."""
    where, params = [], []
    col = (alias + ".") if alias else ""
    statuses = filters.get("status")
    if statuses:
        where.append(col + "status = ANY(%s)")
        params.append(list(statuses))
    else:
        where.append(col + "status <> 'deleted'")
    for key in ("exchange_type", "direction_id", "partner_code"):
        if filters.get(key) is not None:
            where.append("%s%s = %%s" % (col, key))
            params.append(filters[key])
    for key in ("currency_in", "currency_out"):
        if filters.get(key) is not None:
            where.append("%s%s = %%s" % (col, key))
            params.append(filters[key].upper())
    if filters.get("email") is not None:
        where.append("lower(%semail) = lower(%%s)" % col)
        params.append(filters["email"].strip())
    for key, column, op in (("created_from", "created_at", ">="), ("created_to", "created_at", "<"),
                            ("updated_from", "updated_at", ">="), ("updated_to", "updated_at", "<"),
                            ("amount_in_min", "amount_in", ">="), ("amount_in_max", "amount_in", "<="),
                            ("amount_out_min", "amount_out", ">="), ("amount_out_max", "amount_out", "<=")):
        if filters.get(key) is not None:
            where.append("%s%s %s %%s" % (col, column, op))
            params.append(filters[key])
    return " AND ".join(where), params


# PostgreSQL writes the CSV itself: formula cells are escaped in the SELECT (reporting.csv_safe), amounts are
# printed without trailing zeros (trim_scale) and times in UTC to the second, so nothing is formatted in Python.
def _utc(column):
    return "date_trunc('second', o.%s AT TIME ZONE 'UTC')" % column


def _amount(column):
    return "trim_scale(o.%s)" % column


def _text(column):
    """Free text typed by a customer or an operator: formula-escaped."""
    return "reporting.csv_safe(o.%s)" % column


# (header, SQL expression). The first sixteen are the columns the export was specified with, in that order
# (docs/reporting.md); more may follow.
COLUMNS = [
    ("id", "o.id"),
    ("created_at", _utc("created_at")),
    ("updated_at", _utc("updated_at")),
    ("status", "o.status"),
    ("exchange_type", "o.exchange_type"),
    ("currency_in", "o.currency_in"),
    ("amount_in", _amount("amount_in")),
    ("currency_out", "o.currency_out"),
    ("amount_out", _amount("amount_out")),
    ("rate_in", _amount("rate_in")),
    ("rate_out", _amount("rate_out")),
    ("fee", _amount("fee")),
    ("email", _text("email")),
    ("recipient", _text("recipient")),
    ("partner_code", _text("partner_code")),
    ("payment_flag", "o.payment_flag"),
    ("direction_id", "o.direction_id"),
    ("fee_amount", _amount("fee_amount")),
    ("amount_received", _amount("amount_received")),
    ("completed_at", _utc("completed_at")),
    ("payout_status", _text("payout_status")),
    ("reference", "o.reference"),   # what the customer and the order page call the request
]
HEADER = [name for name, _ in COLUMNS]


def select_sql(filters):
    """(SELECT statement with %s placeholders, params) for the filtered rows, oldest first."""
    where, params = where_clause(filters, alias="o")
    select = ", ".join("%s AS %s" % (expr, name) if expr != "o." + name else expr for name, expr in COLUMNS)
    sql = "SELECT %s FROM reporting.orders o WHERE %s ORDER BY o.id" % (select, where)
    return sql, params


def export_select(filters, mogrify):
    """(SELECT text with the parameters inlined, COPY options) for the filters. COPY takes no bind parameters, so
    psycopg2's quoting (`cursor.mogrify`) inlines them; every value comes from the validated filters."""
    sql, params = select_sql(filters)
    select = mogrify(sql, params)
    if isinstance(select, bytes):
        select = select.decode("utf-8")
    delimiter = DELIMITERS[filters.get("encoding") or "utf-8"]
    return select, "FORMAT csv, HEADER true, DELIMITER '%s'" % delimiter


def copy_statement(select, options):
    """What the Python export child runs (copy_out.py)."""
    return "COPY (%s) TO STDOUT WITH (%s)" % (select, options)


def copy_sql(filters, mogrify):
    return copy_statement(*export_select(filters, mogrify))


# The script the psql export child runs: status lines (BEGIN, COPY n, COMMIT) go to stderr (\o), the data to
# psql's own stdout (pstdout), all in one read-only snapshot.
PSQL_SCRIPT = ("\\o /dev/stderr\n"
               "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
               "\\copy (%s) TO PSTDOUT WITH (%s)\n"
               "COMMIT;\n")


def psql_script(select, options):
    return PSQL_SCRIPT % (select, options)
