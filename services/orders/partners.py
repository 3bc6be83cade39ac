"""Customer accounts and the partner program: storage (issue 7, docs/partners.md). Pure rules are in
partners_domain.py; the entrypoints are in service.py.

What keeps money right here:
- `credit_completed_order(cur, order)` runs INSIDE the transaction that moves an order to `completed`
  (OrderStore.transition calls it), so the credit, the order's completion and the `partner_credited` event commit
  together or not at all; `partner_ledger.order_id` is UNIQUE, so an order is credited at most once whatever runs
  twice.
- The ledger is append-only and its trigger computes each row's running balance under a lock of the partner's
  row, with CHECK (balance_after >= 0): a withdrawal that would overdraw fails in the database itself.
"""
import datetime
import hashlib
import logging
import re
import secrets

import psycopg2
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool
from nameko.extensions import DependencyProvider

from libs import config, errors, inbox, money, outbox
from libs.audit import actor_name, write_audit
from libs.contracts import events
from services.orders import partners_domain as rules

log = logging.getLogger(__name__)

SOURCE = events.ORDERS
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
LANGUAGES = ("en", "ru")

ACCOUNT_SIGNUP_REQUESTED = events.ACCOUNT_SIGNUP_REQUESTED
PASSWORD_RESET_REQUESTED = events.PASSWORD_RESET_REQUESTED
PARTNER_PAYOUT_REQUESTED = events.PARTNER_PAYOUT_REQUESTED

hasher = PasswordHasher()
_dummy_hash = None


def _dummy():
    """A hash to verify against when the e-mail is unknown: the answer takes as long as for a real account."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_hex(16))
    return _dummy_hash


def hash_password(password):
    # argon2 costs ~50 ms of CPU: in a real thread, so the eventlet hub keeps serving other workers meanwhile.
    return tpool.execute(hasher.hash, password)


def verify_password(password_hash, password):
    try:
        return tpool.execute(hasher.verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_hash(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


def public_url():
    """Where the letters' links point: the gateway's public address (the notifier uses the same variable)."""
    return (config.env("PUBLIC_URL") or "http://127.0.0.1:%s" % config.env("GATEWAY_PORT", "8000")).rstrip("/")


def _iso(value):
    return value.isoformat() if value is not None else None


def _audit(cur, actor, action, detail=None, outcome="ok", order_id=None):
    write_audit(cur, actor, action, outcome, detail, order_id=order_id)


def _rule_error(exc):
    return errors.ValidationFailed(exc.message, exc.fields)


# -- wire forms ----------------------------------------------------------------------------------------------------
def account_to_wire(row, partner=None):
    return {"id": row["id"], "email": row["email"], "language": row["language"],
            "email_confirmed": row["email_confirmed_at"] is not None, "created_at": _iso(row["created_at"]),
            "partner": partner_to_wire(partner) if partner else None}


def partner_to_wire(row):
    return {"id": row["id"], "account_id": row["account_id"], "code": row["code"], "active": row["active"],
            "percent": money.to_str(row["percent"]) if row["percent"] is not None else None,
            "base": row["base"], "created_at": _iso(row["created_at"])}


def ledger_to_wire(row):
    return {"id": row["id"], "kind": row["kind"], "currency": row["currency"], "amount": money.to_str(row["amount"]),
            "balance_after": money.to_str(row["balance_after"]), "order_id": row["order_id"],
            "withdrawal_id": row["withdrawal_id"],
            "percent": money.to_str(row["percent"]) if row["percent"] is not None else None,
            "base": row["base"], "base_amount": money.to_str(row["base_amount"]),
            "created_at": _iso(row["created_at"])}


def withdrawal_to_wire(row):
    wire = {"id": row["id"], "partner_id": row["partner_id"], "currency": row["currency"],
            "amount": money.to_str(row["amount"]), "to_account": row["to_account"], "status": row["status"],
            "method": row["method"], "reference": row["reference"], "reason": row["reason"],
            "decided_by": row["decided_by"], "decided_at": _iso(row["decided_at"]),
            "created_at": _iso(row["created_at"])}
    if "partner_code" in row:
        wire["partner_code"] = row["partner_code"]
        wire["partner_email"] = row["partner_email"]
    return wire


def referred_order_to_wire(row):
    """What a partner may see of an order they referred: no customer e-mail, account or token."""
    return {"id": row["id"], "status": row["status"], "currency_in": row["currency_in"],
            "amount_in": money.to_str(row["amount_in"]), "currency_out": row["currency_out"],
            "created_at": _iso(row["created_at"]), "completed_at": _iso(row["completed_at"]),
            "commission": money.to_str(row["commission"]) if row["commission"] is not None else None}


def _rule(percent, base, source):
    return rules.Rule(percent, base, source) if percent is not None else None


# -- the credit, inside the order's completion ---------------------------------------------------------------------
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
"""


def credit_completed_order(cur, order):
    """Credit the referring partner for an order that has just become `completed`, in the caller's transaction.

    `order` is the orders row (Decimals). Returns the ledger row, or None: no or unknown code, partner switched
    off, the partner's own order, a zero commission, or already credited (UNIQUE order_id)."""
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


class PartnerStore:
    def __init__(self, db):
        self.db = db

    # -- accounts ----------------------------------------------------------------------------------------------
    def _account_by_email(self, cur, email, lock=False):
        cur.execute("SELECT * FROM accounts WHERE lower(email) = lower(%s)" + (" FOR UPDATE" if lock else ""),
                    (email,))
        return cur.fetchone()

    @staticmethod
    def _check_email(email):
        email = (email or "").strip() if isinstance(email, str) else ""
        if len(email) > 254 or not EMAIL_RE.match(email):
            raise errors.ValidationFailed("invalid e-mail", {"email": ["must be an e-mail address"]})
        return email

    def signup(self, email, password, language="en", request_id=None):
        """Sign-up: the account (unconfirmed) and a confirmation letter. Answers the same whether the e-mail is
        new, waiting for confirmation or already confirmed (no account enumeration); a confirmed account gets
        no letter. Returns {"letter": bool} for the tests and logs, never shown to the caller."""
        email = self._check_email(email)
        try:
            rules.check_password(password)
        except rules.RuleError as exc:
            raise _rule_error(exc)
        if language not in LANGUAGES:
            raise errors.ValidationFailed("invalid language", {"language": ["en or ru"]})
        password_hash = hash_password(password)
        raw = secrets.token_urlsafe(32)
        ttl = datetime.timedelta(hours=config.env_float("ACCOUNT_CONFIRM_TTL_HOURS", 48.0))
        with self.db.transaction() as cur:
            if request_id:
                cur.execute("SELECT 1 FROM account_tokens WHERE request_id = %s", (request_id,))
                if cur.fetchone():
                    return {"letter": True}
            cur.execute("INSERT INTO accounts (email, password_hash, language) VALUES (%s, %s, %s) "
                        "ON CONFLICT ((lower(email))) DO NOTHING", (email, password_hash, language))
            account = self._account_by_email(cur, email, lock=True)
            if account["email_confirmed_at"] is not None:
                _audit(cur, {"name": "account:%s" % account["id"], "kind": "customer"}, "account_signup",
                       {"email": email}, outcome="already_confirmed")
                return {"letter": False}
            cur.execute("INSERT INTO account_tokens (token_hash, account_id, purpose, password_hash, request_id, "
                        "expires_at) VALUES (%s, %s, 'confirm', %s, %s, now() + %s) RETURNING id",
                        (token_hash(raw), account["id"], password_hash, request_id, ttl))
            token_id = cur.fetchone()["id"]
            outbox.write_event(cur, SOURCE, ACCOUNT_SIGNUP_REQUESTED, {
                "account_id": account["id"], "email": account["email"], "language": language,
                "token_id": token_id, "confirm_url": "%s/account/confirm?token=%s" % (public_url(), raw),
                "expires_at": (events.utcnow() + ttl).isoformat()}, aggregate_id="account:%s" % account["id"])
            _audit(cur, {"name": "account:%s" % account["id"], "kind": "customer"}, "account_signup",
                   {"email": email, "token_id": token_id})
        return {"letter": True}

    def _use_token(self, cur, raw, purpose):
        if not isinstance(raw, str) or not 16 <= len(raw) <= 100:
            raise errors.ValidationFailed("invalid token", {"token": ["invalid or expired"]})
        cur.execute("SELECT t.*, a.active FROM account_tokens t JOIN accounts a ON a.id = t.account_id "
                    "WHERE t.token_hash = %s AND t.purpose = %s FOR UPDATE OF t", (token_hash(raw), purpose))
        row = cur.fetchone()
        if row is None or row["used_at"] is not None or row["expires_at"] <= events.utcnow() or not row["active"]:
            raise errors.ValidationFailed("invalid token", {"token": ["invalid or expired"]})
        # Every other open token of this purpose ends too: the newest letter is not the only one that works.
        cur.execute("UPDATE account_tokens SET used_at = now() WHERE account_id = %s AND purpose = %s "
                    "AND used_at IS NULL", (row["account_id"], purpose))
        return row

    def confirm(self, raw):
        """The link of the sign-up letter: the e-mail is confirmed and that sign-up's password set."""
        with self.db.transaction() as cur:
            token = self._use_token(cur, raw, "confirm")
            cur.execute("UPDATE accounts SET email_confirmed_at = COALESCE(email_confirmed_at, now()), "
                        "password_hash = %s, password_changed_at = now(), updated_at = now() "
                        "WHERE id = %s RETURNING *", (token["password_hash"], token["account_id"]))
            account = cur.fetchone()
            _audit(cur, {"name": "account:%s" % account["id"], "kind": "customer"}, "account_confirm",
                   {"token_id": token["id"]})
        return self.account_wire(account)

    def sign_in(self, email, password, session_hash, kind, ttl_seconds, ip=None):
        """Check the password and open a session (API token or cabinet cookie) whose hash the gateway sends.
        Returns {"ok": True, "account", "expires_at"} or {"ok": False, "reason": invalid|unconfirmed}."""
        email = (email or "").strip() if isinstance(email, str) else ""
        account = self.db.fetchone("SELECT * FROM accounts WHERE lower(email) = lower(%s)", (email,)) \
            if email else None
        good = verify_password(account["password_hash"] if account else _dummy(), password or "")
        actor = {"name": "account:%s" % account["id"] if account else email[:100], "kind": "customer", "ip": ip}
        with self.db.transaction() as cur:
            if not good or account is None or not account["active"]:
                _audit(cur, actor, "account_sign_in", {"kind": kind}, outcome="failed")
                return {"ok": False, "reason": "invalid"}
            if account["email_confirmed_at"] is None:
                _audit(cur, actor, "account_sign_in", {"kind": kind}, outcome="unconfirmed")
                return {"ok": False, "reason": "unconfirmed"}
            cur.execute("INSERT INTO account_sessions (token_hash, account_id, kind, ip, expires_at) "
                        "VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s)) "
                        "ON CONFLICT (token_hash) DO NOTHING", (session_hash, account["id"], kind, ip,
                                                                float(ttl_seconds)))
            cur.execute("SELECT expires_at FROM account_sessions WHERE token_hash = %s", (session_hash,))
            expires_at = cur.fetchone()["expires_at"]
            _audit(cur, actor, "account_sign_in", {"kind": kind})
        return {"ok": True, "account": self.account_wire(account), "expires_at": _iso(expires_at)}

    def account_for_session(self, session_hash, idle_seconds=None):
        """The account of a live session, or None (unknown, revoked, expired, idle too long, account disabled)."""
        row = self.db.fetchone(
            "SELECT s.kind, s.last_seen_at, s.expires_at, a.* FROM account_sessions s "
            "JOIN accounts a ON a.id = s.account_id WHERE s.token_hash = %s AND s.revoked_at IS NULL",
            (session_hash,))
        if row is None or not row["active"]:
            return None
        now = events.utcnow()
        if row["expires_at"] <= now:
            return None
        if idle_seconds and (now - row["last_seen_at"]).total_seconds() > float(idle_seconds):
            self.sign_out(session_hash)
            return None
        if (now - row["last_seen_at"]).total_seconds() > 30:  # one write a minute at most, not per request
            with self.db.transaction() as cur:
                cur.execute("UPDATE account_sessions SET last_seen_at = now() WHERE token_hash = %s",
                            (session_hash,))
        return self.account_wire(row)

    def sign_out(self, session_hash):
        with self.db.transaction() as cur:
            cur.execute("UPDATE account_sessions SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
                        (session_hash,))
            return cur.rowcount == 1

    def request_password_reset(self, email, request_id=None):
        """A reset letter if such an account exists (the caller is told the same either way)."""
        if not isinstance(email, str) or not EMAIL_RE.match(email.strip()):
            raise errors.ValidationFailed("invalid e-mail", {"email": ["must be an e-mail address"]})
        raw = secrets.token_urlsafe(32)
        ttl = datetime.timedelta(hours=config.env_float("ACCOUNT_RESET_TTL_HOURS", 1.0))
        with self.db.transaction() as cur:
            if request_id:
                cur.execute("SELECT 1 FROM account_tokens WHERE request_id = %s", (request_id,))
                if cur.fetchone():
                    return {"letter": True}
            account = self._account_by_email(cur, email.strip(), lock=True)
            if account is None or not account["active"]:
                return {"letter": False}
            cur.execute("INSERT INTO account_tokens (token_hash, account_id, purpose, request_id, expires_at) "
                        "VALUES (%s, %s, 'reset', %s, now() + %s) RETURNING id",
                        (token_hash(raw), account["id"], request_id, ttl))
            token_id = cur.fetchone()["id"]
            outbox.write_event(cur, SOURCE, PASSWORD_RESET_REQUESTED, {
                "account_id": account["id"], "email": account["email"], "language": account["language"],
                "token_id": token_id, "reset_url": "%s/account/reset?token=%s" % (public_url(), raw),
                "expires_at": (events.utcnow() + ttl).isoformat()}, aggregate_id="account:%s" % account["id"])
            _audit(cur, {"name": "account:%s" % account["id"], "kind": "customer"}, "account_password_reset_request",
                   {"token_id": token_id})
        return {"letter": True}

    def reset_password(self, raw, password):
        """The link of the reset letter: a new password; every session of the account ends. It also proves the
        mailbox, so an account still waiting for confirmation is confirmed by it."""
        try:
            rules.check_password(password)
        except rules.RuleError as exc:
            raise _rule_error(exc)
        password_hash = hash_password(password)
        with self.db.transaction() as cur:
            token = self._use_token(cur, raw, "reset")
            cur.execute("UPDATE accounts SET password_hash = %s, password_changed_at = now(), updated_at = now(), "
                        "email_confirmed_at = COALESCE(email_confirmed_at, now()) WHERE id = %s RETURNING *",
                        (password_hash, token["account_id"]))
            account = cur.fetchone()
            cur.execute("UPDATE account_sessions SET revoked_at = now() WHERE account_id = %s AND revoked_at IS NULL",
                        (account["id"],))
            _audit(cur, {"name": "account:%s" % account["id"], "kind": "customer"}, "account_password_reset",
                   {"token_id": token["id"], "sessions_ended": cur.rowcount})
        return self.account_wire(account)

    def account_wire(self, account):
        partner = self.db.fetchone("SELECT * FROM partners WHERE account_id = %s", (account["id"],))
        return account_to_wire(account, partner)

    def get_account(self, account_id):
        row = self.db.fetchone("SELECT * FROM accounts WHERE id = %s", (account_id,))
        if row is None:
            raise errors.NotFound("account not found")
        return self.account_wire(row)

    def list_account_orders(self, account_id, limit=50, cursor=None):
        """The account's exchanges: every order placed with its confirmed e-mail (joined when read, so orders
        placed before the sign-up belong to it too)."""
        from services.orders.schemas import order_to_wire
        limit = max(1, min(int(limit or 50), 200))
        params = [account_id]
        where = ""
        if cursor:
            where = " AND o.id < %s"
            params.append(int(cursor))
        rows = self.db.fetchall(
            "SELECT o.* FROM accounts a JOIN orders o ON lower(o.email) = lower(a.email) "
            "WHERE a.id = %s AND a.email_confirmed_at IS NOT NULL AND o.status <> 'deleted'" + where +
            " ORDER BY o.id DESC LIMIT %s", params + [limit + 1])
        items = [order_to_wire(r) for r in rows[:limit]]
        return {"items": items, "next_cursor": str(rows[limit - 1]["id"]) if len(rows) > limit else None}

    # -- partners ----------------------------------------------------------------------------------------------
    def become_partner(self, account_id):
        """Any confirmed account may become a partner; a second call returns the same partner."""
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM accounts WHERE id = %s FOR UPDATE", (account_id,))
            account = cur.fetchone()
            if account is None or account["email_confirmed_at"] is None:
                raise errors.Forbidden("confirm your e-mail first")
            for _ in range(10):
                cur.execute("INSERT INTO partners (account_id, code) VALUES (%s, %s) ON CONFLICT DO NOTHING "
                            "RETURNING *", (account_id, rules.new_code()))
                created = cur.fetchone()
                if created:
                    _audit(cur, {"name": "account:%s" % account_id, "kind": "customer"}, "partner_join",
                           {"partner_id": created["id"], "code": created["code"]})
                    return partner_to_wire(created), True
                cur.execute("SELECT * FROM partners WHERE account_id = %s", (account_id,))
                existing = cur.fetchone()
                if existing:
                    return partner_to_wire(existing), False
                # else: the random code was taken; draw another
        raise errors.Conflict("could not allocate a referral code")

    def _partner_of(self, account_id, cur=None, lock=False):
        sql = "SELECT * FROM partners WHERE account_id = %s" + (" FOR UPDATE" if lock else "")
        if cur is None:
            row = self.db.fetchone(sql, (account_id,))
        else:
            cur.execute(sql, (account_id,))
            row = cur.fetchone()
        if row is None:
            raise errors.NotFound("not a partner yet: POST /api/v1/partner to become one")
        return row

    def count_click(self, code):
        """A visit through /?ref=CODE. True if the code belongs to an active partner (then the gateway keeps it
        in the visitor's cookie)."""
        code = rules.normalise_code(code)
        if code is None:
            return False
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO partner_clicks (partner_id) SELECT id FROM partners WHERE code = %s AND active "
                        "RETURNING id", (code,))
            return cur.fetchone() is not None

    def balances(self, partner_id):
        """Per currency: the last running balance and what waits in open withdrawal requests."""
        rows = self.db.fetchall(
            "SELECT DISTINCT ON (currency) currency, balance_after FROM partner_ledger WHERE partner_id = %s "
            "ORDER BY currency, id DESC", (partner_id,))
        pending = {r["currency"]: r["amount"] for r in self.db.fetchall(
            "SELECT currency, sum(amount) AS amount FROM partner_withdrawals WHERE partner_id = %s "
            "AND status = 'requested' GROUP BY currency", (partner_id,))}
        earned = {r["currency"]: r["amount"] for r in self.db.fetchall(
            "SELECT currency, sum(amount) AS amount FROM partner_ledger WHERE partner_id = %s AND kind = 'credit' "
            "GROUP BY currency", (partner_id,))}
        return [{"currency": r["currency"], "balance": money.to_str(r["balance_after"]),
                 "pending_withdrawals": money.to_str(pending.get(r["currency"], money.Decimal(0))),
                 "earned": money.to_str(earned.get(r["currency"], money.Decimal(0)))} for r in rows]

    def partner_overview(self, account_id, days=90):
        """The partner cabinet: code, balances, clicks, referred orders and their statuses, earnings by day,
        withdrawals, the minimum withdrawal."""
        partner = self._partner_of(account_id)
        pid = partner["id"]
        clicks = self.db.fetchone("SELECT count(*) AS n FROM partner_clicks WHERE partner_id = %s", (pid,))["n"]
        clicks_by_day = [{"day": r["day"].isoformat(), "clicks": r["n"]} for r in self.db.fetchall(
            "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM partner_clicks "
            "WHERE partner_id = %s AND created_at > now() - make_interval(days => %s) GROUP BY 1 ORDER BY 1",
            (pid, days))]
        by_status = {r["status"]: r["n"] for r in self.db.fetchall(
            "SELECT status, count(*) AS n FROM orders WHERE upper(partner_code) = %s GROUP BY status",
            (partner["code"],))}
        referred = [referred_order_to_wire(r) for r in self.db.fetchall(
            "SELECT o.id, o.status, o.currency_in, o.amount_in, o.currency_out, o.created_at, o.completed_at, "
            "       l.amount AS commission "
            "  FROM orders o LEFT JOIN partner_ledger l ON l.order_id = o.id AND l.partner_id = %s "
            " WHERE upper(o.partner_code) = %s AND o.status <> 'deleted' ORDER BY o.id DESC LIMIT 100",
            (pid, partner["code"]))]
        earnings = [{"day": r["day"].isoformat(), "currency": r["currency"], "amount": money.to_str(r["amount"]),
                     "orders": r["n"]} for r in self.db.fetchall(
            "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, currency, sum(amount) AS amount, count(*) AS n "
            "  FROM partner_ledger WHERE partner_id = %s AND kind = 'credit' "
            "   AND created_at > now() - make_interval(days => %s) GROUP BY 1, 2 ORDER BY 1, 2", (pid, days))]
        withdrawals = [withdrawal_to_wire(r) for r in self.db.fetchall(
            "SELECT * FROM partner_withdrawals WHERE partner_id = %s ORDER BY id DESC LIMIT 100", (pid,))]
        settings = self.db.fetchone("SELECT min_withdrawal FROM commission_settings WHERE id = 1")
        return {"partner": partner_to_wire(partner), "code": partner["code"], "balances": self.balances(pid),
                "stats": {"clicks": clicks, "clicks_by_day": clicks_by_day, "orders_by_status": by_status,
                          "referred_orders": sum(by_status.values()), "earnings_by_day": earnings},
                "referred_orders": referred, "withdrawals": withdrawals,
                "min_withdrawal": money.to_str(settings["min_withdrawal"])}

    def ledger(self, partner_id, limit=200, cursor=None):
        params = [partner_id]
        where = ""
        if cursor:
            where = " AND id < %s"
            params.append(int(cursor))
        limit = max(1, min(int(limit or 200), 500))
        rows = self.db.fetchall("SELECT * FROM partner_ledger WHERE partner_id = %s" + where +
                                " ORDER BY id DESC LIMIT %s", params + [limit + 1])
        return {"items": [ledger_to_wire(r) for r in rows[:limit]],
                "next_cursor": str(rows[limit - 1]["id"]) if len(rows) > limit else None}

    # -- withdrawals -------------------------------------------------------------------------------------------
    def request_withdrawal(self, account_id, amount, currency, to_account, request_id=None):
        """Hold `amount` of the partner's balance for a withdrawal an operator will approve or reject.

        The partner's row is locked first, so concurrent requests queue and each sees the balance the previous
        one left; the ledger trigger checks it once more (nothing can overdraw, even a path that forgets)."""
        fields = {}
        try:
            amount = money.parse_amount(amount)
        except money.AmountError as exc:
            fields["amount"] = [str(exc)]
        if not isinstance(currency, str) or not re.match(r"^[A-Z0-9]{2,16}$", currency):
            fields["currency"] = ["a currency code"]
        to_account = to_account.strip() if isinstance(to_account, str) else ""
        if not 1 <= len(to_account) <= 200:
            fields["to_account"] = ["1 to 200 characters: your account to be paid"]
        if fields:
            raise errors.ValidationFailed("invalid withdrawal", fields)
        with self.db.transaction() as cur:
            if request_id:
                cur.execute("SELECT * FROM partner_withdrawals WHERE request_id = %s", (request_id,))
                existing = cur.fetchone()
                if existing:
                    return withdrawal_to_wire(existing)
            partner = self._partner_of(account_id, cur, lock=True)
            cur.execute("SELECT precision FROM currencies WHERE code = %s", (currency,))
            cur_row = cur.fetchone()
            if cur_row is None:
                raise errors.ValidationFailed("unknown currency", {"currency": ["unknown currency"]})
            cur.execute("SELECT balance_after FROM partner_ledger WHERE partner_id = %s AND currency = %s "
                        "ORDER BY id DESC LIMIT 1", (partner["id"], currency))
            last = cur.fetchone()
            balance = last["balance_after"] if last else money.Decimal(0)
            cur.execute("SELECT min_withdrawal FROM commission_settings WHERE id = 1")
            minimum = cur.fetchone()["min_withdrawal"]
            try:
                rules.check_withdrawal(amount, cur_row["precision"], balance, minimum)
            except rules.RuleError as exc:
                raise _rule_error(exc)
            cur.execute("INSERT INTO partner_withdrawals (partner_id, currency, amount, to_account, request_id) "
                        "VALUES (%s, %s, %s, %s, %s) RETURNING *",
                        (partner["id"], currency, amount, to_account, request_id))
            withdrawal = cur.fetchone()
            try:
                cur.execute("INSERT INTO partner_ledger (partner_id, currency, kind, amount, balance_after, "
                            "withdrawal_id) VALUES (%s, %s, 'withdrawal', %s, 0, %s)",
                            (partner["id"], currency, -amount, withdrawal["id"]))
            except psycopg2.errors.CheckViolation:
                # Only if something wrote the ledger without the partner lock: the database still says no.
                raise errors.Conflict("the balance changed meanwhile", {"amount": ["above the balance"]})
            _audit(cur, {"name": "account:%s" % account_id, "kind": "customer"}, "partner_withdrawal_request",
                   {"withdrawal_id": withdrawal["id"], "amount": money.to_str(amount), "currency": currency,
                    "to_account": to_account})
        return withdrawal_to_wire(withdrawal)

    def list_withdrawals(self, filters=None):
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
        rows = self.db.fetchall(
            "SELECT w.*, p.code AS partner_code, a.email AS partner_email FROM partner_withdrawals w "
            "JOIN partners p ON p.id = w.partner_id JOIN accounts a ON a.id = p.account_id" +
            (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY w.id DESC LIMIT %s",
            params + [limit + 1])
        return {"items": [withdrawal_to_wire(r) for r in rows[:limit]],
                "next_cursor": str(rows[limit - 1]["id"]) if len(rows) > limit else None}

    def decide_withdrawal(self, withdrawal_id, action, actor, method=None, reference=None, reason=None):
        """An operator approves (paid by hand, or through a payout) or rejects (reason; the held amount returns to
        the balance). Compare-and-set on `requested`: two operators cannot both decide."""
        try:
            from_status, to_status = rules.check_decision(action, method, reason)
        except rules.RuleError as exc:
            raise _rule_error(exc)
        reference = (reference or "").strip()[:200] or None
        reason = (reason or "").strip()[:2000] or None
        with self.db.transaction() as cur:
            cur.execute("UPDATE partner_withdrawals SET status = %s, method = %s, reference = %s, reason = %s, "
                        "decided_by = %s, decided_at = now() WHERE id = %s AND status = %s RETURNING *",
                        (to_status, method if action == "approve" else None, reference,
                         reason if action == "reject" else None, actor_name(actor), withdrawal_id, from_status))
            row = cur.fetchone()
            if row is None:
                cur.execute("SELECT status FROM partner_withdrawals WHERE id = %s", (withdrawal_id,))
                current = cur.fetchone()
                if current is None:
                    raise errors.NotFound("withdrawal not found")
                _audit(cur, actor, "partner_withdrawal_%s" % action, {"withdrawal_id": withdrawal_id,
                                                                      "status": current["status"]},
                       outcome="rejected")
                cur.connection.commit()
                raise errors.Conflict("the withdrawal is %s already" % current["status"],
                                      {"status": [current["status"]]})
            if action == "reject":
                cur.execute("INSERT INTO partner_ledger (partner_id, currency, kind, amount, balance_after, "
                            "withdrawal_id) VALUES (%s, %s, 'withdrawal_return', %s, 0, %s)",
                            (row["partner_id"], row["currency"], row["amount"], row["id"]))
            elif method == "payout":
                # Handed to the payments service by event, with a key that makes a repeated send harmless.
                outbox.write_event(cur, SOURCE, PARTNER_PAYOUT_REQUESTED, {
                    "withdrawal_id": row["id"], "partner_id": row["partner_id"], "currency": row["currency"],
                    "amount": money.to_str(row["amount"]), "to_account": row["to_account"],
                    "idempotency_key": "partner-withdrawal-%s" % row["id"]}, aggregate_id="withdrawal:%s" % row["id"])
            _audit(cur, actor, "partner_withdrawal_%s" % action, {
                "withdrawal_id": row["id"], "partner_id": row["partner_id"], "amount": money.to_str(row["amount"]),
                "currency": row["currency"], "method": row["method"], "reference": reference, "reason": reason})
        return withdrawal_to_wire(row)

    def apply_withdrawal_payout(self, event_id, consumer, data, sent):
        """payments' withdrawal_payout_sent / _failed for a withdrawal approved with method=payout:
        approved -> paid, or approved -> failed with the amount back on the balance (a `withdrawal_return`, as a
        rejection does; UNIQUE(withdrawal_id, kind) keeps it to one). Compare-and-set on `approved`, deduped by
        the inbox, audited."""
        actor = {"name": "payments", "kind": "system"}
        with self.db.transaction() as cur:
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
                _audit(cur, actor, "partner_withdrawal_%s" % to_status, detail, outcome="rejected")
                return None
            if not sent:
                cur.execute("INSERT INTO partner_ledger (partner_id, currency, kind, amount, balance_after, "
                            "withdrawal_id) VALUES (%s, %s, 'withdrawal_return', %s, 0, %s)",
                            (row["partner_id"], row["currency"], row["amount"], row["id"]))
            _audit(cur, actor, "partner_withdrawal_%s" % to_status, detail)
        return withdrawal_to_wire(row)

    # -- administration ----------------------------------------------------------------------------------------
    PARTNER_LIST_SQL = """
    SELECT p.*, a.email, a.language,
           (SELECT count(*) FROM partner_clicks c WHERE c.partner_id = p.id) AS clicks,
           (SELECT count(*) FROM orders o WHERE upper(o.partner_code) = p.code) AS referred_orders,
           (SELECT count(*) FROM partner_ledger l WHERE l.partner_id = p.id AND l.kind = 'credit') AS credits
      FROM partners p JOIN accounts a ON a.id = p.account_id
    """

    def _admin_partner(self, row):
        wire = partner_to_wire(row)
        wire.update(email=row["email"], clicks=row["clicks"], referred_orders=row["referred_orders"],
                    credits=row["credits"], balances=self.balances(row["id"]))
        return wire

    def list_partners(self, filters=None):
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
        rows = self.db.fetchall(self.PARTNER_LIST_SQL + (" WHERE " + " AND ".join(where) if where else "") +
                                " ORDER BY p.id DESC LIMIT %s", params + [limit + 1])
        return {"items": [self._admin_partner(r) for r in rows[:limit]],
                "next_cursor": str(rows[limit - 1]["id"]) if len(rows) > limit else None}

    def get_partner(self, partner_id):
        row = self.db.fetchone(self.PARTNER_LIST_SQL + " WHERE p.id = %s", (partner_id,))
        if row is None:
            raise errors.NotFound("partner not found")
        wire = self._admin_partner(row)
        wire["ledger"] = self.ledger(partner_id)["items"]
        wire["withdrawals"] = self.list_withdrawals({"partner_id": partner_id, "limit": 100})["items"]
        return wire

    def update_partner(self, partner_id, changes, actor):
        """Admin: the partner's own commission rule (percent + base; both null = use the global one) and
        whether the partner earns at all. Audited with before and after."""
        changes = dict(changes or {})
        fields, values = {}, {}
        unknown = set(changes) - {"percent", "base", "active"}
        for key in sorted(unknown):
            fields[key] = ["cannot be changed here"]
        if "percent" in changes or "base" in changes:
            percent, base = changes.get("percent"), changes.get("base")
            if percent is None and base is None:
                values.update(percent=None, base=None)
            else:
                try:
                    values["percent"] = rules.parse_percent(percent)
                    values["base"] = rules.parse_base(base or "margin")
                except rules.RuleError as exc:
                    fields.update(exc.fields)
        if "active" in changes:
            if not isinstance(changes["active"], bool):
                fields["active"] = ["true or false"]
            else:
                values["active"] = changes["active"]
        if fields:
            raise errors.ValidationFailed("invalid partner", fields)
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM partners WHERE id = %s FOR UPDATE", (partner_id,))
            before = cur.fetchone()
            if before is None:
                raise errors.NotFound("partner not found")
            if values:
                cur.execute("UPDATE partners SET " + ", ".join("%s = %%(%s)s" % (k, k) for k in values) +
                            ", updated_at = now() WHERE id = %(id)s", dict(values, id=partner_id))
                _audit(cur, actor, "partner_update", {
                    "partner_id": partner_id, "code": before["code"],
                    "before": {k: _plain(before[k]) for k in values},
                    "after": {k: _plain(v) for k, v in values.items()}})
        return self.get_partner(partner_id)

    def get_commission(self):
        s = self.db.fetchone("SELECT * FROM commission_settings WHERE id = 1")
        directions = self.db.fetchall(
            "SELECT dc.*, d.currency_in, d.currency_out, d.exchange_type FROM direction_commissions dc "
            "JOIN directions d ON d.id = dc.direction_id ORDER BY dc.direction_id")
        return {"percent": money.to_str(s["percent"]), "base": s["base"],
                "min_withdrawal": money.to_str(s["min_withdrawal"]), "version": s["version"],
                "updated_by": s["updated_by"], "updated_at": _iso(s["updated_at"]),
                "directions": [{"direction_id": d["direction_id"], "percent": money.to_str(d["percent"]),
                                "base": d["base"], "pair": "%s-%s %s" % (d["currency_in"], d["currency_out"],
                                                                        d["exchange_type"]),
                                "updated_by": d["updated_by"]} for d in directions]}

    def update_commission(self, changes, actor, expected_version=None):
        """Admin: the global rule and the minimum withdrawal. `expected_version` makes it a compare-and-set."""
        changes = dict(changes or {})
        fields, values = {}, {}
        for key in sorted(set(changes) - {"percent", "base", "min_withdrawal"}):
            fields[key] = ["cannot be changed here"]
        try:
            if "percent" in changes:
                values["percent"] = rules.parse_percent(changes["percent"])
            if "base" in changes:
                values["base"] = rules.parse_base(changes["base"])
        except rules.RuleError as exc:
            fields.update(exc.fields)
        if "min_withdrawal" in changes:
            try:
                values["min_withdrawal"] = money.parse_amount(changes["min_withdrawal"])
            except money.AmountError as exc:
                fields["min_withdrawal"] = [str(exc)]
        if fields:
            raise errors.ValidationFailed("invalid commission settings", fields)
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM commission_settings WHERE id = 1 FOR UPDATE")
            before = cur.fetchone()
            if expected_version is not None and int(expected_version) != before["version"]:
                raise errors.Conflict("changed meanwhile (version %s)" % before["version"],
                                      {"version": [str(before["version"])]})
            if values:
                cur.execute("UPDATE commission_settings SET " + ", ".join("%s = %%(%s)s" % (k, k) for k in values) +
                            ", version = version + 1, updated_by = %(actor)s, updated_at = now() WHERE id = 1",
                            dict(values, actor=actor_name(actor)))
                _audit(cur, actor, "commission_update", {
                    "before": {k: _plain(before[k]) for k in values},
                    "after": {k: _plain(v) for k, v in values.items()}})
        return self.get_commission()

    def set_direction_commission(self, direction_id, rule, actor):
        """Admin: a direction's own rule ({percent, base}), or None to remove it."""
        with self.db.transaction() as cur:
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
                    percent = rules.parse_percent((rule or {}).get("percent"))
                    base = rules.parse_base((rule or {}).get("base") or "margin")
                except rules.RuleError as exc:
                    raise _rule_error(exc)
                cur.execute("INSERT INTO direction_commissions (direction_id, percent, base, updated_by) "
                            "VALUES (%s, %s, %s, %s) ON CONFLICT (direction_id) DO UPDATE SET "
                            "percent = EXCLUDED.percent, base = EXCLUDED.base, updated_by = EXCLUDED.updated_by, "
                            "updated_at = now()", (direction_id, percent, base, actor_name(actor)))
                after = {"percent": money.to_str(percent), "base": base}
            _audit(cur, actor, "direction_commission_update", {
                "direction_id": direction_id,
                "before": {k: _plain(v) for k, v in before.items()} if before else None, "after": after})
        return self.get_commission()


def _plain(value):
    return money.to_str(value) if isinstance(value, money.Decimal) else value


class PartnerStoreProvider(DependencyProvider):
    """The partner store for the orders service's workers, on the orders store's own connection pool (no second
    pool): found among the container's dependencies when first needed."""

    store = None

    def get_dependency(self, worker_ctx):
        if self.store is None:
            database = next(d.database for d in self.container.dependencies
                            if getattr(getattr(d, "database", None), "schema", None) == "orders")
            self.store = PartnerStore(database)
        return self.store
