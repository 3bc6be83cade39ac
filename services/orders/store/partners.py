"""The partner programme (docs/partners.md): partners, clicks, the ledger, commission rules, withdrawals.

What keeps money right here:
- `credit_completed_order(cur, order)` runs INSIDE the transaction that moves an order to `completed`
  (store/orders.py transition calls it), so the credit, the order's completion and the `partner_credited` event
  commit together or not at all; `partner_ledger.order_id` is UNIQUE, so an order is credited at most once whatever
  runs twice.
- The ledger is append-only and its trigger computes each row's running balance from `partner_balances` under a
  lock of the partner's row, with CHECK (balance_after >= 0): a withdrawal that would overdraw fails in the
  database itself. Every writer here takes that lock BEFORE its insert, so ledger ids follow the lock order as well
  (migrations/0007_partner_balances.sql says what went wrong when they did not).
"""
import logging

import psycopg2

from libs import errors, inbox, money, outbox
from libs.audit import actor_name, write_audit
from libs.contracts import events
from services.orders.domain import RuleError, accounts as account_rules, check_same_request, partners as rules, \
    request_hash
from services.orders.store.accounts import write_notice
from services.orders.schemas import (admin_partner_to_wire, commission_to_wire, daily_clicks_to_wire,
                                     daily_earnings_to_wire, ledger_to_wire, partner_to_wire, plain, plain_values,
                                     referred_order_to_wire, withdrawal_to_wire)

log = logging.getLogger(__name__)

SOURCE = events.ORDERS
PAYMENTS = {"name": "payments", "kind": "system"}


def _audit(cur, actor, action, detail=None, outcome="ok"):
    # commission changes and approved withdrawals also alert every admin (libs/contracts/security.py)
    write_audit(cur, actor, action, outcome, detail, alert_source=SOURCE, order_id=None)


def _customer(account_id):
    return {"name": "account:%s" % account_id, "kind": "customer"}


def _validation(exc):
    return errors.ValidationFailed(exc.message, exc.fields)


def _rule(percent, base, source):
    return rules.Rule(percent, base, source) if percent is not None else None


def _page(rows, limit, wire):
    return {"items": [wire(r) for r in rows[:limit]],
            "next_cursor": str(rows[limit - 1]["id"]) if len(rows) > limit else None}


# -- the credit, inside the order's completion -------------------------------------------------------------------------
CREDIT_LOOKUP = """
SELECT p.id, p.account_id, p.code, p.active, p.percent, p.base, a.email, a.language,
       s.percent AS global_percent, s.base AS global_base,
       dc.percent AS direction_percent, dc.base AS direction_base, c.precision
  FROM partners p
  JOIN accounts a ON a.id = p.account_id
  CROSS JOIN commission_settings s
  LEFT JOIN direction_commissions dc ON dc.direction_id = %(direction_id)s
  JOIN currencies c ON c.code = %(currency)s
 WHERE p.code = %(code)s
   FOR UPDATE OF p
"""


def credit_completed_order(cur, order):
    """Credit the referring partner for an order that has just become `completed`, in the caller's transaction.

    `order` is the orders row (Decimals). Returns the ledger row, or None: no or unknown code, partner switched
    off, the partner's own order, a zero commission, or already credited (UNIQUE order_id). The lookup locks the
    partner's row, before the ledger insert."""
    code = rules.normalise_code(order.get("partner_code"))
    if code is None:
        return None
    cur.execute(CREDIT_LOOKUP, {"direction_id": order["direction_id"], "currency": order["currency_out"],
                                "code": code})
    partner = cur.fetchone()
    if partner is None or not partner["active"]:
        return None
    if rules.is_self_referral(partner["account_id"], partner["email"], order["email"]):
        log.info("order %s: partner %s referred their own order, no commission", order["id"], partner["code"])
        return None
    rule = rules.applicable_rule(_rule(partner["global_percent"], partner["global_base"], "global"),
                                 _rule(partner["percent"], partner["base"], "partner"),
                                 _rule(partner["direction_percent"], partner["direction_base"], "direction"))
    amount, base_value = rules.commission(order, rule, partner["precision"])
    if amount <= 0:
        return None
    cur.execute("INSERT INTO partner_ledger (partner_id, currency, kind, amount, balance_after, order_id, percent, "
                "base, base_amount) VALUES (%s, %s, 'credit', %s, 0, %s, %s, %s, %s) "
                "ON CONFLICT (order_id) DO NOTHING RETURNING *",
                (partner["id"], order["currency_out"], amount, order["id"], rule.percent, rule.base, base_value))
    entry = cur.fetchone()
    if entry is None:
        return None
    outbox.write_event(cur, SOURCE, events.PARTNER_CREDITED, {
        "partner_account_id": partner["account_id"], "partner_id": partner["id"], "partner_code": partner["code"],
        "order_id": order["id"], "amount": money.to_str(amount), "currency": order["currency_out"],
        "balance": money.to_str(entry["balance_after"]), "percent": money.to_str(rule.percent),
        "base": rule.base, "rule": rule.source, "language": partner["language"], "email": partner["email"],
    }, aggregate_id=order["id"])
    return entry


# -- the partner's side ------------------------------------------------------------------------------------------------
def become_partner(db, account_id):
    """(partner, created): any confirmed account may become a partner; a second call returns the same partner."""
    with db.transaction() as cur:
        cur.execute("SELECT * FROM accounts WHERE id = %s FOR UPDATE", (account_id,))
        account = cur.fetchone()
        if account is None or account["email_confirmed_at"] is None:
            raise errors.Forbidden("confirm your e-mail first")
        for _ in range(10):
            cur.execute("INSERT INTO partners (account_id, code) VALUES (%s, %s) ON CONFLICT DO NOTHING "
                        "RETURNING *", (account_id, rules.new_code()))
            created = cur.fetchone()
            if created:
                _audit(cur, _customer(account_id), "partner_join", {"partner_id": created["id"],
                                                                    "code": created["code"]})
                return partner_to_wire(created), True
            cur.execute("SELECT * FROM partners WHERE account_id = %s", (account_id,))
            existing = cur.fetchone()
            if existing:
                return partner_to_wire(existing), False
            # else: the random code was taken; draw another
    raise errors.Conflict("could not allocate a referral code")


def _partner_of(db, account_id, cur=None, lock=False):
    sql = "SELECT * FROM partners WHERE account_id = %s" + (" FOR UPDATE" if lock else "")
    if cur is None:
        row = db.fetchone(sql, (account_id,))
    else:
        cur.execute(sql, (account_id,))
        row = cur.fetchone()
    if row is None:
        raise errors.NotFound("not a partner yet: POST /api/v1/partner to become one")
    return row


def count_click(db, code):
    """A visit through /?ref=CODE. True if the code belongs to an active partner (then the gateway keeps it
    in the visitor's cookie)."""
    code = rules.normalise_code(code)
    if code is None:
        return False
    with db.transaction() as cur:
        cur.execute("INSERT INTO partner_clicks (partner_id) SELECT id FROM partners WHERE code = %s AND active "
                    "RETURNING id", (code,))
        return cur.fetchone() is not None


def _lock_partner(cur, partner_id):
    """The partner's row lock, taken before any ledger insert: one writer per partner, ids in lock order."""
    cur.execute("SELECT id FROM partners WHERE id = %s FOR UPDATE", (partner_id,))


def _balance(cur, partner_id, currency):
    cur.execute("SELECT balance FROM partner_balances WHERE partner_id = %s AND currency = %s",
                (partner_id, currency))
    row = cur.fetchone()
    return row["balance"] if row else money.Decimal(0)


def balances(db, partner_id):
    """Per currency: the balance and what waits in open withdrawal requests."""
    rows = db.fetchall("SELECT currency, balance AS balance_after FROM partner_balances WHERE partner_id = %s "
                       "ORDER BY currency", (partner_id,))
    pending = {r["currency"]: r["amount"] for r in db.fetchall(
        "SELECT currency, sum(amount) AS amount FROM partner_withdrawals WHERE partner_id = %s "
        "AND status = 'requested' GROUP BY currency", (partner_id,))}
    earned = {r["currency"]: r["amount"] for r in db.fetchall(
        "SELECT currency, sum(amount) AS amount FROM partner_ledger WHERE partner_id = %s AND kind = 'credit' "
        "GROUP BY currency", (partner_id,))}
    return [{"currency": r["currency"], "balance": money.to_str(r["balance_after"]),
             "pending_withdrawals": money.to_str(pending.get(r["currency"], money.Decimal(0))),
             "earned": money.to_str(earned.get(r["currency"], money.Decimal(0)))} for r in rows]


def partner_overview(db, account_id, days=90):
    """The partner cabinet: code, balances, clicks, referred orders and their statuses, earnings by day,
    withdrawals, the minimum withdrawal."""
    partner = _partner_of(db, account_id)
    pid = partner["id"]
    clicks = db.fetchone("SELECT count(*) AS n FROM partner_clicks WHERE partner_id = %s", (pid,))["n"]
    clicks_by_day = [daily_clicks_to_wire(r) for r in db.fetchall(
        "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM partner_clicks "
        "WHERE partner_id = %s AND created_at > now() - make_interval(days => %s) GROUP BY 1 ORDER BY 1",
        (pid, days))]
    by_status = {r["status"]: r["n"] for r in db.fetchall(
        "SELECT status, count(*) AS n FROM orders WHERE upper(partner_code) = %s GROUP BY status",
        (partner["code"],))}
    referred = [referred_order_to_wire(r) for r in db.fetchall(
        "SELECT o.id, o.status, o.currency_in, o.amount_in, o.currency_out, o.created_at, o.completed_at, "
        "       l.amount AS commission "
        "  FROM orders o LEFT JOIN partner_ledger l ON l.order_id = o.id AND l.partner_id = %s "
        " WHERE upper(o.partner_code) = %s AND o.status <> 'deleted' ORDER BY o.id DESC LIMIT 100",
        (pid, partner["code"]))]
    earnings = [daily_earnings_to_wire(r) for r in db.fetchall(
        "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, currency, sum(amount) AS amount, count(*) AS n "
        "  FROM partner_ledger WHERE partner_id = %s AND kind = 'credit' "
        "   AND created_at > now() - make_interval(days => %s) GROUP BY 1, 2 ORDER BY 1, 2", (pid, days))]
    withdrawals = [withdrawal_to_wire(r) for r in db.fetchall(
        "SELECT w.*, " + DESTINATION_CONFIRMED + " AS destination_confirmed FROM partner_withdrawals w "
        "WHERE partner_id = %s ORDER BY id DESC LIMIT 100", (pid,))]
    settings = db.fetchone("SELECT min_withdrawal FROM commission_settings WHERE id = 1")
    return {"partner": partner_to_wire(partner), "code": partner["code"], "balances": balances(db, pid),
            "stats": {"clicks": clicks, "clicks_by_day": clicks_by_day, "orders_by_status": by_status,
                      "referred_orders": sum(by_status.values()), "earnings_by_day": earnings},
            "referred_orders": referred, "withdrawals": withdrawals,
            "min_withdrawal": money.to_str(settings["min_withdrawal"])}


def ledger(db, partner_id, limit=200, cursor=None):
    params = [partner_id]
    where = ""
    if cursor:
        where = " AND id < %s"
        params.append(int(cursor))
    limit = max(1, min(int(limit or 200), 500))
    rows = db.fetchall("SELECT * FROM partner_ledger WHERE partner_id = %s" + where + " ORDER BY id DESC LIMIT %s",
                       params + [limit + 1])
    return _page(rows, limit, ledger_to_wire)


# -- withdrawals -------------------------------------------------------------------------------------------------------
DESTINATION_CONFIRMED = ("EXISTS (SELECT 1 FROM withdrawal_destinations d WHERE d.partner_id = w.partner_id "
                         "AND d.currency = w.currency AND d.to_account = w.to_account "
                         "AND d.confirmed_at IS NOT NULL)")


def request_withdrawal(db, account_id, amount, currency, to_account, request_id=None, destination_link=None):
    """Hold `amount` of the partner's balance for a withdrawal an operator will approve or reject, and tell the
    account's address in a letter. A destination (currency, to_account) not confirmed yet gets a one-time link
    in that letter, `destination_link` = (raw token, url, ttl): only its hash is kept; until the link is used the
    withdrawal waits (decide_withdrawal refuses to approve it).

    The partner's row is locked first, so concurrent requests queue and each sees the balance the previous
    one left; the ledger trigger checks it once more (nothing can overdraw, even a path that forgets)."""
    fingerprint = request_hash(rules.withdrawal_request_values(amount, currency, to_account)) if request_id \
        else None
    with db.transaction() as cur:
        partner = _partner_of(db, account_id, cur, lock=True)
        if request_id:
            # The partner's own ids only, bound to the request (docs/partners.md, "Withdrawals").
            cur.execute("SELECT * FROM partner_withdrawals WHERE partner_id = %s AND request_id = %s",
                        (partner["id"], request_id))
            existing = cur.fetchone()
            if existing:
                try:
                    check_same_request(existing["request_hash"], fingerprint)
                except RuleError as exc:
                    raise errors.Conflict(exc.message, exc.fields)
                return withdrawal_to_wire(existing)
        cur.execute("SELECT precision FROM currencies WHERE code = %s", (currency,))
        currency_row = cur.fetchone()
        if currency_row is None:
            raise errors.ValidationFailed("unknown currency", {"currency": ["unknown currency"]})
        balance = _balance(cur, partner["id"], currency)
        cur.execute("SELECT min_withdrawal FROM commission_settings WHERE id = 1")
        minimum = cur.fetchone()["min_withdrawal"]
        try:
            rules.check_withdrawal(amount, currency_row["precision"], balance, minimum)
        except RuleError as exc:
            raise _validation(exc)
        cur.execute("INSERT INTO partner_withdrawals (partner_id, currency, amount, to_account, request_id, "
                    "request_hash) VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
                    (partner["id"], currency, amount, to_account, request_id, fingerprint))
        withdrawal = cur.fetchone()
        try:
            cur.execute("INSERT INTO partner_ledger (partner_id, currency, kind, amount, balance_after, "
                        "withdrawal_id) VALUES (%s, %s, 'withdrawal', %s, 0, %s)",
                        (partner["id"], currency, -amount, withdrawal["id"]))
        except psycopg2.errors.CheckViolation:
            # Only if something wrote the ledger without the partner lock: the database still says no.
            raise errors.Conflict("the balance changed meanwhile", {"amount": ["above the balance"]})
        confirmed = _destination_for(cur, withdrawal, destination_link)
        _audit(cur, _customer(account_id), "partner_withdrawal_request",
               {"withdrawal_id": withdrawal["id"], "amount": money.to_str(amount), "currency": currency,
                "to_account": to_account, "destination_confirmed": confirmed})
    return withdrawal_to_wire(dict(withdrawal, destination_confirmed=confirmed))


def _destination_for(cur, withdrawal, destination_link):
    """The withdrawal's letter, with a confirmation link when its destination is new; whether it is confirmed."""
    cur.execute("INSERT INTO withdrawal_destinations (partner_id, currency, to_account) VALUES (%s, %s, %s) "
                "ON CONFLICT (partner_id, currency, to_account) DO NOTHING",
                (withdrawal["partner_id"], withdrawal["currency"], withdrawal["to_account"]))
    cur.execute("SELECT * FROM withdrawal_destinations WHERE partner_id = %s AND currency = %s AND to_account = %s",
                (withdrawal["partner_id"], withdrawal["currency"], withdrawal["to_account"]))
    destination = cur.fetchone()
    cur.execute("SELECT a.* FROM accounts a JOIN partners p ON p.account_id = a.id WHERE p.id = %s",
                (withdrawal["partner_id"],))
    account = cur.fetchone()
    extra = {"withdrawal": {"id": withdrawal["id"], "amount": money.to_str(withdrawal["amount"]),
                            "currency": withdrawal["currency"], "to_account": withdrawal["to_account"]}}
    confirmed = destination["confirmed_at"] is not None
    if not confirmed and destination_link:
        raw, url, ttl = destination_link
        cur.execute("INSERT INTO withdrawal_destination_tokens (token_hash, destination_id, withdrawal_id, "
                    "expires_at) VALUES (%s, %s, %s, now() + %s)",
                    (account_rules.token_hash(raw), destination["id"], withdrawal["id"], ttl))
        extra.update(link=url, expires_at=(events.utcnow() + ttl).isoformat())
    write_notice(cur, account, "withdrawal_requested", "withdrawal:%s" % withdrawal["id"], **extra)
    return confirmed


def confirm_destination(db, raw_token):
    """The link of a withdrawal letter: the destination is confirmed (once; every open link of it ends), and the
    withdrawals waiting for it may be approved."""
    with db.transaction() as cur:
        cur.execute("SELECT t.*, d.partner_id, d.currency, d.to_account, p.account_id FROM "
                    "withdrawal_destination_tokens t JOIN withdrawal_destinations d ON d.id = t.destination_id "
                    "JOIN partners p ON p.id = d.partner_id WHERE t.token_hash = %s FOR UPDATE OF t",
                    (account_rules.token_hash(raw_token),))
        token = cur.fetchone()
        if token is None or token["used_at"] is not None or token["expires_at"] <= events.utcnow():
            raise errors.ValidationFailed("invalid token", {"token": ["invalid or expired"]})
        cur.execute("UPDATE withdrawal_destination_tokens SET used_at = now() WHERE destination_id = %s "
                    "AND used_at IS NULL", (token["destination_id"],))
        cur.execute("UPDATE withdrawal_destinations SET confirmed_at = COALESCE(confirmed_at, now()) WHERE id = %s",
                    (token["destination_id"],))
        _audit(cur, _customer(token["account_id"]), "partner_destination_confirm",
               {"destination_id": token["destination_id"], "currency": token["currency"],
                "to_account": token["to_account"], "withdrawal_id": token["withdrawal_id"]})
    return {"currency": token["currency"], "to_account": token["to_account"], "confirmed": True}


def list_withdrawals(db, filters=None):
    filters = filters or {}
    where, params = [], []
    if filters.get("status"):
        if filters["status"] not in rules.WITHDRAWAL_STATUSES:
            raise errors.ValidationFailed("invalid filter", {"status": list(rules.WITHDRAWAL_STATUSES)})
        where.append("w.status = %s")
        params.append(filters["status"])
    if filters.get("partner_id"):
        where.append("w.partner_id = %s")
        params.append(int(filters["partner_id"]))
    if filters.get("cursor"):
        where.append("w.id < %s")
        params.append(int(filters["cursor"]))
    limit = max(1, min(int(filters.get("limit") or 50), 500))
    rows = db.fetchall(
        "SELECT w.*, p.code AS partner_code, a.email AS partner_email, " + DESTINATION_CONFIRMED +
        " AS destination_confirmed FROM partner_withdrawals w "
        "JOIN partners p ON p.id = w.partner_id JOIN accounts a ON a.id = p.account_id" +
        (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY w.id DESC LIMIT %s",
        params + [limit + 1])
    return _page(rows, limit, withdrawal_to_wire)


def _return_to_balance(cur, withdrawal):
    """The held amount back on the partner's balance (UNIQUE(withdrawal_id, kind) keeps it to one)."""
    _lock_partner(cur, withdrawal["partner_id"])
    cur.execute("INSERT INTO partner_ledger (partner_id, currency, kind, amount, balance_after, withdrawal_id) "
                "VALUES (%s, %s, 'withdrawal_return', %s, 0, %s)",
                (withdrawal["partner_id"], withdrawal["currency"], withdrawal["amount"], withdrawal["id"]))


def request_withdrawal_payout(cur, row):
    """Hand an approved withdrawal to the payments service by event, with a key that makes a repeated request
    harmless (payments pays one payout per withdrawal). Also the repair of a stuck withdrawal (store/stuck.py)."""
    outbox.write_event(cur, SOURCE, events.PARTNER_PAYOUT_REQUESTED, {
        "withdrawal_id": row["id"], "partner_id": row["partner_id"], "currency": row["currency"],
        "amount": money.to_str(row["amount"]), "to_account": row["to_account"],
        "idempotency_key": "partner-withdrawal-%s" % row["id"]}, aggregate_id="withdrawal:%s" % row["id"])


def decide_withdrawal(db, withdrawal_id, action, actor, method=None, reference=None, reason=None):
    """An operator approves (paid by hand, or through a payout) or rejects (reason; the held amount returns to
    the balance). Compare-and-set on `requested`: two operators cannot both decide."""
    try:
        from_status, to_status = rules.check_decision(action, method, reason)
    except RuleError as exc:
        raise _validation(exc)
    with db.transaction() as cur:
        # Money goes only to a destination the partner confirmed from their mailbox: approving waits for it.
        cur.execute("UPDATE partner_withdrawals w SET status = %s, method = %s, reference = %s, reason = %s, "
                    "decided_by = %s, decided_at = now() WHERE id = %s AND status = %s "
                    "AND (%s <> 'approve' OR " + DESTINATION_CONFIRMED + ") RETURNING *",
                    (to_status, method if action == "approve" else None, reference,
                     reason if action == "reject" else None, actor_name(actor), withdrawal_id, from_status, action))
        row = cur.fetchone()
        if row is None:
            cur.execute("SELECT status, " + DESTINATION_CONFIRMED + " AS destination_confirmed "
                        "FROM partner_withdrawals w WHERE id = %s", (withdrawal_id,))
            current = cur.fetchone()
            if current is None:
                raise errors.NotFound("withdrawal not found")
            if current["status"] == from_status and not current["destination_confirmed"]:
                _audit(cur, actor, "partner_withdrawal_%s" % action, {
                    "withdrawal_id": withdrawal_id, "reason": "destination not confirmed"}, outcome="rejected")
                cur.connection.commit()
                raise errors.Conflict("the partner has not confirmed this destination yet (the link in their letter)",
                                      {"to_account": ["not confirmed by the partner yet"]})
            _audit(cur, actor, "partner_withdrawal_%s" % action, {"withdrawal_id": withdrawal_id,
                                                                  "status": current["status"]},
                   outcome="rejected")
            cur.connection.commit()
            raise errors.Conflict("the withdrawal is %s already" % current["status"], {"status": [current["status"]]})
        if action == "reject":
            _return_to_balance(cur, row)
        elif method == "payout":
            request_withdrawal_payout(cur, row)
        _audit(cur, actor, "partner_withdrawal_%s" % action, {
            "withdrawal_id": row["id"], "partner_id": row["partner_id"], "amount": money.to_str(row["amount"]),
            "currency": row["currency"], "method": row["method"], "reference": reference, "reason": reason})
    return withdrawal_to_wire(row)


def apply_withdrawal_payout(db, event_id, consumer, data, sent):
    """payments' withdrawal_payout_sent / _failed for a withdrawal approved with method=payout:
    approved -> paid, or approved -> failed with the amount back on the balance (a `withdrawal_return`, as a
    rejection does). Compare-and-set on `approved`, deduped by the inbox, audited."""
    with db.transaction() as cur:
        if not inbox.claim(cur, consumer, event_id):
            return None
        to_status = "paid" if sent else "failed"
        reason = None if sent else ("payout failed: %s" % (data.get("error") or "refused"))[:2000]
        cur.execute("UPDATE partner_withdrawals SET status = %s, provider_id = %s, reason = coalesce(%s, reason), "
                    "settled_at = now() WHERE id = %s AND status = 'approved' AND method = 'payout' RETURNING *",
                    (to_status, data.get("provider_id"), reason, data["withdrawal_id"]))
        row = cur.fetchone()
        detail = {"withdrawal_id": data["withdrawal_id"], "idempotency_key": data["idempotency_key"],
                  "amount": money.to_str(data["amount"]), "currency": data["currency"],
                  "provider_id": data.get("provider_id"), "error": data.get("error")}
        if row is None:
            # Already settled (a repeated answer) or not a payout withdrawal: nothing changes, on the record.
            cur.execute("SELECT status FROM partner_withdrawals WHERE id = %s", (data["withdrawal_id"],))
            current = cur.fetchone()
            detail["status"] = current["status"] if current else None
            _audit(cur, PAYMENTS, "partner_withdrawal_%s" % to_status, detail, outcome="rejected")
            return None
        if not sent:
            _return_to_balance(cur, row)
        _audit(cur, PAYMENTS, "partner_withdrawal_%s" % to_status, detail)
    return withdrawal_to_wire(row)


def apply_withdrawal_late_paid(db, event_id, consumer, data):
    """payout_succeeded_after_resolve of a withdrawal's payout: the payout was resolved `failed` and the money went
    out after all. The withdrawal is flagged (late_paid_at, the provider's id) and what the rule says happens
    (domain/partners.py late_paid): still approved -> settled `paid`, so a failed answer that comes later returns
    nothing and nothing asks for the payout again; already failed with the amount back on the balance -> a
    `withdrawal_late_paid` ledger row takes it out again, as far as the balance reaches (the rest is
    late_paid_shortfall, for the admin). The withdrawal's row is locked, then the partner's, as the other writers
    do, before the balance is read and the ledger written; one transaction with the inbox claim, audited."""
    withdrawal_id = data["withdrawal_id"]
    detail = {"withdrawal_id": withdrawal_id, "payout_id": data["payout_id"],
              "idempotency_key": data["idempotency_key"], "amount": money.to_str(data["amount"]),
              "currency": data["currency"], "to_account": data["to_account"], "provider_id": data.get("provider_id"),
              "resolved_by": data.get("resolved_by")}
    with db.transaction() as cur:
        if not inbox.claim(cur, consumer, event_id):
            return None
        cur.execute("SELECT * FROM partner_withdrawals WHERE id = %s FOR UPDATE", (withdrawal_id,))
        row = cur.fetchone()
        if row is None:
            _audit(cur, PAYMENTS, events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, dict(detail, reason="withdrawal not found"),
                   outcome="ignored")
            return None
        _lock_partner(cur, row["partner_id"])
        cur.execute("SELECT 1 FROM partner_ledger WHERE withdrawal_id = %s AND kind = 'withdrawal_return'",
                    (withdrawal_id,))
        # Given back and not yet taken out again (an earlier announcement for this withdrawal did that).
        returned = cur.fetchone() is not None and row["late_paid_at"] is None
        decision = rules.late_paid(row["status"], row["method"], row["amount"], returned,
                                   _balance(cur, row["partner_id"], row["currency"]))
        if decision.debit > 0:
            cur.execute("INSERT INTO partner_ledger (partner_id, currency, kind, amount, balance_after, "
                        "withdrawal_id) VALUES (%s, %s, 'withdrawal_late_paid', %s, 0, %s)",
                        (row["partner_id"], row["currency"], -decision.debit, withdrawal_id))
        cur.execute("UPDATE partner_withdrawals SET status = coalesce(%(to)s, status), "
                    "provider_id = coalesce(provider_id, %(provider)s), "
                    "settled_at = CASE WHEN %(to)s IS NULL THEN settled_at ELSE now() END, "
                    "late_paid_at = coalesce(late_paid_at, now()), "
                    "late_paid_provider_id = coalesce(late_paid_provider_id, %(provider)s), "
                    "late_paid_shortfall = coalesce(%(shortfall)s, late_paid_shortfall) WHERE id = %(id)s RETURNING *",
                    {"to": decision.to_status, "provider": data.get("provider_id"), "id": withdrawal_id,
                     "shortfall": decision.shortfall if decision.shortfall > 0 else None})
        row = cur.fetchone()
        _audit(cur, PAYMENTS, events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, dict(
            detail, status=row["status"], settled=decision.to_status, debit=money.to_str(decision.debit),
            shortfall=money.to_str(decision.shortfall)))
    if decision.shortfall > 0:
        log.error("withdrawal %s was paid after its payout was resolved failed, and the partner's balance holds "
                  "only %s of the %s %s given back: %s short", withdrawal_id, money.to_str(decision.debit),
                  money.to_str(row["amount"]), row["currency"], money.to_str(decision.shortfall))
    return withdrawal_to_wire(row)


# -- administration ----------------------------------------------------------------------------------------------------
PARTNER_LIST_SQL = """
SELECT p.*, a.email, a.language,
       (SELECT count(*) FROM partner_clicks c WHERE c.partner_id = p.id) AS clicks,
       (SELECT count(*) FROM orders o WHERE upper(o.partner_code) = p.code) AS referred_orders,
       (SELECT count(*) FROM partner_ledger l WHERE l.partner_id = p.id AND l.kind = 'credit') AS credits
  FROM partners p JOIN accounts a ON a.id = p.account_id
"""


def _admin_partner(db, row):
    return admin_partner_to_wire(row, balances(db, row["id"]))


def list_partners(db, filters=None):
    filters = filters or {}
    where, params = [], []
    if filters.get("code"):
        where.append("p.code = %s")
        params.append(str(filters["code"]).upper())
    if filters.get("email"):
        where.append("lower(a.email) = lower(%s)")
        params.append(filters["email"])
    if filters.get("cursor"):
        where.append("p.id < %s")
        params.append(int(filters["cursor"]))
    limit = max(1, min(int(filters.get("limit") or 50), 200))
    rows = db.fetchall(PARTNER_LIST_SQL + (" WHERE " + " AND ".join(where) if where else "") +
                       " ORDER BY p.id DESC LIMIT %s", params + [limit + 1])
    return _page(rows, limit, lambda row: _admin_partner(db, row))


def get_partner(db, partner_id):
    row = db.fetchone(PARTNER_LIST_SQL + " WHERE p.id = %s", (partner_id,))
    if row is None:
        raise errors.NotFound("partner not found")
    wire = _admin_partner(db, row)
    wire["ledger"] = ledger(db, partner_id)["items"]
    wire["withdrawals"] = list_withdrawals(db, {"partner_id": partner_id, "limit": 100})["items"]
    return wire


def update_partner(db, partner_id, values, actor):
    """Admin: the partner's own rule and whether it earns (domain/partners.py partner_changes), audited with
    before and after."""
    with db.transaction() as cur:
        cur.execute("SELECT * FROM partners WHERE id = %s FOR UPDATE", (partner_id,))
        before = cur.fetchone()
        if before is None:
            raise errors.NotFound("partner not found")
        if values:
            cur.execute("UPDATE partners SET " + ", ".join("%s = %%(%s)s" % (k, k) for k in values) +
                        ", updated_at = now() WHERE id = %(id)s", dict(values, id=partner_id))
            _audit(cur, actor, "partner_update", {
                "partner_id": partner_id, "code": before["code"],
                "before": {k: plain(before[k]) for k in values}, "after": plain_values(values)})
    return get_partner(db, partner_id)


def get_commission(db):
    settings = db.fetchone("SELECT * FROM commission_settings WHERE id = 1")
    directions = db.fetchall(
        "SELECT dc.*, d.currency_in, d.currency_out, d.exchange_type FROM direction_commissions dc "
        "JOIN directions d ON d.id = dc.direction_id ORDER BY dc.direction_id")
    return commission_to_wire(settings, directions)


def update_commission(db, values, actor, expected_version=None):
    """Admin: the global rule and the minimum withdrawal. `expected_version` makes it a compare-and-set."""
    with db.transaction() as cur:
        cur.execute("SELECT * FROM commission_settings WHERE id = 1 FOR UPDATE")
        before = cur.fetchone()
        if expected_version is not None and int(expected_version) != before["version"]:
            raise errors.Conflict("changed meanwhile (version %s)" % before["version"],
                                  {"version": [str(before["version"])]})
        if values:
            cur.execute("UPDATE commission_settings SET " + ", ".join("%s = %%(%s)s" % (k, k) for k in values) +
                        ", version = version + 1, updated_by = %(actor)s, updated_at = now() WHERE id = 1",
                        dict(values, actor=actor_name(actor)))
            _audit(cur, actor, "commission_update", {"before": {k: plain(before[k]) for k in values},
                                                     "after": plain_values(values)})
    return get_commission(db)


def set_direction_commission(db, direction_id, rule, actor):
    """Admin: a direction's own rule ({percent, base}), or None to remove it."""
    with db.transaction() as cur:
        cur.execute("SELECT id FROM directions WHERE id = %s", (direction_id,))
        if cur.fetchone() is None:
            raise errors.NotFound("direction not found")
        cur.execute("SELECT percent, base FROM direction_commissions WHERE direction_id = %s FOR UPDATE",
                    (direction_id,))
        before = cur.fetchone()
        if rule is None:
            cur.execute("DELETE FROM direction_commissions WHERE direction_id = %s", (direction_id,))
            after = None
        else:
            try:
                percent, base = rules.direction_rule(rule)
            except RuleError as exc:
                raise _validation(exc)
            cur.execute("INSERT INTO direction_commissions (direction_id, percent, base, updated_by) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (direction_id) DO UPDATE SET "
                        "percent = EXCLUDED.percent, base = EXCLUDED.base, updated_by = EXCLUDED.updated_by, "
                        "updated_at = now()", (direction_id, percent, base, actor_name(actor)))
            after = {"percent": money.to_str(percent), "base": base}
        _audit(cur, actor, "direction_commission_update", {
            "direction_id": direction_id, "before": plain_values(before) if before else None, "after": after})
    return get_commission(db)
