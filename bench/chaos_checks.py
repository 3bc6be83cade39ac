"""The invariants the chaos bench checks after every run (bench/chaos.py), read from PostgreSQL (schemas orders,
payments, reporting, sandbox) and RabbitMQ: "nothing lost, nothing paid twice" (docs/reliability.md).

Each check returns a list of offending rows (dicts); an empty list means it holds. Checks look at the whole
database, so the bench counts each offending row once, in the run where it first appears.

Not checked: held reserves (the reserve follows the payout account's balance, docs/payments.md; holding part of it
for orders in flight is not implemented yet).
"""
import time

from libs import topology

# Statuses an order may rest in once the system is quiet: final, or waiting where an operator sees it
# (paid: semi_auto or a flagged payment; payment_claimed/processing: a manual exchange; payout_error: a failed
# payout). `new` only while its payment window is open. `payout` is never a resting state (a payout in flight).
RESTING_STATUSES = ("completed", "canceled", "expired", "deleted", "paid", "payment_claimed", "processing",
                    "payout_error")

OUTBOX_SCHEMAS = ("orders", "payments", "notifier", "reporting")


def _rows(system, query, params=None):
    return [dict(r) for r in system.sql(query, params)]


# -- waiting for quiet -----------------------------------------------------------------------------------------------
def busy(system, channel_factory):
    """What still moves (empty dict: quiet): unpublished outbox rows, messages ready in event or retry queues,
    payouts in flight, orders in `payout`, withdrawals approved for payout, payments not yet ingested, reporting
    behind orders, sandbox faults still armed."""
    state = {}
    for schema in OUTBOX_SCHEMAS:
        n = system.sql("SELECT count(*) AS n FROM %s.outbox WHERE published_at IS NULL" % schema)[0]["n"]
        if n:
            state["outbox_unpublished.%s" % schema] = n
    for name, count in queue_depths(channel_factory, include_dlq=False).items():
        if count:
            state["queue." + name] = count
    one = system.sql("""
        SELECT (SELECT count(*) FROM payments.payouts WHERE status = 'sending') AS payouts_sending,
               (SELECT count(*) FROM payments.withdrawal_payouts WHERE status = 'sending')
                   AS withdrawal_payouts_sending,
               (SELECT count(*) FROM orders.orders WHERE status = 'payout') AS orders_in_payout,
               (SELECT count(*) FROM orders.partner_withdrawals WHERE status = 'approved' AND method = 'payout')
                   AS withdrawals_approved_for_payout,
               (SELECT count(*) FROM sandbox.transfers t JOIN sandbox.accounts a ON a.account = t.to_account
                 WHERE a.owner = 'exchanger' AND NOT EXISTS (
                       SELECT 1 FROM payments.payments p WHERE p.external_id = t.id::text)) AS payments_not_ingested,
               (SELECT count(*) FROM orders.orders o LEFT JOIN reporting.orders r ON r.id = o.id
                 WHERE r.id IS NULL OR r.version < o.version) AS reporting_behind,
               (SELECT count(*) FROM sandbox.faults WHERE remaining > 0) AS sandbox_faults_armed
    """)[0]
    state.update({k: v for k, v in one.items() if v})
    return state


def wait_quiet(system, channel_factory, timeout=90.0, settle=2):
    """Poll until `settle` consecutive observations are quiet; returns (True, {}) or (False, last busy state)."""
    deadline = time.monotonic() + timeout
    quiet_in_a_row = 0
    state = {}
    while time.monotonic() < deadline:
        try:
            state = busy(system, channel_factory)
        except Exception as exc:  # noqa: BLE001 - a broker or database hiccup while we look: look again
            state = {"error": repr(exc)}
        quiet_in_a_row = quiet_in_a_row + 1 if not state else 0
        if quiet_in_a_row >= settle:
            return True, {}
        time.sleep(0.5)
    return False, state


def queue_depths(channel_factory, include_dlq=True):
    """Ready messages of every queue libs/topology.py declares (passive declare: a missing queue is an error)."""
    depths = {}
    channel = channel_factory()
    try:
        for s in topology.all_subscriptions():
            queue = topology.queue_name(s.source, s.event_type, s.service, s.method)
            names = [queue] + [topology.retry_queue_name(queue, n) for n in range(1, s.max_attempts)]
            if include_dlq:
                names.append(topology.dead_letter_queue_name(queue))
            for name in names:
                depths[name] = channel.queue_declare(name, passive=True).message_count
    finally:
        try:
            channel.connection.close()
        except Exception:  # noqa: BLE001
            pass
    return depths


# -- the invariants -------------------------------------------------------------------------------------------------
def paid_out_once(system):
    """No order paid out more than once: at the sandbox, one payout transfer per order (by the order id in the
    payout key, payout-<installation>-<order>-<attempt>) and one transfer from an exchanger account per order
    reference; each for the order's amount_out to its recipient."""
    by_key = _rows(system, """
        SELECT split_part(t.idempotency_key, '-', 3)::bigint AS order_id, count(*) AS transfers,
               array_agg(t.idempotency_key ORDER BY t.created_at) AS keys, array_agg(t.id::text) AS transfer_ids
          FROM sandbox.transfers t WHERE t.idempotency_key LIKE 'payout-%'
         GROUP BY 1 HAVING count(*) > 1""")
    by_reference = _rows(system, """
        SELECT o.id AS order_id, t.reference, count(*) AS transfers, array_agg(t.id::text) AS transfer_ids,
               array_agg(t.idempotency_key) AS keys
          FROM sandbox.transfers t
          JOIN sandbox.accounts a ON a.account = t.from_account AND a.owner = 'exchanger'
          JOIN orders.orders o ON o.reference = t.reference
         GROUP BY o.id, t.reference HAVING count(*) > 1""")
    wrong = _rows(system, """
        SELECT o.id AS order_id, t.id::text AS transfer_id, t.amount, o.amount_out, t.to_account, o.recipient,
               t.currency, o.currency_out
          FROM sandbox.transfers t
          JOIN orders.orders o ON o.id = split_part(t.idempotency_key, '-', 3)::bigint
         WHERE t.idempotency_key LIKE 'payout-%'
           AND (t.amount <> o.amount_out OR t.to_account <> o.recipient OR t.currency <> o.currency_out)""")
    return ([dict(r, problem="several payout transfers for one order (by key)") for r in by_key]
            + [dict(r, problem="several transfers from the exchanger for one order reference") for r in by_reference]
            + [dict(r, problem="payout transfer differs from the order") for r in wrong])


def payouts_match_the_provider(system):
    """Our payout records and the provider agree: `sent` <=> a transfer under the key; money never moved under a
    key we recorded as failed; no payout transfer without its payout row. Same for partner withdrawals."""
    rows = []
    for table, label in (("payouts", "order payout"), ("withdrawal_payouts", "withdrawal payout")):
        rows += [dict(r, problem="%s recorded sent, no transfer under its key" % label) for r in _rows(system, """
            SELECT p.id, p.idempotency_key, p.status FROM payments.%s p
             WHERE p.status = 'sent' AND NOT EXISTS (
                   SELECT 1 FROM sandbox.transfers t WHERE t.idempotency_key = p.idempotency_key)""" % table)]
        rows += [dict(r, problem="%s: money moved, recorded %s" % (label, r["status"])) for r in _rows(system, """
            SELECT p.id, p.idempotency_key, p.status, t.id::text AS transfer_id FROM payments.%s p
              JOIN sandbox.transfers t ON t.idempotency_key = p.idempotency_key
             WHERE p.status <> 'sent'""" % table)]
    rows += [dict(r, problem="a payout transfer without a payout row") for r in _rows(system, """
        SELECT t.id::text AS transfer_id, t.idempotency_key FROM sandbox.transfers t
         WHERE (t.idempotency_key LIKE 'payout-%' AND NOT EXISTS (
                    SELECT 1 FROM payments.payouts p WHERE p.idempotency_key = t.idempotency_key))
            OR (t.idempotency_key LIKE 'partner-withdrawal-%' AND NOT EXISTS (
                    SELECT 1 FROM payments.withdrawal_payouts p WHERE p.idempotency_key = t.idempotency_key))""")]
    return rows


def every_payment_accounted(system):
    """Every payment into the exchanger's accounts at the sandbox is in payments (matched, unmatched or manual),
    and none waits for an order payments knows; a matched one has reached its order (amount_received set, no
    longer new/expired); an order that says it received money has a matched payment."""
    missing = _rows(system, """
        SELECT t.id::text AS transfer_id, t.to_account, t.amount, t.reference, t.created_at
          FROM sandbox.transfers t JOIN sandbox.accounts a ON a.account = t.to_account AND a.owner = 'exchanger'
         WHERE NOT EXISTS (SELECT 1 FROM payments.payments p WHERE p.external_id = t.id::text
                             AND p.status IN ('matched', 'unmatched', 'manual'))""")
    not_applied = _rows(system, """
        SELECT p.id AS payment_id, p.order_id, p.amount, o.status, o.amount_received
          FROM payments.payments p JOIN orders.orders o ON o.id = p.order_id
         WHERE p.status = 'matched' AND (o.amount_received IS NULL OR o.status IN ('new', 'expired'))""")
    unmatched_order = _rows(system, """
        SELECT o.id AS order_id, o.status, o.amount_received FROM orders.orders o
         WHERE o.amount_received IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM payments.payments p WHERE p.order_id = o.id AND p.status = 'matched')""")
    # A payment that came before payments' copy of its order waits as unknown_reference and is matched when the
    # copy arrives (docs/payments.md, "Payments keeps its own copy of orders"): once the copy is there, none waits.
    waiting = _rows(system, """
        SELECT p.id AS payment_id, p.match_reference, p.detected_at, o.id AS order_id, o.status AS copy_status,
               o.updated_at AS copy_updated_at
          FROM payments.payments p JOIN payments.orders o ON o.reference = p.match_reference
         WHERE p.status = 'unmatched' AND p.reason_code = 'unknown_reference'""")
    return ([dict(r, problem="sandbox payment missing from payments") for r in missing]
            + [dict(r, problem="payment still waits for an order payments already has") for r in waiting]
            + [dict(r, problem="matched payment not applied to its order") for r in not_applied]
            + [dict(r, problem="order received money no matched payment explains") for r in unmatched_order])


def orders_at_rest(system):
    """Every order is final or visible to an operator (RESTING_STATUSES), or new within its payment window."""
    return [dict(r, problem="order not at rest") for r in _rows(system, """
        SELECT id AS order_id, status, exchange_type, payment_flag, expires_at, updated_at FROM orders.orders
         WHERE NOT (status = ANY(%s) OR (status = 'new' AND expires_at > now()))""", (list(RESTING_STATUSES),))]


def outbox_published(system):
    rows = []
    for schema in OUTBOX_SCHEMAS:
        rows += [dict(r, schema=schema, problem="outbox event unpublished") for r in _rows(system, """
            SELECT id::text, event_type, aggregate_id, attempts, last_error, created_at FROM %s.outbox
             WHERE published_at IS NULL""" % schema)]
    return rows


def dead_letter_queues_empty(channel_factory):
    """Passive-declare every DLQ of libs/topology.py: none holds a message."""
    channel = channel_factory()
    rows = []
    try:
        for s in topology.all_subscriptions():
            name = topology.dead_letter_queue_name(topology.queue_name(s.source, s.event_type, s.service, s.method))
            count = channel.queue_declare(name, passive=True).message_count
            if count:
                rows.append({"queue": name, "messages": count, "problem": "message parked in a DLQ"})
    finally:
        try:
            channel.connection.close()
        except Exception:  # noqa: BLE001
            pass
    return rows


def partner_ledger_consistent(system, expected_credit_orders=()):
    """Partner balances equal the ledger sums (the newest balance_after of each partner and currency is the sum of
    its amounts, and every row's balance_after is the running sum); credits only for completed orders, one for each
    completed referred order expected to earn; withdrawals paid <=> one transfer under their key, failed <=> their
    amount returned."""
    rows = [dict(r, problem="balance_after is not the running sum of the ledger") for r in _rows(system, """
        SELECT id, partner_id, currency, balance_after, running FROM (
            SELECT l.*, sum(amount) OVER (PARTITION BY partner_id, currency ORDER BY id) AS running
              FROM orders.partner_ledger l) x
         WHERE balance_after <> running""")]
    rows += [dict(r, problem="partner credited for an order that is not completed") for r in _rows(system, """
        SELECT l.id, l.partner_id, l.order_id, o.status FROM orders.partner_ledger l
          JOIN orders.orders o ON o.id = l.order_id
         WHERE l.kind = 'credit' AND o.status NOT IN ('completed', 'deleted')""")]
    if expected_credit_orders:
        rows += [dict(r, problem="completed referred order without its credit") for r in _rows(system, """
            SELECT o.id AS order_id, o.partner_code, o.status FROM orders.orders o
             WHERE o.id = ANY(%s) AND o.status = 'completed'
               AND NOT EXISTS (SELECT 1 FROM orders.partner_ledger l WHERE l.order_id = o.id)""",
                                                                                    (list(expected_credit_orders),))]
    rows += [dict(r, problem="withdrawal's ledger rows do not match its status") for r in _rows(system, """
        SELECT * FROM (
            SELECT w.id AS withdrawal_id, w.status, w.amount,
                   (SELECT count(*) FROM orders.partner_ledger l WHERE l.withdrawal_id = w.id
                      AND l.kind = 'withdrawal' AND l.amount = -w.amount) AS held,
                   (SELECT count(*) FROM orders.partner_ledger l WHERE l.withdrawal_id = w.id
                      AND l.kind = 'withdrawal_return' AND l.amount = w.amount) AS returned
              FROM orders.partner_withdrawals w) x
         WHERE held <> 1 OR returned <> (CASE WHEN status IN ('rejected', 'failed') THEN 1 ELSE 0 END)""")]
    rows += [dict(r, problem="withdrawal status and the provider disagree") for r in _rows(system, """
        SELECT * FROM (
            SELECT w.id AS withdrawal_id, w.status, w.method, w.amount,
                   (SELECT count(*) FROM sandbox.transfers t
                     WHERE t.idempotency_key IN (SELECT p.idempotency_key FROM payments.withdrawal_payouts p
                                                  WHERE p.withdrawal_id = w.id)
                       AND t.amount = w.amount) AS transfers
              FROM orders.partner_withdrawals w WHERE w.method = 'payout') x
         WHERE transfers <> (CASE WHEN status = 'paid' THEN 1 ELSE 0 END)""")]
    return rows


def reporting_follows_orders(system):
    """Nothing lost on the way to the read model: reporting has every order at its newest version and status."""
    return [dict(r, problem="reporting differs from orders") for r in _rows(system, """
        SELECT o.id AS order_id, o.status, o.version, r.status AS reporting_status, r.version AS reporting_version
          FROM orders.orders o LEFT JOIN reporting.orders r ON r.id = o.id
         WHERE r.id IS NULL OR r.version <> o.version OR r.status <> o.status""")]


def check_all(system, channel_factory, expected_credit_orders=()):
    """{invariant name: offending rows} for every invariant that does not hold."""
    checks = {
        "paid_out_once": lambda: paid_out_once(system),
        "payouts_match_the_provider": lambda: payouts_match_the_provider(system),
        "every_payment_accounted": lambda: every_payment_accounted(system),
        "orders_at_rest": lambda: orders_at_rest(system),
        "outbox_published": lambda: outbox_published(system),
        "dead_letter_queues_empty": lambda: dead_letter_queues_empty(channel_factory),
        "partner_ledger_consistent": lambda: partner_ledger_consistent(system, expected_credit_orders),
        "reporting_follows_orders": lambda: reporting_follows_orders(system),
    }
    failed = {}
    for name, check in checks.items():
        rows = check()
        if rows:
            failed[name] = rows
    return failed
