"""Orders storage: every read and write of the orders schema, each write in one transaction with its
status-history row, audit row and outbox event (blueprint §4)."""
import datetime
import json
import re

import psycopg2
from nameko.extensions import DependencyProvider

from libs import config, errors, events, metrics, money, outbox
from libs.db import Database
from services.orders import domain
from services.orders.schemas import audit_to_wire, direction_to_wire, history_to_wire, order_to_wire

SOURCE = events.ORDERS
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PHONE_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")

DIRECTION_SQL = """
SELECT d.*, ci.precision AS precision_in, co.precision AS precision_out, ci.name AS name_in, co.name AS name_out,
       co.reserve AS reserve, ci.payment_system AS pay_system, ci.account AS pay_account,
       ci.active AND co.active AND d.active AS usable
  FROM directions d
  JOIN currencies ci ON ci.code = d.currency_in
  JOIN currencies co ON co.code = d.currency_out
"""


def _actor_name(actor):
    return (actor or {}).get("name") or (actor or {}).get("kind") or "system"


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
        fields = {}
        try:
            direction_id = int(data.get("direction_id"))
        except (TypeError, ValueError):
            direction_id = None
            fields["direction_id"] = ["must be a direction id"]
        try:
            amount_in = money.parse_amount(data.get("amount_in"))
        except money.AmountError as exc:
            amount_in = None
            fields["amount_in"] = [str(exc)]
        email = (data.get("email") or "").strip()
        if not EMAIL_RE.match(email) or len(email) > 254:
            fields["email"] = ["must be an e-mail address"]
        recipient = (data.get("recipient") or "").strip()
        if not recipient or len(recipient) > 200:
            fields["recipient"] = ["must be 1 to 200 characters"]
        phone = (data.get("phone") or "").strip() or None
        if phone is not None and not PHONE_RE.match(phone):
            fields["phone"] = ["must be in international format, e.g. +4915112345678"]
        sms_opt_in = bool(data.get("sms_opt_in"))
        if sms_opt_in and phone is None:
            fields["sms_opt_in"] = ["needs a phone number"]
        partner_code = (data.get("partner_code") or "").strip() or None
        if partner_code is not None and not re.match(r"^[A-Za-z0-9_-]{1,32}$", partner_code):
            fields["partner_code"] = ["must be 1 to 32 letters, digits, - or _"]
        language = data.get("language") or "en"
        if language not in ("en", "ru"):
            fields["language"] = ["must be en or ru"]
        if fields:
            raise errors.ValidationFailed("invalid order", fields)
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
            try:
                amount_out, fee_amount = domain.quote(direction, currencies, amount_in)
            except domain.RuleError as exc:
                raise errors.ValidationFailed(exc.message, exc.fields)
            now = events.utcnow()
            expires_at = now + datetime.timedelta(minutes=direction["payment_window_minutes"])
            row = None
            for _ in range(5):  # a reference collision is astronomically rare; retry with a fresh one
                cur.execute("SAVEPOINT new_order")
                try:
                    cur.execute(
                        """INSERT INTO orders (token, reference, request_id, direction_id, exchange_type,
                               currency_in, currency_out, amount_in, amount_out, rate_in, rate_out, fee,
                               fee_amount, pay_system, pay_account, email, recipient, phone, sms_opt_in,
                               partner_code, language, expires_at, created_at, updated_at)
                           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                                   %s, %s, %s, %s, %s)
                           RETURNING *""",
                        (domain.new_token(), domain.new_reference(), request_id, direction["id"],
                         direction["exchange_type"], direction["currency_in"], direction["currency_out"],
                         amount_in, amount_out, direction["rate_in"], direction["rate_out"], direction["fee"],
                         fee_amount, direction["pay_system"], direction["pay_account"], email, recipient, phone,
                         sms_opt_in, partner_code, language, expires_at, now, now))
                    row = cur.fetchone()
                    break
                except psycopg2.errors.UniqueViolation as exc:
                    cur.execute("ROLLBACK TO SAVEPOINT new_order")
                    if request_id and "request_id" in str(exc):
                        cur.execute("SELECT * FROM orders WHERE request_id = %s", (request_id,))
                        return order_to_wire(cur.fetchone())
            if row is None:
                raise errors.Conflict("could not allocate a payment reference")
            order = order_to_wire(row)
            cur.execute("INSERT INTO status_history (order_id, from_status, to_status, action, actor) "
                        "VALUES (%s, NULL, 'new', 'create', %s)", (row["id"], _actor_name(actor)))
            self._audit(cur, actor, "create", row["id"], None, "new", detail={"ip": (actor or {}).get("ip")})
            outbox.write_event(cur, SOURCE, events.ORDER_CREATED, {"order": order}, aggregate_id=row["id"])
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
                   amount_received=None, extra_detail=None):
        """Compare-and-set one transition; NotFound, Conflict (wrong status or lost race) or ValidationFailed.

        Failed staff attempts are audited too (the winner and the loser of a race both appear).
        """
        actor = actor or {"kind": "system", "name": "system"}
        action = domain.ACTIONS[action_name]
        with self.db.transaction() as cur:
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
            cur.execute("INSERT INTO status_history (order_id, from_status, to_status, action, actor, note) "
                        "VALUES (%s, %s, %s, %s, %s, %s)",
                        (row["id"], current["status"], row["status"], action_name, _actor_name(actor), note))
            detail = {"note": note} if note else {}
            if extra_detail:
                detail.update(extra_detail)
            self._audit(cur, actor, action_name, row["id"], current["status"], row["status"], detail=detail)
            outbox.write_event(cur, SOURCE, events.ORDER_STATUS_CHANGED, {
                "order": order, "from_status": current["status"], "to_status": row["status"],
                "action": action_name, "actor": {k: actor.get(k) for k in ("kind", "name", "role")},
                "note": note}, aggregate_id=row["id"])
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
        actor = actor or {}
        cur.execute(
            "INSERT INTO audit_log (actor, actor_role, actor_ip, action, order_id, from_status, to_status, "
            "outcome, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (_actor_name(actor), actor.get("role"), actor.get("ip"), action, order_id, from_status, to_status,
             outcome, json.dumps(detail or {})))


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
