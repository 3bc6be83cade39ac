"""Orders storage: every read and write of the orders schema, each write in one transaction with its
status-history row, audit row and outbox event (blueprint §4)."""
import contextlib
import datetime
import re

from marshmallow import ValidationError
from nameko.extensions import DependencyProvider

from libs import config, errors, inbox, metrics, money, outbox
from libs.audit import actor_name, audit_statement
from libs.contracts import events
from libs.contracts.orders import OrderCreateCallSchema
from libs.db import Database, execute_batch
from services.orders import domain, partners
from services.orders.schemas import audit_to_wire, direction_to_wire, history_to_wire, order_to_wire

SOURCE = events.ORDERS
_CREATE_ORDER = OrderCreateCallSchema()

DIRECTION_SQL = """
SELECT d.*, ci.precision AS precision_in, co.precision AS precision_out, ci.name AS name_in, co.name AS name_out,
       co.reserve AS reserve, ci.payment_system AS pay_system, ci.account AS pay_account,
       ci.active AND co.active AND d.active AS usable
  FROM directions d
  JOIN currencies ci ON ci.code = d.currency_in
  JOIN currencies co ON co.code = d.currency_out
"""


class OrderStore:
    def __init__(self, db):
        self.db = db

    # -- directions and currencies ---------------------------------------------------------------------------
    def list_directions(self, active_only=True):
        sql = DIRECTION_SQL + (" WHERE ci.active AND co.active AND d.active" if active_only else "") + \
            " ORDER BY d.id"
        return [direction_to_wire(r) for r in self.db.fetchall(sql)]

    def get_direction(self, direction_id):
        row = self.db.fetchone(DIRECTION_SQL + " WHERE d.id = %s", (direction_id,))
        if row is None:
            raise errors.NotFound("direction not found")
        return direction_to_wire(row)

    def list_currencies(self):
        rows = self.db.fetchall("SELECT * FROM currencies ORDER BY code")
        return [{"code": r["code"], "name": r["name"], "precision": r["precision"],
                 "payment_system": r["payment_system"], "account": r["account"],
                 "reserve": money.to_str(r["reserve"]), "active": r["active"]} for r in rows]

    def set_reserve(self, code, reserve):
        with self.db.transaction() as cur:
            cur.execute("UPDATE currencies SET reserve = %s, updated_at = now() WHERE code = %s",
                        (reserve, code))
            return cur.rowcount == 1

    # -- orders ----------------------------------------------------------------------------------------------
    def create_order(self, data, actor=None):
        # The same schema the gateway loaded the request with (libs/contracts/orders.py).
        try:
            data = _CREATE_ORDER.load(dict(data or {}))
        except ValidationError as exc:
            raise errors.ValidationFailed("invalid order", exc.messages)
        direction_id = data["direction_id"]
        amount_in = money.parse_amount(data["amount_in"])
        email, recipient, phone = data["email"], data["recipient"], data.get("phone") or None
        sms_opt_in, partner_code, language = data["sms_opt_in"], data.get("partner_code") or None, data["language"]
        request_id = data.get("request_id")

        with self.db.transaction() as cur:
            if request_id:
                cur.execute("SELECT * FROM orders WHERE request_id = %s", (request_id,))
                existing = cur.fetchone()
                if existing:
                    return order_to_wire(existing)
            cur.execute(DIRECTION_SQL + " WHERE d.id = %s", (direction_id,))
            direction = cur.fetchone()
            if direction is None or not direction["usable"]:
                raise errors.ValidationFailed("unknown direction",
                                              {"direction_id": ["no such active direction"]})
            currencies = {
                direction["currency_in"]: {"precision": direction["precision_in"], "reserve": None},
                direction["currency_out"]: {"precision": direction["precision_out"],
                                            "reserve": direction["reserve"]},
            }
            sms_percent = 0
            if sms_opt_in:
                cur.execute("SELECT fee_percent, available FROM sms_fee_setting WHERE id = 1")
                setting = cur.fetchone()
                if setting and setting["available"]:
                    sms_percent = setting["fee_percent"]
            try:
                amount_out, fee_amount = domain.quote(direction, currencies, amount_in, sms_percent)
            except domain.RuleError as exc:
                raise errors.ValidationFailed(exc.message, exc.fields)
            sms_fee = domain.sms_fee_amount(direction, amount_in, sms_percent, direction["precision_out"])
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
                           partner_code, language, expires_at, created_at, updated_at)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                               %s, %s, %s, %s, %s)
                       ON CONFLICT DO NOTHING RETURNING *""",
                    (domain.new_token(), domain.new_reference(), request_id, direction["id"],
                     direction["exchange_type"], direction["currency_in"], direction["currency_out"],
                     amount_in, amount_out, direction["rate_in"], direction["rate_out"], direction["fee"],
                     fee_amount, sms_fee, direction["pay_system"], direction["pay_account"], email, recipient,
                     phone,
                     sms_opt_in, partner_code, language, expires_at, now, now))
                row = cur.fetchone()
                if row is not None:
                    break
                if request_id:
                    cur.execute("SELECT * FROM orders WHERE request_id = %s", (request_id,))
                    existing = cur.fetchone()
                    if existing:
                        return order_to_wire(existing)
            if row is None:
                raise errors.Conflict("could not allocate a payment reference")
            order = order_to_wire(row)
            event, _ = outbox.event_statements(SOURCE, events.ORDER_CREATED, {"order": order},
                                               aggregate_id=row["id"])
            execute_batch(cur, [
                ("INSERT INTO status_history (order_id, from_status, to_status, action, actor) "
                 "VALUES (%s, NULL, 'new', 'create', %s)", (row["id"], actor_name(actor))),
                self._audit_statement(actor, "create", row["id"], None, "new",
                                      detail={"ip": (actor or {}).get("ip")}),
            ] + event)
        metrics.ORDER_TRANSITIONS.labels("", "new").inc()
        return order

    def get_order(self, order_id, with_history=False):
        row = self.db.fetchone("SELECT * FROM orders WHERE id = %s", (order_id,))
        if row is None:
            raise errors.NotFound("order not found")
        order = order_to_wire(row)
        if with_history:
            order["history"] = [history_to_wire(h) for h in self.db.fetchall(
                "SELECT * FROM status_history WHERE order_id = %s ORDER BY id", (order_id,))]
            order["audit"] = [audit_to_wire(a) for a in self.db.fetchall(
                "SELECT * FROM audit_log WHERE order_id = %s ORDER BY id", (order_id,))]
        return order

    def get_order_by_token(self, token, with_history=True):
        row = self.db.fetchone("SELECT * FROM orders WHERE token = %s AND status <> 'deleted'", (token,))
        if row is None:
            raise errors.NotFound("order not found")
        order = order_to_wire(row)
        if with_history:
            order["history"] = [history_to_wire(h) for h in self.db.fetchall(
                "SELECT * FROM status_history WHERE order_id = %s ORDER BY id", (row["id"],))]
        return order

    def get_order_by_reference(self, reference):
        row = self.db.fetchone("SELECT * FROM orders WHERE reference = %s", (reference,))
        return order_to_wire(row) if row else None

    def list_orders(self, filters):
        where, params = [], []
        statuses = filters.get("status")
        if statuses:
            if isinstance(statuses, str):
                statuses = [s for s in statuses.split(",") if s]
            where.append("status = ANY(%s)")
            params.append(list(statuses))
        for key in ("exchange_type", "direction_id", "currency_in", "currency_out", "partner_code",
                    "payment_flag"):
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
        # the rest of the CSV export's filters (libs/contracts/reporting.py), so the admin list matches it
        for key, column, op in (("updated_from", "updated_at", ">="), ("updated_to", "updated_at", "<"),
                                ("amount_in_min", "amount_in", ">="), ("amount_in_max", "amount_in", "<="),
                                ("amount_out_min", "amount_out", ">="), ("amount_out_max", "amount_out", "<=")):
            if filters.get(key) not in (None, ""):
                where.append("%s %s %%s" % (column, op))
                params.append(filters[key])
        if not filters.get("include_deleted") and not (statuses and "deleted" in statuses):
            where.append("status <> 'deleted'")
        if filters.get("cursor"):
            where.append("id < %s")
            params.append(int(filters["cursor"]))
        limit = max(1, min(int(filters.get("limit") or 50), 500))
        sql = "SELECT * FROM orders" + (" WHERE " + " AND ".join(where) if where else "") + \
            " ORDER BY id DESC LIMIT %s"
        rows = self.db.fetchall(sql, params + [limit + 1])
        items = [order_to_wire(r) for r in rows[:limit]]
        next_cursor = str(rows[limit - 1]["id"]) if len(rows) > limit else None
        return {"items": items, "next_cursor": next_cursor}

    def count_by_status(self):
        rows = self.db.fetchall("SELECT status, count(*) AS n FROM orders GROUP BY status")
        return {r["status"]: r["n"] for r in rows}

    # -- transitions -----------------------------------------------------------------------------------------
    def transition(self, action_name, actor, order_id=None, token=None, note=None, payment_flag=None,
                   amount_received=None, extra_detail=None, cur=None):
        """Compare-and-set one transition; NotFound, Conflict (wrong status or lost race) or ValidationFailed.

        Failed staff attempts are audited too (the winner and the loser of a race both appear).
        With `cur`, it runs inside the caller's transaction (payment events: claim + pay + payout in one).
        """
        actor = actor or {"kind": "system", "name": "system"}
        action = domain.ACTIONS[action_name]
        with self._transaction(cur) as cur:
            if token is not None:
                cur.execute("SELECT * FROM orders WHERE token = %s AND status <> 'deleted' FOR UPDATE", (token,))
            else:
                cur.execute("SELECT * FROM orders WHERE id = %s FOR UPDATE", (order_id,))
            current = cur.fetchone()
            if current is None:
                raise errors.NotFound("order not found")
            try:
                domain.check_action(action_name, current["exchange_type"], actor.get("kind", "system"))
                if current["status"] not in action.from_statuses:
                    raise domain.RuleError("order %s is %s: cannot %s" % (
                        current["id"], current["status"], action_name))
            except domain.RuleError as exc:
                if actor.get("kind") == "staff":
                    self._audit(cur, actor, action_name, current["id"], current["status"], action.to_status,
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
            params.update(note=note, flag=payment_flag, received=amount_received)
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
                self._audit_statement(actor, action_name, row["id"], current["status"], row["status"],
                                      detail=detail),
            ] + event)
            if row["status"] == "completed" and row["partner_code"]:
                # The referring partner's commission commits with the completion, exactly once (issue 7).
                partners.credit_completed_order(cur, row)
        metrics.ORDER_TRANSITIONS.labels(current["status"], row["status"]).inc()
        return order

    def expire_due(self, batch=100):
        """Expire unpaid orders whose window has passed. Works from expires_at in the database, so downtime
        delays expiry but never skips it; SKIP LOCKED lets several instances sweep at once."""
        expired = 0
        while True:
            with self.db.transaction() as cur:
                cur.execute("SELECT id FROM orders WHERE status = 'new' AND expires_at < now() "
                            "ORDER BY expires_at LIMIT %s FOR UPDATE SKIP LOCKED", (batch,))
                ids = [r["id"] for r in cur.fetchall()]
            for order_id in ids:
                try:
                    self.transition("expire", {"kind": "system", "name": "expiry-timer"}, order_id=order_id)
                    expired += 1
                except (errors.Conflict, errors.NotFound):
                    pass  # paid or canceled a moment ago: not ours to expire
            if len(ids) < batch:
                return expired

    def audit(self, actor, action, order_id=None, detail=None, outcome="ok"):
        with self.db.transaction() as cur:
            self._audit(cur, actor, action, order_id, None, None, detail=detail, outcome=outcome)

    def _audit(self, cur, actor, action, order_id, from_status, to_status, outcome="ok", detail=None):
        cur.execute(*self._audit_statement(actor, action, order_id, from_status, to_status, outcome, detail))

    @staticmethod
    def _audit_statement(actor, action, order_id, from_status, to_status, outcome="ok", detail=None):
        return audit_statement(actor, action, outcome, detail, order_id=order_id, from_status=from_status,
                               to_status=to_status)

    # -- directions and currencies management (admin pages, issue 6); every change audited -----------------------
    DIRECTION_FIELDS = ("rate_in", "rate_out", "fee", "min_amount", "max_amount", "payment_window_minutes", "active")
    CURRENCY_FIELDS = ("name", "reserve", "active", "account", "payment_system")

    @staticmethod
    def _catalog_values(data, allowed, fields):
        """Validate the changeable fields of a direction or currency; amounts are Decimal from strings."""
        out = {}
        for key, value in data.items():
            if key not in allowed:
                fields.setdefault(key, []).append("cannot be changed here")
                continue
            try:
                if key in ("rate_in", "rate_out", "min_amount", "max_amount"):
                    out[key] = money.parse_amount(value)
                elif key in ("fee", "reserve"):
                    out[key] = money.parse_amount(value, allow_zero=True)
                    if key == "fee" and out[key] >= 100:
                        raise money.AmountError("must be below 100 (percent)")
                elif key == "payment_window_minutes":
                    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10080:
                        raise money.AmountError("must be 1 to 10080 minutes")
                    out[key] = value
                elif key == "active":
                    if not isinstance(value, bool):
                        raise money.AmountError("must be true or false")
                    out[key] = value
                else:
                    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 100:
                        raise money.AmountError("must be 1 to 100 characters")
                    out[key] = value.strip()
            except money.AmountError as exc:
                fields.setdefault(key, []).append(str(exc))
        return out

    @staticmethod
    def _wire_values(values):
        return {k: (money.to_str(v) if isinstance(v, money.Decimal) else v) for k, v in values.items()}

    def create_direction(self, data, actor):
        fields = {}
        data = dict(data or {})
        cin, cout, kind = data.pop("currency_in", None), data.pop("currency_out", None), data.pop("exchange_type", None)
        if kind not in domain.EXCHANGE_TYPES:
            fields["exchange_type"] = ["must be one of %s" % ", ".join(domain.EXCHANGE_TYPES)]
        if not cin or cin == cout:
            fields["currency_out"] = ["must differ from currency_in"]
        values = self._catalog_values(data, self.DIRECTION_FIELDS, fields)
        for key in ("rate_in", "rate_out", "min_amount", "max_amount"):
            if key not in values and key not in fields:
                fields[key] = ["required"]
        if "min_amount" in values and "max_amount" in values and values["max_amount"] < values["min_amount"]:
            fields["max_amount"] = ["must be at least min_amount"]
        if fields:
            raise errors.ValidationFailed("invalid direction", fields)
        with self.db.transaction() as cur:
            cur.execute("SELECT code FROM currencies WHERE code = ANY(%s)", ([cin, cout],))
            known = {r["code"] for r in cur.fetchall()}
            missing = {k: ["unknown currency"] for k, c in (("currency_in", cin), ("currency_out", cout))
                       if c not in known}
            if missing:
                raise errors.ValidationFailed("unknown currency", missing)
            cur.execute(
                "INSERT INTO directions (currency_in, currency_out, exchange_type, rate_in, rate_out, fee, min_amount, "
                "max_amount, payment_window_minutes, active) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (currency_in, currency_out, exchange_type) DO NOTHING RETURNING id",
                (cin, cout, kind, values["rate_in"], values["rate_out"], values.get("fee", 0), values["min_amount"],
                 values["max_amount"], values.get("payment_window_minutes", 30), values.get("active", True)))
            row = cur.fetchone()
            if row is None:
                raise errors.Conflict("this direction exists already")
            detail = dict(self._wire_values(values), currency_in=cin, currency_out=cout, exchange_type=kind,
                          direction_id=row["id"])
            self._audit(cur, actor, "direction_create", None, None, None, detail=detail)
        return self.get_direction(row["id"])

    def update_direction(self, direction_id, changes, actor):
        fields = {}
        values = self._catalog_values(changes or {}, self.DIRECTION_FIELDS, fields)
        if fields:
            raise errors.ValidationFailed("invalid direction", fields)
        if not values:
            return self.get_direction(direction_id)
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM directions WHERE id = %s FOR UPDATE", (direction_id,))
            before = cur.fetchone()
            if before is None:
                raise errors.NotFound("direction not found")
            lo, hi = values.get("min_amount", before["min_amount"]), values.get("max_amount", before["max_amount"])
            if hi < lo:
                raise errors.ValidationFailed("invalid direction", {"max_amount": ["must be at least min_amount"]})
            cur.execute("UPDATE directions SET " + ", ".join("%s = %%(%s)s" % (k, k) for k in values) +
                        ", updated_at = now() WHERE id = %(id)s", dict(values, id=direction_id))
            self._audit(cur, actor, "direction_update", None, None, None, detail={
                "direction_id": direction_id, "changes": self._wire_values(values),
                "before": self._wire_values({k: before[k] for k in values})})
        return self.get_direction(direction_id)

    def create_currency(self, data, actor):
        data = dict(data or {})
        fields = {}
        code = data.pop("code", None)
        precision = data.pop("precision", None)
        if not isinstance(code, str) or not re.match(r"^[A-Z0-9]{2,16}$", code):
            fields["code"] = ["2 to 16 capital letters or digits"]
        if isinstance(precision, bool) or not isinstance(precision, int) or not 0 <= precision <= 18:
            fields["precision"] = ["0 to 18"]
        values = self._catalog_values(data, self.CURRENCY_FIELDS, fields)
        for key in ("name", "account", "payment_system"):
            if key not in values and key not in fields:
                fields[key] = ["required"]
        if fields:
            raise errors.ValidationFailed("invalid currency", fields)
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO currencies (code, name, precision, payment_system, account, reserve, active) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (code) DO NOTHING RETURNING code",
                        (code, values["name"], precision, values["payment_system"], values["account"],
                         values.get("reserve", 0), values.get("active", True)))
            if cur.fetchone() is None:
                raise errors.Conflict("this currency exists already")
            self._audit(cur, actor, "currency_create", None, None, None,
                        detail=dict(self._wire_values(values), code=code, precision=precision))
        return next(c for c in self.list_currencies() if c["code"] == code)

    def update_currency(self, code, changes, actor):
        fields = {}
        values = self._catalog_values(changes or {}, self.CURRENCY_FIELDS, fields)
        if fields:
            raise errors.ValidationFailed("invalid currency", fields)
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM currencies WHERE code = %s FOR UPDATE", (code,))
            before = cur.fetchone()
            if before is None:
                raise errors.NotFound("currency not found")
            if values:
                cur.execute("UPDATE currencies SET " + ", ".join("%s = %%(%s)s" % (k, k) for k in values) +
                            ", updated_at = now() WHERE code = %(code)s", dict(values, code=code))
                self._audit(cur, actor, "currency_update", None, None, None, detail={
                    "code": code, "changes": self._wire_values(values),
                    "before": self._wire_values({k: before[k] for k in values})})
        return next(c for c in self.list_currencies() if c["code"] == code)


    # -- payments events (libs/contracts/payments.py); each in one transaction with its inbox record ---------
    def _transaction(self, cur=None):
        """The caller's transaction if it passes a cursor, else a new one."""
        if cur is not None:
            return contextlib.nullcontext(cur)
        return self.db.transaction()

    def apply_payment(self, event_id, consumer, data):
        """payment_received: the order is paid, exact or flagged (partial, over, late: it then waits in `paid`
        for an operator); an exact payment of an `auto` order goes straight on to `payout`, in the same
        transaction. An order that cannot take the payment (canceled, already paid, a manual exchange) answers
        payment_rejected, and payments puts the payment on the operators' unmatched list: it is never lost."""
        payment, order_id, flag = data["payment"], data["order_id"], data.get("flag")
        actor = {"kind": "system", "name": "payments"}
        note = "payment %s of %s %s%s%s" % (
            payment["id"], money.to_str(payment["amount"]), payment["currency"], " (%s)" % flag if flag else "",
            ", assigned by %s" % data["assigned_by"] if data.get("assigned_by") else "")
        detail = {"payment_id": payment["id"], "external_id": payment["external_id"], "flag": flag,
                  "on_time": data.get("on_time"), "occurred_at": payment["occurred_at"],
                  "assigned_by": data.get("assigned_by")}
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, event_id):
                return None
            try:
                order = self.transition("pay", actor, order_id=order_id, payment_flag=flag,
                                        amount_received=payment["amount"], note=note, extra_detail=detail, cur=cur)
            except (errors.Conflict, errors.NotFound) as exc:
                cur.execute("SELECT status FROM orders WHERE id = %s", (order_id,))
                row = cur.fetchone()
                outbox.write_event(cur, SOURCE, events.PAYMENT_REJECTED, {
                    "payment_id": payment["id"], "order_id": order_id, "status": row["status"] if row else None,
                    "reason": exc.message}, aggregate_id=order_id)
                return None
            if order["exchange_type"] == "auto" and flag is None:
                order = self.transition("payout", {"kind": "system", "name": "auto-payout"}, order_id=order_id,
                                        note="exact payment: automatic payout", cur=cur)
            return order

    def apply_payout_result(self, event_id, consumer, data, sent):
        """payout_sent -> completed; payout_failed -> payout_error (an operator retries, finalizes or cancels)."""
        payout, order_id = data["payout"], data["order_id"]
        action = "payout_sent" if sent else "payout_failed"
        note = ("payout %s sent (%s)" % (payout["idempotency_key"], payout.get("provider_id")) if sent else
                "payout %s failed: %s" % (payout["idempotency_key"], data.get("error") or payout.get("error")))
        detail = {"payout_id": payout["id"], "idempotency_key": payout["idempotency_key"],
                  "amount": money.to_str(payout["amount"]), "currency": payout["currency"],
                  "to_account": payout["to_account"], "provider_id": payout.get("provider_id")}
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, event_id):
                return None
            try:
                return self.transition(action, {"kind": "system", "name": "payments"}, order_id=order_id,
                                       note=note[:2000], extra_detail=detail, cur=cur)
            except (errors.Conflict, errors.NotFound) as exc:
                # The order is not in `payout` (a repeated announcement): nothing to change, but on the record.
                self._audit(cur, {"kind": "system", "name": "payments"}, action, order_id, None, None,
                            outcome="ignored", detail=dict(detail, reason=exc.message))
                return None

    def apply_balance(self, event_id, consumer, data):
        """balance_changed: the currency's reserve follows its payout account's balance. Observations older than
        the last change are ignored (events may arrive out of order)."""
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, event_id):
                return False
            cur.execute("UPDATE currencies SET reserve = %s, updated_at = %s WHERE code = %s "
                        "AND payment_system = %s AND account = %s AND updated_at <= %s",
                        (data["balance"], data["observed_at"], data["currency"], data["system"], data["account"],
                         data["observed_at"]))
            return cur.rowcount == 1

    def apply_sms_fee_setting(self, event_id, consumer, data):
        """settings_changed from the notifier: keep the newest announced customer SMS fee (versions only grow)."""
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, event_id):
                return False
            cur.execute("UPDATE sms_fee_setting SET fee_percent = %s, available = %s, version = %s, "
                        "updated_at = now() WHERE id = 1 AND version < %s",
                        (money.parse_amount(data["customer_sms_fee"], allow_zero=True),
                         bool(data["customer_sms_available"]), int(data["version"]), int(data["version"])))
            return cur.rowcount == 1

    def export_orders(self, after_id=0, limit=500):
        """A page of full snapshots in id order, deleted ones included, each with the last transition's
        from_status and action: what the reporting service needs to rebuild its read model (docs/reporting.md)."""
        limit = max(1, min(int(limit or 500), 1000))
        rows = self.db.fetchall(
            "SELECT o.*, h.from_status AS previous_status, h.action AS last_action FROM orders o "
            "LEFT JOIN LATERAL (SELECT from_status, action FROM status_history WHERE order_id = o.id "
            "ORDER BY id DESC LIMIT 1) h ON true WHERE o.id > %s ORDER BY o.id LIMIT %s",
            (int(after_id or 0), limit))
        return [dict(order_to_wire(r), previous_status=r["previous_status"], last_action=r["last_action"])
                for r in rows]


class OrderStoreProvider(DependencyProvider):
    def setup(self):
        cfg = self.container.config
        self.database = Database(url=cfg.get("DATABASE_URL") or config.database_url(), schema="orders",
                                 maxconn=int(cfg.get("DB_POOL_SIZE", int(cfg.get("max_workers", 10)) + 2)),
                                 application_name="orders")
        self.store = OrderStore(self.database)

    def stop(self):
        self.database.close()

    def kill(self):
        self.database.close()

    def get_dependency(self, worker_ctx):
        return self.store
