"""Orders: every read and write of an order, each write in one transaction with its status-history row, audit row
and outbox event (the event leaves only if the change commits: docs/architecture.md). The events of payments and
the notifier that move orders are applied here too, each in one transaction with its inbox record."""
import contextlib
import datetime

from libs import errors, inbox, metrics, money, outbox
from libs.audit import actor_name, audit_statement
from libs.contracts import events
from libs.db import execute_batch
from services.orders.domain import RuleError, check_same_request, orders as rules, request_hash
from services.orders.schemas import audit_to_wire, history_to_wire, order_to_wire, public_history_to_wire
from services.orders.store import catalogue, partners
from services.orders.store.monitor_export import directions_of_currency, publish_directions_changed

SOURCE = events.ORDERS
EXPIRY_TIMER = {"kind": "system", "name": "expiry-timer"}
PAYMENTS = {"kind": "system", "name": "payments"}


def _audit_statement(actor, action, order_id, from_status, to_status, outcome="ok", detail=None):
    return audit_statement(actor, action, outcome, detail, order_id=order_id, from_status=from_status,
                           to_status=to_status)


def _audit(cur, actor, action, order_id, from_status, to_status, outcome="ok", detail=None):
    cur.execute(*_audit_statement(actor, action, order_id, from_status, to_status, outcome, detail))


def _transaction(db, cur=None):
    """The caller's transaction if it passes a cursor, else a new one."""
    if cur is not None:
        return contextlib.nullcontext(cur)
    return db.transaction()


def _repeated(cur, scope, request_id, fingerprint):
    """The order this caller's key created, if any: answered again for the same request, a Conflict for another
    (docs/architecture.md, "Idempotency keys")."""
    cur.execute("SELECT * FROM orders WHERE request_scope = %s AND request_id = %s", (scope, request_id))
    existing = cur.fetchone()
    if existing is None:
        return None
    try:
        check_same_request(existing["request_hash"], fingerprint)
    except RuleError as exc:
        raise errors.Conflict(exc.message, exc.fields)
    # Marked, so the gateway can say so (`Idempotent-Replayed: true`) and count it: an answer that wrote nothing.
    return dict(order_to_wire(existing), idempotent_replay=True)


def create_order(db, data, actor=None):
    """A new order from the loaded create-order call (libs/contracts/orders.py): quoted on the direction as it is
    in this transaction. A repeated request_id of the same caller (request_scope) with the same request answers
    the order it created; with another request it is a Conflict."""
    direction_id, amount_in, request_id = data["direction_id"], money.parse_amount(data["amount_in"]), \
        data.get("request_id")
    scope = (data.get("request_scope") or rules.UNSCOPED) if request_id else None
    fingerprint = request_hash(rules.create_request(data)) if request_id else None
    email, recipient, phone = data["email"], data["recipient"], data.get("phone") or None
    sms_opt_in, partner_code, language = data["sms_opt_in"], data.get("partner_code") or None, data["language"]

    with db.transaction() as cur:
        if request_id:
            existing = _repeated(cur, scope, request_id, fingerprint)
            if existing:
                return existing
        direction = catalogue.direction_for_order(cur, direction_id)
        if direction is None or not direction["usable"]:
            raise errors.ValidationFailed("unknown direction", {"direction_id": ["no such active direction"]})
        if direction["rate_frozen"]:
            # the rate engine stopped it (docs/rates.md, "Guards"): no order at a rate we cannot stand behind
            raise errors.Conflict(rules.FROZEN_MESSAGE, {"direction_id": [rules.FROZEN_MESSAGE]})
        currencies = {
            direction["currency_in"]: {"precision": direction["precision_in"], "reserve": None},
            direction["currency_out"]: {"precision": direction["precision_out"], "reserve": direction["available"]},
        }
        sms_percent = 0
        if sms_opt_in:
            cur.execute("SELECT fee_percent, available FROM sms_fee_setting WHERE id = 1")
            setting = cur.fetchone()
            if setting and setting["available"]:
                sms_percent = setting["fee_percent"]
        try:
            amount_out, fee_amount = rules.quote(direction, currencies, amount_in, sms_percent)
        except RuleError as exc:
            raise errors.ValidationFailed(exc.message, exc.fields)
        sms_fee = rules.sms_fee_amount(direction, amount_in, sms_percent, direction["precision_out"])
        now = events.utcnow()
        expires_at = now + datetime.timedelta(minutes=direction["payment_window_minutes"])
        row = None
        for _ in range(5):
            # ON CONFLICT: a retried call with the same request_id, or (astronomically rare) a reference
            # collision; no savepoint round trip on the normal path.
            cur.execute(
                """INSERT INTO orders (token, reference, request_id, direction_id, exchange_type,
                       currency_in, currency_out, amount_in, amount_out, rate_in, rate_out, fee,
                       fee_amount, sms_fee, pay_system, pay_account, email, recipient, phone, sms_opt_in,
                       partner_code, language, expires_at, created_at, updated_at, reserve_held,
                       request_scope, request_hash, floating)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                           %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT DO NOTHING RETURNING *""",
                (rules.new_token(), rules.new_reference(), request_id, direction["id"],
                 direction["exchange_type"], direction["currency_in"], direction["currency_out"],
                 amount_in, amount_out, direction["rate_in"], direction["rate_out"], direction["fee"],
                 fee_amount, sms_fee, direction["pay_system"], direction["pay_account"], email, recipient, phone,
                 sms_opt_in, partner_code, language, expires_at, now, now, amount_out, scope, fingerprint,
                 direction["floating"]))
            row = cur.fetchone()
            if row is not None:
                break
            if request_id:
                existing = _repeated(cur, scope, request_id, fingerprint)
                if existing:
                    return existing
        if row is None:
            raise errors.Conflict("could not allocate a payment reference")
        order = order_to_wire(row)
        event, _ = outbox.event_statements(SOURCE, events.ORDER_CREATED, {"order": order}, aggregate_id=row["id"])
        # One round trip for the order's history, audit and event rows and, last, the reserve hold (its result is
        # the round trip's result): the currency's row, which every order on it updates, stays locked only until
        # the commit right after (docs/architecture.md, "Reserves"). The hold comes after the insert, so a repeated
        # request_id has returned above without holding twice. If it does not fit (other orders took the reserve
        # since the quote), the exception rolls the order back too.
        execute_batch(cur, [
            ("INSERT INTO status_history (order_id, from_status, to_status, action, actor) "
             "VALUES (%s, NULL, 'new', 'create', %s)", (row["id"], actor_name(actor))),
            _audit_statement(actor, "create", row["id"], None, "new", detail={"ip": (actor or {}).get("ip")}),
        ] + event + [catalogue.hold_reserve_statement(direction["currency_out"], amount_out)])
        if cur.fetchone() is None:
            try:
                rules.check_reserve(amount_out, catalogue.available_reserve(cur, direction["currency_out"]),
                                    direction["currency_out"])
            except RuleError as exc:
                raise errors.ValidationFailed(exc.message, exc.fields)
            raise errors.Conflict("the reserve changed meanwhile: try again")
    metrics.ORDER_TRANSITIONS.labels("", "new").inc()
    return order


def _history(db, order_id, to_wire=history_to_wire):
    return [to_wire(h) for h in db.fetchall(
        "SELECT * FROM status_history WHERE order_id = %s ORDER BY id", (order_id,))]


def get_order(db, order_id, with_history=False):
    row = db.fetchone("SELECT * FROM orders WHERE id = %s", (order_id,))
    if row is None:
        raise errors.NotFound("order not found")
    order = order_to_wire(row)
    if with_history:
        order["history"] = _history(db, order_id)
        order["audit"] = [audit_to_wire(a) for a in db.fetchall(
            "SELECT * FROM audit_log WHERE order_id = %s ORDER BY id", (order_id,))]
    return order


def get_order_by_token(db, token, with_history=True):
    row = db.fetchone("SELECT * FROM orders WHERE token = %s AND status <> 'deleted'", (token,))
    if row is None:
        raise errors.NotFound("order not found")
    order = order_to_wire(row)
    if with_history:
        order["history"] = _history(db, row["id"], public_history_to_wire)
    return order


# Filters of the admin list that compare a column with a bound: (filter, column, operator). The same as the CSV
# export's (libs/contracts/reporting.py), so the admin list matches it.
_RANGE_FILTERS = (("updated_from", "updated_at", ">="), ("updated_to", "updated_at", "<"),
                  ("amount_in_min", "amount_in", ">="), ("amount_in_max", "amount_in", "<="),
                  ("amount_out_min", "amount_out", ">="), ("amount_out_max", "amount_out", "<="))


def list_orders(db, filters):
    where, params = [], []
    statuses = filters.get("status")
    if statuses:
        if isinstance(statuses, str):
            statuses = [s for s in statuses.split(",") if s]
        where.append("status = ANY(%s)")
        params.append(list(statuses))
    for key in ("exchange_type", "direction_id", "currency_in", "currency_out", "partner_code", "payment_flag"):
        if filters.get(key) not in (None, ""):
            where.append("%s = %%s" % key)
            params.append(filters[key])
    if filters.get("email"):
        where.append("lower(email) = lower(%s)")
        params.append(filters["email"])
    if filters.get("created_from"):
        where.append("created_at >= %s")
        params.append(filters["created_from"])
    if filters.get("created_to"):
        where.append("created_at < %s")
        params.append(filters["created_to"])
    for key, column, op in _RANGE_FILTERS:
        if filters.get(key) not in (None, ""):
            where.append("%s %s %%s" % (column, op))
            params.append(filters[key])
    if filters.get("q"):
        # the operators' search box: a request id, a reference, a fragment of the e-mail or the recipient, or an
        # amount (given or received)
        q = str(filters["q"]).strip()
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found = ["reference = upper(%s)", "email ILIKE %s", "recipient ILIKE %s"]
        found_params = [q, like, like]
        if q.isdigit() and len(q) <= 18:
            found.append("id = %s")
            found_params.append(int(q))
        try:
            amount = money.parse_amount(q.replace(",", "."))
            found.append("(amount_in = %s OR amount_out = %s)")
            found_params += [amount, amount]
        except money.AmountError:
            pass
        where.append("(" + " OR ".join(found) + ")")
        params.extend(found_params)
    if not filters.get("include_deleted") and not (statuses and "deleted" in statuses):
        where.append("status <> 'deleted'")
    if filters.get("cursor"):
        where.append("id < %s")
        params.append(int(filters["cursor"]))
    limit = max(1, min(int(filters.get("limit") or 50), 500))
    sql = "SELECT * FROM orders" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT %s"
    rows = db.fetchall(sql, params + [limit + 1])
    items = [order_to_wire(r) for r in rows[:limit]]
    next_cursor = str(rows[limit - 1]["id"]) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


def count_by_status(db):
    rows = db.fetchall("SELECT status, count(*) AS n FROM orders GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


# -- transitions -------------------------------------------------------------------------------------------------------
def transition(db, action_name, actor, order_id=None, token=None, note=None, payment_flag=None,
               amount_received=None, extra_detail=None, cur=None):
    """Compare-and-set one transition; NotFound, Conflict (wrong status or lost race) or ValidationFailed.

    Failed staff attempts are audited too (the winner and the loser of a race both appear).
    With `cur`, it runs inside the caller's transaction (payment events: claim + pay + payout in one).
    """
    actor = actor or {"kind": "system", "name": "system"}
    action = rules.ACTIONS[action_name]
    with _transaction(db, cur) as cur:
        if token is not None:
            cur.execute("SELECT * FROM orders WHERE token = %s AND status <> 'deleted' FOR UPDATE", (token,))
        else:
            cur.execute("SELECT * FROM orders WHERE id = %s FOR UPDATE", (order_id,))
        current = cur.fetchone()
        if current is None:
            raise errors.NotFound("order not found")
        try:
            rules.check_action(action_name, current["exchange_type"], actor.get("kind", "system"))
            if current["status"] not in action.from_statuses:
                raise RuleError("order %s is %s: cannot %s" % (current["id"], current["status"], action_name))
            rules.check_not_paid_out_late(action_name, current["payout_late_success_at"])
        except RuleError as exc:
            if actor.get("kind") == "staff":
                _audit(cur, actor, action_name, current["id"], current["status"], action.to_status,
                       outcome="rejected", detail={"reason": exc.message, "note": note})
                cur.connection.commit()
            raise errors.Conflict(exc.message, {"status": [current["status"]]})
        sets = ["status = %(to)s", "version = version + 1", "updated_at = now()"]
        params = {"to": action.to_status, "id": current["id"], "from": current["status"]}
        if action.to_status == "completed":
            sets.append("completed_at = now()")
        if action_name in ("process", "finalize") and note:
            sets.append("notice = %(note)s")
        if action.to_status == "canceled":
            sets.append("cancel_reason = %(note)s")
        if payment_flag is not None or action_name == "pay":
            sets.append("payment_flag = %(flag)s")
        if amount_received is not None:
            sets.append("amount_received = %(received)s")
        # The reserve: held while the order is open, released once (reserve_held back to 0) when it leaves.
        hold = rules.reserve_hold_after(action.to_status, current["amount_out"], current["reserve_held"])
        if hold != current["reserve_held"]:
            sets.append("reserve_held = %(hold)s")
        params.update(note=note, flag=payment_flag, received=amount_received, hold=hold)
        # The row is locked; the status guard keeps this a compare-and-set even without the lock.
        cur.execute("UPDATE orders SET " + ", ".join(sets) +
                    " WHERE id = %(id)s AND status = %(from)s RETURNING *", params)
        row = cur.fetchone()
        if row is None:
            raise errors.Conflict("order changed meanwhile")
        order = order_to_wire(row)
        detail = {"note": note} if note else {}
        if extra_detail:
            detail.update(extra_detail)
        event, _ = outbox.event_statements(SOURCE, events.ORDER_STATUS_CHANGED, {
            "order": order, "from_status": current["status"], "to_status": row["status"],
            "action": action_name, "actor": {k: actor.get(k) for k in ("kind", "name", "role")},
            "note": note}, aggregate_id=row["id"])
        execute_batch(cur, [
            ("INSERT INTO status_history (order_id, from_status, to_status, action, actor, note) "
             "VALUES (%s, %s, %s, %s, %s, %s)",
             (row["id"], current["status"], row["status"], action_name, actor_name(actor), note)),
            _audit_statement(actor, action_name, row["id"], current["status"], row["status"], detail=detail),
        ] + ([catalogue.change_held(row["currency_out"], hold - current["reserve_held"])]
             if hold != current["reserve_held"] else []) + event)
        if row["status"] == "completed" and row["partner_code"]:
            # The referring partner's commission commits with the completion, exactly once (docs/partners.md).
            partners.credit_completed_order(cur, row)
    metrics.ORDER_TRANSITIONS.labels(current["status"], row["status"]).inc()
    return order


def expire_due(db, batch=100):
    """Expire unpaid orders whose window has passed. Works from expires_at in the database, so downtime
    delays expiry but never skips it; SKIP LOCKED lets several instances sweep at once."""
    expired = 0
    while True:
        with db.transaction() as cur:
            cur.execute("SELECT id FROM orders WHERE status = 'new' AND expires_at < now() "
                        "ORDER BY expires_at LIMIT %s FOR UPDATE SKIP LOCKED", (batch,))
            ids = [r["id"] for r in cur.fetchall()]
        for order_id in ids:
            try:
                transition(db, "expire", EXPIRY_TIMER, order_id=order_id)
                expired += 1
            except (errors.Conflict, errors.NotFound):
                pass  # paid or canceled a moment ago: not ours to expire
        if len(ids) < batch:
            return expired


# -- payments events (libs/contracts/payments.py); each in one transaction with its inbox record ---------------------
def apply_payment(db, event_id, consumer, data):
    """payment_received: the order is paid, exact or flagged (partial, over, late: it then waits in `paid`
    for an operator); an exact payment of an `auto` order goes straight on to `payout`, in the same
    transaction. An order that cannot take the payment (canceled, already paid, a manual exchange) answers
    payment_rejected, and payments puts the payment on the operators' unmatched list: it is never lost."""
    payment, order_id, flag = data["payment"], data["order_id"], data.get("flag")
    note = "payment %s of %s %s%s%s" % (
        payment["id"], money.to_str(payment["amount"]), payment["currency"], " (%s)" % flag if flag else "",
        ", assigned by %s" % data["assigned_by"] if data.get("assigned_by") else "")
    detail = {"payment_id": payment["id"], "external_id": payment["external_id"], "flag": flag,
              "on_time": data.get("on_time"), "occurred_at": payment["occurred_at"],
              "assigned_by": data.get("assigned_by")}
    with db.transaction() as cur:
        if not inbox.claim(cur, consumer, event_id):
            return None
        requote_floating(cur, order_id)
        try:
            order = transition(db, "pay", PAYMENTS, order_id=order_id, payment_flag=flag,
                               amount_received=payment["amount"], note=note, extra_detail=detail, cur=cur)
        except (errors.Conflict, errors.NotFound) as exc:
            cur.execute("SELECT status FROM orders WHERE id = %s", (order_id,))
            row = cur.fetchone()
            outbox.write_event(cur, SOURCE, events.PAYMENT_REJECTED, {
                "payment_id": payment["id"], "order_id": order_id, "status": row["status"] if row else None,
                "reason": exc.message}, aggregate_id=order_id)
            return None
        if order["exchange_type"] == "auto" and flag is None:
            order = transition(db, "payout", {"kind": "system", "name": "auto-payout"}, order_id=order_id,
                               note="exact payment: automatic payout", cur=cur)
        return order


def requote_floating(cur, order_id):
    """A floating order about to be paid takes the direction's rate of this moment (docs/rates.md, "Fixed and
    floating"): amount_out scaled by the new rate over the order's own (every percentage fee scales with it),
    rounded down, and what it holds of the reserve with it; noted in its history. A frozen direction has no rate to
    offer: the order keeps its own (and says so). Runs in the payment's transaction, before the `pay` transition,
    only for an order that can be paid."""
    cur.execute("SELECT * FROM orders WHERE id = %s FOR UPDATE", (order_id,))
    order = cur.fetchone()
    if order is None or not order["floating"] or order["status"] not in rules.ACTIONS["pay"].from_statuses:
        return None
    direction = catalogue.direction_for_order(cur, order["direction_id"])
    if direction is None:
        return None
    requote = rules.floating_requote(order, direction)
    if requote is None:
        return None
    amount_out, note = requote
    hold = amount_out if order["reserve_held"] > 0 else order["reserve_held"]
    cur.execute("UPDATE orders SET amount_out = %s, rate_in = %s, rate_out = %s, reserve_held = %s, "
                "updated_at = now() WHERE id = %s",
                (amount_out, direction["rate_in"], direction["rate_out"], hold, order_id))
    statements = [("INSERT INTO status_history (order_id, from_status, to_status, action, actor, note) "
                   "VALUES (%s, %s, %s, 'requote', %s, %s)",
                   (order_id, order["status"], order["status"], actor_name(PAYMENTS), note)),
                  _audit_statement(PAYMENTS, "requote", order_id, order["status"], order["status"], detail={
                      "amount_out_before": money.to_str(order["amount_out"]), "amount_out": money.to_str(amount_out),
                      "rate_before": [money.to_str(order["rate_in"]), money.to_str(order["rate_out"])],
                      "rate": [money.to_str(direction["rate_in"]), money.to_str(direction["rate_out"])]})]
    if hold != order["reserve_held"]:
        statements.append(catalogue.change_held(order["currency_out"], hold - order["reserve_held"]))
    execute_batch(cur, statements)
    return amount_out


def apply_payout_result(db, event_id, consumer, data, sent):
    """payout_sent -> completed; payout_failed -> payout_error (an operator retries, finalizes or cancels)."""
    payout, order_id = data["payout"], data["order_id"]
    action = "payout_sent" if sent else "payout_failed"
    note = ("payout %s sent (%s)" % (payout["idempotency_key"], payout.get("provider_id")) if sent else
            "payout %s failed: %s" % (payout["idempotency_key"], data.get("error") or payout.get("error")))
    detail = {"payout_id": payout["id"], "idempotency_key": payout["idempotency_key"],
              "amount": money.to_str(payout["amount"]), "currency": payout["currency"],
              "to_account": payout["to_account"], "provider_id": payout.get("provider_id")}
    with db.transaction() as cur:
        if not inbox.claim(cur, consumer, event_id):
            return None
        try:
            return transition(db, action, PAYMENTS, order_id=order_id, note=note[:2000], extra_detail=detail,
                              cur=cur)
        except (errors.Conflict, errors.NotFound) as exc:
            # The order is not in `payout` (a repeated announcement): nothing to change, but on the record.
            _audit(cur, PAYMENTS, action, order_id, None, None, outcome="ignored",
                   detail=dict(detail, reason=exc.message))
            return None


def apply_payout_late_success(db, event_id, consumer, data):
    """payout_succeeded_after_resolve of an order's payout: a payout an operator resolved `failed` went out after
    all. The order is flagged (the first provider id is kept) with a status-history note and an audit row, in one
    transaction with the inbox claim; its status does not move (an operator finalizes it), but from now on no
    payout of it is allowed (domain/orders.py check_not_paid_out_late). Every distinct announcement is on the record."""
    order_id = data["order_id"]
    detail = {"payout_id": data["payout_id"], "idempotency_key": data["idempotency_key"],
              "amount": money.to_str(data["amount"]), "currency": data["currency"], "to_account": data["to_account"],
              "provider_id": data.get("provider_id"), "resolved_by": data.get("resolved_by")}
    with db.transaction() as cur:
        if not inbox.claim(cur, consumer, event_id):
            return None
        cur.execute("UPDATE orders SET payout_late_success_at = coalesce(payout_late_success_at, now()), "
                    "payout_late_success_provider_id = coalesce(payout_late_success_provider_id, %s) "
                    "WHERE id = %s RETURNING *", (data.get("provider_id"), order_id))
        row = cur.fetchone()
        if row is None:
            _audit(cur, PAYMENTS, events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, order_id, None, None, outcome="ignored",
                   detail=dict(detail, reason="order not found"))
            return None
        note = rules.late_success_note(data.get("provider_id"), data["amount"], data["currency"], data["payout_id"])
        execute_batch(cur, [
            ("INSERT INTO status_history (order_id, from_status, to_status, action, actor, note) "
             "VALUES (%s, %s, %s, %s, %s, %s)",
             (order_id, row["status"], row["status"], events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, actor_name(PAYMENTS),
              note)),
            _audit_statement(PAYMENTS, events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, order_id, row["status"], row["status"],
                             detail=detail),
        ])
    return order_to_wire(row)


def apply_balance(db, event_id, consumer, data):
    """balance_changed: the currency's reserve follows its payout account's balance (the account it has now: an
    old account's balance is not its reserve). Observations older than the last one are ignored (events may arrive
    out of order); after the account changed the reserve is unknown and any observation of the new one counts."""
    with db.transaction() as cur:
        if not inbox.claim(cur, consumer, event_id):
            return False
        cur.execute("UPDATE currencies SET reserve = %s, reserve_observed_at = %s, updated_at = now() "
                    "WHERE code = %s AND payment_system = %s AND account = %s "
                    "AND (reserve_observed_at IS NULL OR reserve_observed_at <= %s)",
                    (data["balance"], data["observed_at"], data["currency"], data["system"], data["account"],
                     data["observed_at"]))
        if cur.rowcount != 1:
            return False
        # the reserve is the `amount` of the monitors' file (docs/monitors.md)
        publish_directions_changed(cur, directions_of_currency(cur, data["currency"]), "reserve")
        return True


def sms_offer(db):
    """Whether customers may order a completion SMS now (the notifier announces it: SMS on and Twilio configured),
    and its fee: the exchange form offers the option only then."""
    row = db.fetchone("SELECT fee_percent, available FROM sms_fee_setting WHERE id = 1")
    return {"available": bool(row and row["available"]),
            "fee_percent": money.to_str(row["fee_percent"]) if row else "0"}


def apply_sms_fee_setting(db, event_id, consumer, data):
    """settings_changed from the notifier: keep the newest announced customer SMS fee (versions only grow)."""
    with db.transaction() as cur:
        if not inbox.claim(cur, consumer, event_id):
            return False
        cur.execute("UPDATE sms_fee_setting SET fee_percent = %s, available = %s, version = %s, "
                    "updated_at = now() WHERE id = 1 AND version < %s",
                    (money.parse_amount(data["customer_sms_fee"], allow_zero=True),
                     bool(data["customer_sms_available"]), int(data["version"]), int(data["version"])))
        return cur.rowcount == 1


def export_orders(db, after_id=0, limit=500):
    """A page of full snapshots in id order, deleted ones included, each with the last transition's
    from_status and action: what the reporting service needs to rebuild its read model (docs/reporting.md)."""
    limit = max(1, min(int(limit or 500), 1000))
    rows = db.fetchall(
        "SELECT o.*, h.from_status AS previous_status, h.action AS last_action FROM orders o "
        "LEFT JOIN LATERAL (SELECT from_status, action FROM status_history WHERE order_id = o.id "
        "ORDER BY id DESC LIMIT 1) h ON true WHERE o.id > %s ORDER BY o.id LIMIT %s",
        (int(after_id or 0), limit))
    return [dict(order_to_wire(r), previous_status=r["previous_status"], last_action=r["last_action"])
            for r in rows]
