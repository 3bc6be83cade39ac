"""Rate limits of the sign-in endpoints: flask-limiter with a storage in PostgreSQL (gateway.rate_limits), so a
limit holds across gunicorn workers and restarts without Redis."""
import secrets
import time

import psycopg2
from flask import current_app, g, request
from flask_limiter import Limiter
from limits.storage import Storage

from gateway.security.caller import client_ip, current_staff
from gateway.security.hashing import sha256_hex
from libs.db import Database


def _text(key):
    # PostgreSQL text cannot hold NUL: a key built from a client's input (an e-mail, a username) must not 500.
    return key.replace("\x00", "\\0")


class PostgresStorage(Storage):
    """Fixed-window counters for flask-limiter (limits) in gateway.rate_limits, shared by all workers."""

    STORAGE_SCHEME = ["gateway+postgresql"]

    def __init__(self, uri=None, wrap_exceptions=False, url=None, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self.db = Database(url=url, schema="gateway", maxconn=4, application_name="gateway-limits")

    @property
    def base_exceptions(self):
        return psycopg2.Error

    def incr(self, key, expiry, amount=1):
        key = _text(key)
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO rate_limits (key, hits, expires_at) VALUES (%s, %s, now() + make_interval(secs => %s)) "
                "ON CONFLICT (key) DO UPDATE SET "
                "  hits = CASE WHEN rate_limits.expires_at <= now() THEN EXCLUDED.hits "
                "              ELSE rate_limits.hits + EXCLUDED.hits END, "
                "  expires_at = CASE WHEN rate_limits.expires_at <= now() THEN EXCLUDED.expires_at "
                "                    ELSE rate_limits.expires_at END "
                "RETURNING hits", (key, amount, float(expiry)))
            hits = cur.fetchone()["hits"]
            if secrets.randbelow(200) == 0:  # now and then, drop windows that are long over
                cur.execute("DELETE FROM rate_limits WHERE expires_at < now() - interval '1 hour'")
            return hits

    def get(self, key):
        key = _text(key)
        row = self.db.fetchone("SELECT hits FROM rate_limits WHERE key = %s AND expires_at > now()", (key,))
        return row["hits"] if row else 0

    def get_expiry(self, key):
        key = _text(key)
        row = self.db.fetchone("SELECT extract(epoch FROM expires_at)::float8 AS at FROM rate_limits "
                               "WHERE key = %s AND expires_at > now()", (key,))
        return row["at"] if row else time.time()

    def check(self):
        try:
            self.db.fetchone("SELECT 1")
            return True
        except psycopg2.Error:
            return False

    def reset(self):
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM rate_limits")
            return cur.rowcount

    def clear(self, key):
        key = _text(key)
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM rate_limits WHERE key = %s", (key,))


def _submitted_username():
    data = request.get_json(silent=True) if request.is_json else None
    name = (data or {}).get("username") if isinstance(data, dict) else request.form.get("username")
    return (name if isinstance(name, str) else "")[:64].strip().lower()


def ip_and_username():
    return "%s|%s" % (client_ip(), _submitted_username())


def ip_key():
    return client_ip()


def pending_staff_key():
    """TOTP step: the limit follows the half-signed-in session (or the API token), whatever address it comes from."""
    session = g.get("auth_session")
    if session:
        return "totp|%s" % session["staff_id"]
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return "totp|%s" % sha256_hex(header[7:].strip()[:200])[:32]
    return "totp|%s" % client_ip()


def _failed(response):
    # Only failures use up the budget: people who get it right are never throttled by the people who do not.
    return response.status_code in (401, 423)


def _failed_code(response):
    return response.status_code in (401, 422, 423)  # a wrong enrolment code answers 422


limiter = Limiter(key_func=ip_key, strategy="fixed-window", headers_enabled=True,
                  storage_uri="gateway+postgresql://")


def login_limits(view):
    """Sign-in endpoints: failures per (address, username), and per address (credential stuffing); POST only."""
    view = limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=ip_and_username,
                         methods=["POST"], scope="login-user", deduct_when=_failed)(view)
    return limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT_IP"], key_func=ip_key,
                         methods=["POST"], scope="login-ip", deduct_when=_failed)(view)


def submitted_email():
    data = request.get_json(silent=True) if request.is_json else None
    email = (data or {}).get("email") if isinstance(data, dict) else request.form.get("email")
    return (email if isinstance(email, str) else "")[:254].strip().lower()


def order_limits(view):
    """Order creation (POST /api/v1/orders, and the exchange form through it): every attempt counts, per e-mail
    (each order mails that address) and per client address. No `deduct_when`: the count and the check are one
    `INSERT ... ON CONFLICT ... RETURNING` (PostgresStorage.incr), so parallel requests cannot slip past it."""
    view = limiter.limit(lambda: current_app.config["ORDER_RATE_LIMIT_EMAIL"], key_func=submitted_email,
                         methods=["POST"], scope="orders-email", exempt_when=lambda: not submitted_email())(view)
    return limiter.limit(lambda: current_app.config["ORDER_RATE_LIMIT_IP"], key_func=ip_key, methods=["POST"],
                         scope="orders-ip")(view)


def password_change_limits(view):
    """Changing one's own password checks the current one: a stolen session must not become a password oracle."""
    return limiter.limit(lambda: current_app.config["PASSWORD_CHANGE_RATE_LIMIT"], key_func=staff_or_ip_key,
                         methods=["POST", "PUT"], scope="password-change")(view)


def staff_or_ip_key():
    staff = current_staff() or (g.get("auth_session") and {"id": g.auth_session["staff_id"]})
    return "staff|%s" % staff["id"] if staff else client_ip()


def code_limits(view):
    return limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=pending_staff_key,
                         methods=["POST"], scope="login-code", deduct_when=_failed_code)(view)
