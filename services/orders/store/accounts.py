"""Customer accounts (docs/partners.md): sign-up and its confirmation, sessions, password resets and changes, sign-in
throttling, the optional second factor (TOTP), and the orders an account sees. Only hashes of passwords, link
tokens and session tokens are stored; letters leave as outbox events the notifier sends."""
import math
import secrets

from libs import errors, outbox
from libs.audit import write_audit
from libs.contracts import events
from services.orders.domain import accounts as rules
from services.orders.schemas import account_to_wire, order_to_wire

SOURCE = events.ORDERS


def _audit(cur, actor, action, detail=None, outcome="ok"):
    write_audit(cur, actor, action, outcome, detail, order_id=None)


def _customer(account_id):
    return {"name": "account:%s" % account_id, "kind": "customer"}


def _account_by_email(cur, email, lock=False):
    cur.execute("SELECT * FROM accounts WHERE lower(email) = lower(%s)" + (" FOR UPDATE" if lock else ""), (email,))
    return cur.fetchone()


def _request_seen(cur, request_id):
    """A retried call (same request_id) of a sign-up or reset that already wrote its token."""
    if not request_id:
        return False
    cur.execute("SELECT 1 FROM account_tokens WHERE request_id = %s", (request_id,))
    return cur.fetchone() is not None


def account_wire(db, account):
    partner = db.fetchone("SELECT * FROM partners WHERE account_id = %s", (account["id"],))
    totp = db.fetchone("SELECT 1 FROM account_totp WHERE account_id = %s AND confirmed_at IS NOT NULL",
                       (account["id"],))
    return account_to_wire(account, partner, totp is not None)


def account_by_email(db, email):
    return db.fetchone("SELECT * FROM accounts WHERE lower(email) = lower(%s)", (email,)) if email else None


def signup(db, email, password_hash, language, request_id, raw_token, ttl, confirm_url):
    """The account (unconfirmed) and a confirmation letter with `confirm_url`; a confirmed account gets no letter.
    Returns {"letter": bool}."""
    with db.transaction() as cur:
        if _request_seen(cur, request_id):
            return {"letter": True}
        cur.execute("INSERT INTO accounts (email, password_hash, language) VALUES (%s, %s, %s) "
                    "ON CONFLICT ((lower(email))) DO NOTHING", (email, password_hash, language))
        account = _account_by_email(cur, email, lock=True)
        if account["email_confirmed_at"] is not None:
            _audit(cur, _customer(account["id"]), "account_signup", {"email": email}, outcome="already_confirmed")
            return {"letter": False}
        cur.execute("INSERT INTO account_tokens (token_hash, account_id, purpose, password_hash, request_id, "
                    "expires_at) VALUES (%s, %s, 'confirm', %s, %s, now() + %s) RETURNING id",
                    (rules.token_hash(raw_token), account["id"], password_hash, request_id, ttl))
        token_id = cur.fetchone()["id"]
        outbox.write_event(cur, SOURCE, events.ACCOUNT_SIGNUP_REQUESTED, {
            "account_id": account["id"], "email": account["email"], "language": language,
            "token_id": token_id, "confirm_url": confirm_url,
            "expires_at": (events.utcnow() + ttl).isoformat()}, aggregate_id="account:%s" % account["id"])
        _audit(cur, _customer(account["id"]), "account_signup", {"email": email, "token_id": token_id})
    return {"letter": True}


def _use_token(cur, raw, purpose):
    cur.execute("SELECT t.*, a.active FROM account_tokens t JOIN accounts a ON a.id = t.account_id "
                "WHERE t.token_hash = %s AND t.purpose = %s FOR UPDATE OF t", (rules.token_hash(raw), purpose))
    row = cur.fetchone()
    if row is None or row["used_at"] is not None or row["expires_at"] <= events.utcnow() or not row["active"]:
        raise errors.ValidationFailed("invalid token", {"token": ["invalid or expired"]})
    # Every other open token of this purpose ends too: the newest letter is not the only one that works.
    cur.execute("UPDATE account_tokens SET used_at = now() WHERE account_id = %s AND purpose = %s "
                "AND used_at IS NULL", (row["account_id"], purpose))
    return row


CONFIRM_MAX_FAILURES = 5   # wrong passwords typed with one confirmation link before the link ends


def open_confirm_token(db, raw_token):
    """The open sign-up token of a link (its id and the password hash of that sign-up), or a 422 `token`."""
    row = db.fetchone("SELECT t.id, t.password_hash, t.used_at, t.expires_at, a.active FROM account_tokens t "
                      "JOIN accounts a ON a.id = t.account_id WHERE t.token_hash = %s AND t.purpose = 'confirm'",
                      (rules.token_hash(raw_token),))
    if row is None or row["used_at"] is not None or row["expires_at"] <= events.utcnow() or not row["active"]:
        raise errors.ValidationFailed("invalid token", {"token": ["invalid or expired"]})
    return row


def confirm_failed(db, token_id):
    """A wrong password with a confirmation link: counted; the link ends after CONFIRM_MAX_FAILURES."""
    with db.transaction() as cur:
        cur.execute("UPDATE account_tokens SET failed_attempts = failed_attempts + 1, "
                    "used_at = CASE WHEN failed_attempts + 1 >= %s THEN now() ELSE used_at END "
                    "WHERE id = %s AND used_at IS NULL RETURNING account_id, failed_attempts",
                    (CONFIRM_MAX_FAILURES, token_id))
        row = cur.fetchone()
        if row:
            _audit(cur, _customer(row["account_id"]), "account_confirm", {"token_id": token_id,
                                                                        "failed_attempts": row["failed_attempts"]},
                   outcome="wrong_password")


def confirm(db, raw_token):
    """The link of the sign-up letter, with the password of that sign-up proven by the caller
    (services/orders/dependencies.py): the e-mail is confirmed and that password set."""
    with db.transaction() as cur:
        token = _use_token(cur, raw_token, "confirm")
        cur.execute("UPDATE accounts SET email_confirmed_at = COALESCE(email_confirmed_at, now()), "
                    "password_hash = %s, password_changed_at = now(), updated_at = now() "
                    "WHERE id = %s RETURNING *", (token["password_hash"], token["account_id"]))
        account = cur.fetchone()
        _audit(cur, _customer(account["id"]), "account_confirm", {"token_id": token["id"]})
    return account_wire(db, account)


def claim_sign_in_attempt(db, email_key, ip, policy):
    """Count this sign-in attempt of (e-mail, address) BEFORE the password is checked, unless the pair is blocked:
    {"allowed": True} or {"allowed": False, "retry_after": seconds}. The row is locked for the check and the count,
    so parallel attempts queue on it and each sees the count and the block the previous one left (a "check, then
    count after the answer" would let every parallel request through). A successful sign-in resets the row."""
    with db.transaction() as cur:
        cur.execute("INSERT INTO account_signin_throttle (email_key, ip) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (email_key, ip))
        cur.execute("SELECT failures, blocked_until, updated_at, now() AS now FROM account_signin_throttle "
                    "WHERE email_key = %s AND ip = %s FOR UPDATE", (email_key, ip))
        row = cur.fetchone()
        if row["blocked_until"] > row["now"]:
            return {"allowed": False,
                    "retry_after": max(1, math.ceil((row["blocked_until"] - row["now"]).total_seconds()))}
        fresh = (row["now"] - row["updated_at"]).total_seconds() > policy.forget_seconds
        failures = 1 if fresh else row["failures"] + 1
        cur.execute("UPDATE account_signin_throttle SET failures = %s, updated_at = now(), "
                    "blocked_until = now() + make_interval(secs => %s) WHERE email_key = %s AND ip = %s",
                    (failures, policy.delay_after(failures), email_key, ip))
        if secrets.randbelow(200) == 0:  # now and then, forget pairs nobody has tried for long
            cur.execute("DELETE FROM account_signin_throttle WHERE updated_at < now() - make_interval(secs => %s) "
                        "AND blocked_until < now()", (policy.forget_seconds,))
    return {"allowed": True, "failures": failures}


def audit_sign_in(db, account, email, kind, outcome, ip=None, detail=None, action="account_sign_in"):
    actor = {"name": "account:%s" % account["id"] if account else email[:100], "kind": "customer", "ip": ip}
    with db.transaction() as cur:
        _audit(cur, actor, action, dict(detail or {}, kind=kind), outcome=outcome)


def open_session(db, account, password_ok, email, session_hash, kind, ttl_seconds, ip=None, throttle_key=None):
    """The end of a sign-in whose password (and code, if the account has TOTP) was checked (password_ok): a
    session whose hash the gateway sends, or the reason there is none. Every attempt is audited; a success
    forgets the failures of (throttle_key, ip)."""
    actor = {"name": "account:%s" % account["id"] if account else email[:100], "kind": "customer", "ip": ip}
    with db.transaction() as cur:
        if not password_ok or account is None or not account["active"]:
            _audit(cur, actor, "account_sign_in", {"kind": kind}, outcome="failed")
            return {"ok": False, "reason": "invalid"}
        if account["email_confirmed_at"] is None:
            _audit(cur, actor, "account_sign_in", {"kind": kind}, outcome="unconfirmed")
            return {"ok": False, "reason": "unconfirmed"}
        if throttle_key is not None:
            cur.execute("DELETE FROM account_signin_throttle WHERE email_key = %s AND ip = %s",
                        (throttle_key, ip or ""))
        cur.execute("INSERT INTO account_sessions (token_hash, account_id, kind, ip, expires_at) "
                    "VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s)) "
                    "ON CONFLICT (token_hash) DO NOTHING", (session_hash, account["id"], kind, ip,
                                                            float(ttl_seconds)))
        cur.execute("SELECT expires_at FROM account_sessions WHERE token_hash = %s", (session_hash,))
        expires_at = cur.fetchone()["expires_at"]
        _audit(cur, actor, "account_sign_in", {"kind": kind})
    return {"ok": True, "account": account_wire(db, account), "expires_at": expires_at.isoformat()}


def account_for_session(db, session_hash, idle_seconds=None):
    """The account of a live session, or None (unknown, revoked, expired, idle too long, account disabled)."""
    row = db.fetchone(
        "SELECT s.kind, s.last_seen_at, s.expires_at, a.* FROM account_sessions s "
        "JOIN accounts a ON a.id = s.account_id WHERE s.token_hash = %s AND s.revoked_at IS NULL",
        (session_hash,))
    if row is None or not row["active"]:
        return None
    state = rules.session_state(row["expires_at"], row["last_seen_at"], events.utcnow(), idle_seconds)
    if state == "expired":
        return None
    if state == "idle":
        sign_out(db, session_hash)
        return None
    if state == "stale":
        with db.transaction() as cur:
            cur.execute("UPDATE account_sessions SET last_seen_at = now() WHERE token_hash = %s", (session_hash,))
    return account_wire(db, row)


def sign_out(db, session_hash):
    with db.transaction() as cur:
        cur.execute("UPDATE account_sessions SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
                    (session_hash,))
        return cur.rowcount == 1


def request_password_reset(db, email, request_id, raw_token, ttl, reset_url):
    """A reset letter with `reset_url` if such an account exists and is active. Returns {"letter": bool}."""
    with db.transaction() as cur:
        if _request_seen(cur, request_id):
            return {"letter": True}
        account = _account_by_email(cur, email, lock=True)
        if account is None or not account["active"]:
            return {"letter": False}
        cur.execute("INSERT INTO account_tokens (token_hash, account_id, purpose, request_id, expires_at) "
                    "VALUES (%s, %s, 'reset', %s, now() + %s) RETURNING id",
                    (rules.token_hash(raw_token), account["id"], request_id, ttl))
        token_id = cur.fetchone()["id"]
        outbox.write_event(cur, SOURCE, events.PASSWORD_RESET_REQUESTED, {
            "account_id": account["id"], "email": account["email"], "language": account["language"],
            "token_id": token_id, "reset_url": reset_url,
            "expires_at": (events.utcnow() + ttl).isoformat()}, aggregate_id="account:%s" % account["id"])
        _audit(cur, _customer(account["id"]), "account_password_reset_request", {"token_id": token_id})
    return {"letter": True}


def reset_password(db, raw_token, password_hash):
    """The link of the reset letter: a new password; every session of the account ends. It also proves the
    mailbox, so an account still waiting for confirmation is confirmed by it."""
    with db.transaction() as cur:
        token = _use_token(cur, raw_token, "reset")
        cur.execute("UPDATE accounts SET password_hash = %s, password_changed_at = now(), updated_at = now(), "
                    "email_confirmed_at = COALESCE(email_confirmed_at, now()) WHERE id = %s RETURNING *",
                    (password_hash, token["account_id"]))
        account = cur.fetchone()
        cur.execute("UPDATE account_sessions SET revoked_at = now() WHERE account_id = %s AND revoked_at IS NULL",
                    (account["id"],))
        _audit(cur, _customer(account["id"]), "account_password_reset",
               {"token_id": token["id"], "sessions_ended": cur.rowcount})
        write_notice(cur, account, "password_reset", "password_reset:%s" % token["id"])
    return account_wire(db, account)


def write_notice(cur, account, notice, key, **extra):
    """A security letter to the account's address (the notifier dedupes it on `key`), in the transaction of the
    change it tells about."""
    outbox.write_event(cur, SOURCE, events.ACCOUNT_NOTICE, dict(
        {"account_id": account["id"], "email": account["email"], "language": account["language"],
         "notice": notice, "key": key}, **extra), aggregate_id="account:%s" % account["id"])


def account_row(db, account_id):
    return db.fetchone("SELECT * FROM accounts WHERE id = %s", (account_id,))


def change_password(db, account_id, password_hash, keep_session_hash=None):
    """A signed-in account chose a new password (its current one checked by the caller): every other session
    ends, and a letter tells the address."""
    with db.transaction() as cur:
        cur.execute("UPDATE accounts SET password_hash = %s, password_changed_at = now(), updated_at = now() "
                    "WHERE id = %s AND active RETURNING *", (password_hash, account_id))
        account = cur.fetchone()
        if account is None:
            raise errors.NotFound("account not found")
        cur.execute("UPDATE account_sessions SET revoked_at = now() WHERE account_id = %s AND revoked_at IS NULL "
                    "AND token_hash IS DISTINCT FROM %s", (account_id, keep_session_hash))
        ended = cur.rowcount
        _audit(cur, _customer(account_id), "account_password_change", {"sessions_ended": ended})
        write_notice(cur, account, "password_changed",
                     "password_changed:%s:%s" % (account_id, account["password_changed_at"].isoformat()))
    return account_wire(db, account)


# -- the second factor (TOTP) ---------------------------------------------------------------------------------------
def totp_row(db, account_id):
    return db.fetchone("SELECT * FROM account_totp WHERE account_id = %s", (account_id,))


def totp_begin(db, account_id, secret):
    """Start (or restart) enrolment with `secret`; False if the account has TOTP on already."""
    with db.transaction() as cur:
        cur.execute("INSERT INTO account_totp (account_id, secret) VALUES (%s, %s) "
                    "ON CONFLICT (account_id) DO UPDATE SET secret = EXCLUDED.secret, created_at = now(), "
                    "last_step = 0 WHERE account_totp.confirmed_at IS NULL RETURNING account_id",
                    (account_id, secret))
        started = cur.fetchone() is not None
        if started:
            _audit(cur, _customer(account_id), "account_totp_begin")
        return started


def totp_use(db, account_id, code, confirmed, now_seconds):
    """Check a code against the account's secret (confirmed=False: the enrolment's first code, which switches TOTP
    on) and remember its step, under the row's lock: a code is accepted once, even by two parallel calls."""
    with db.transaction() as cur:
        cur.execute("SELECT secret, last_step FROM account_totp WHERE account_id = %s AND (confirmed_at IS NOT NULL) "
                    "= %s FOR UPDATE", (account_id, confirmed))
        row = cur.fetchone()
        step = rules.match_totp(row["secret"], code, row["last_step"], now_seconds) if row else None
        if step is None:
            if row is not None and not confirmed:
                _audit(cur, _customer(account_id), "account_totp_enrol", outcome="wrong_code")
            return False
        cur.execute("UPDATE account_totp SET last_step = %s, confirmed_at = COALESCE(confirmed_at, now()) "
                    "WHERE account_id = %s", (step, account_id))
        if not confirmed:
            _audit(cur, _customer(account_id), "account_totp_enrol")
        return True


def totp_disable(db, account_id):
    with db.transaction() as cur:
        cur.execute("DELETE FROM account_totp WHERE account_id = %s", (account_id,))
        removed = cur.rowcount == 1
        if removed:
            _audit(cur, _customer(account_id), "account_totp_disable")
        return removed


def list_account_orders(db, account_id, limit=50, cursor=None):
    """The account's exchanges: every order placed with its confirmed e-mail (joined when read, so orders
    placed before the sign-up belong to it too)."""
    limit = max(1, min(int(limit or 50), 200))
    params = [account_id]
    where = ""
    if cursor:
        where = " AND o.id < %s"
        params.append(int(cursor))
    rows = db.fetchall(
        "SELECT o.* FROM accounts a JOIN orders o ON lower(o.email) = lower(a.email) "
        "WHERE a.id = %s AND a.email_confirmed_at IS NOT NULL AND o.status <> 'deleted'" + where +
        " ORDER BY o.id DESC LIMIT %s", params + [limit + 1])
    items = [order_to_wire(r) for r in rows[:limit]]
    return {"items": items, "next_cursor": str(rows[limit - 1]["id"]) if len(rows) > limit else None}
