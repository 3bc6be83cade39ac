"""Staff security of the gateway (issue 6; reliability.md §8, T25): server-side sessions, TOTP, sign-in lockout,
rate limits in PostgreSQL, CSRF, security headers, alerts to the admin address.

Why each piece is the way it is (longer in docs/pages.md):
- Browser sessions live in gateway.sessions: the cookie holds 256 random bits, the table only their SHA-256, so
  sign-out, disabling a staff member or an admin's "end session" take effect at once, on every worker.
  A new id is issued at every step of sign-in (password -> code -> signed in); idle and absolute timeouts.
- CSRF: flask-wtf's CSRFProtect on every non-/api request that changes state (forms and page calls). The JSON API
  under /api is exempt because it never authenticates a state-changing call from a cookie: only from an
  `Authorization: Bearer` header, which a foreign site cannot make a browser send.
- Rate limits: flask-limiter with a storage in PostgreSQL, so the limit holds across gunicorn workers and
  restarts without Redis. Lockout counts failures per username (existing or not: no user enumeration).
"""
import datetime
import hashlib
import hmac
import logging
import secrets
import threading
import time
import uuid

import psycopg2
import pyotp
from flask import current_app, g, request
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect
from limits.storage import Storage

from libs.db import Database

log = logging.getLogger(__name__)

csrf = CSRFProtect()
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def client_ip():
    return request.remote_addr or "-"


def _hash(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


# -- rate-limit storage in PostgreSQL ------------------------------------------------------------------------------
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
        row = self.db.fetchone("SELECT hits FROM rate_limits WHERE key = %s AND expires_at > now()", (key,))
        return row["hits"] if row else 0

    def get_expiry(self, key):
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
        return "totp|%s" % _hash(header[7:].strip()[:200])[:32]
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


def code_limits(view):
    return limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=pending_staff_key,
                         methods=["POST"], scope="login-code", deduct_when=_failed_code)(view)


# -- sessions ------------------------------------------------------------------------------------------------------
STAGES = ("password", "enrol", "full")


class SessionStore:
    def __init__(self, db, cfg):
        self.db = db
        self.idle = datetime.timedelta(minutes=cfg["SESSION_IDLE_MINUTES"])
        self.absolute = datetime.timedelta(hours=cfg["SESSION_MAX_HOURS"])
        self.pre_auth = datetime.timedelta(minutes=cfg["PRE_AUTH_MINUTES"])

    def create(self, staff_id, stage, ip, user_agent, cur=None):
        """A fresh random id for every step of sign-in (ASVS 7.2.4): an id seen before sign-in is worthless."""
        raw = secrets.token_urlsafe(32)
        lifetime = self.absolute if stage == "full" else self.pre_auth
        sql = ("INSERT INTO sessions (id_hash, staff_id, stage, expires_at, ip, user_agent) "
               "VALUES (%s, %s, %s, now() + %s, %s, %s)")
        params = (_hash(raw), staff_id, stage, lifetime, ip, (user_agent or "")[:300])
        if cur is not None:
            cur.execute(sql, params)
        else:
            with self.db.transaction() as c:
                c.execute(sql, params)
        return raw

    def load(self, raw):
        """The live session for a cookie value (with its staff member), or None; ends idle ones."""
        if not raw or len(raw) > 100:
            return None
        row = self.db.fetchone(
            "SELECT x.id_hash, x.staff_id, x.stage, x.created_at, x.last_seen_at, x.expires_at, x.ip, "
            "       s.username, s.role, s.active, s.totp_required "
            "  FROM sessions x JOIN staff s ON s.id = x.staff_id "
            " WHERE x.id_hash = %s AND x.revoked_at IS NULL", (_hash(raw),))
        if row is None:
            return None
        now = utcnow()
        if not row["active"]:
            self.revoke_hash(row["id_hash"], "staff disabled")
            return None
        if row["expires_at"] <= now:
            self.revoke_hash(row["id_hash"], "expired")
            return None
        if row["stage"] == "full" and now - row["last_seen_at"] > self.idle:
            self.revoke_hash(row["id_hash"], "idle")
            return None
        if now - row["last_seen_at"] > datetime.timedelta(seconds=30):  # one write a minute at most, not per click
            with self.db.transaction() as cur:
                cur.execute("UPDATE sessions SET last_seen_at = now() WHERE id_hash = %s", (row["id_hash"],))
        return row

    def revoke(self, raw, reason):
        if raw and len(raw) <= 100:
            return self.revoke_hash(_hash(raw), reason)
        return False

    def revoke_hash(self, id_hash, reason):
        with self.db.transaction() as cur:
            cur.execute("UPDATE sessions SET revoked_at = now(), revoked_reason = %s "
                        "WHERE id_hash = %s AND revoked_at IS NULL", (reason, id_hash))
            return cur.rowcount == 1

    def revoke_all(self, staff_id, reason, cur=None):
        """Every browser session and API token of a staff member (disabled, role or password changed)."""
        def run(c):
            c.execute("UPDATE sessions SET revoked_at = now(), revoked_reason = %s "
                      "WHERE staff_id = %s AND revoked_at IS NULL", (reason, staff_id))
            n = c.rowcount
            c.execute("UPDATE api_tokens SET revoked_at = now() WHERE staff_id = %s AND revoked_at IS NULL",
                      (staff_id,))
            return n + c.rowcount
        if cur is not None:
            return run(cur)
        with self.db.transaction() as c:
            return run(c)

    def list_live(self, staff_id=None):
        sql = ("SELECT x.id_hash, x.staff_id, s.username, x.stage, x.created_at, x.last_seen_at, x.expires_at, "
               "x.ip, x.user_agent FROM sessions x JOIN staff s ON s.id = x.staff_id "
               "WHERE x.revoked_at IS NULL AND x.expires_at > now() AND x.stage = 'full'")
        params = []
        if staff_id is not None:
            sql += " AND x.staff_id = %s"
            params.append(staff_id)
        return self.db.fetchall(sql + " ORDER BY x.last_seen_at DESC LIMIT 200", params)


# -- TOTP ----------------------------------------------------------------------------------------------------------
class TotpStore:
    """RFC 6238 codes (30 s, 6 digits) with pyotp; a step is accepted once (replay), one step of clock drift."""

    def __init__(self, db, issuer):
        self.db = db
        self.issuer = issuer

    def status(self, staff_id):
        row = self.db.fetchone("SELECT confirmed_at FROM staff_totp WHERE staff_id = %s", (staff_id,))
        return bool(row and row["confirmed_at"])

    def begin(self, staff_id, username):
        """Start (or restart) enrolment: a new secret, shown once. None if already enrolled."""
        secret = pyotp.random_base32()
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO staff_totp (staff_id, secret) VALUES (%s, %s) "
                        "ON CONFLICT (staff_id) DO UPDATE SET secret = EXCLUDED.secret, created_at = now() "
                        "WHERE staff_totp.confirmed_at IS NULL RETURNING staff_id", (staff_id, secret))
            if cur.fetchone() is None:
                return None
        return {"secret": secret, "otpauth_uri": self.uri(secret, username)}

    def uri(self, secret, username):
        return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=self.issuer)

    def pending_secret(self, staff_id):
        row = self.db.fetchone("SELECT secret FROM staff_totp WHERE staff_id = %s AND confirmed_at IS NULL",
                               (staff_id,))
        return row["secret"] if row else None

    @staticmethod
    def _match(secret, code, last_step):
        code = (code or "").strip().replace(" ", "")
        if len(code) != 6 or not code.isdigit():
            return None
        totp = pyotp.TOTP(secret)
        now_step = int(time.time()) // totp.interval
        for step in (now_step, now_step - 1, now_step + 1):
            if step > last_step and hmac.compare_digest(totp.generate_otp(step), code):
                return step
        return None

    def confirm(self, staff_id, code):
        """Finish enrolment with a first code from the authenticator app."""
        with self.db.transaction() as cur:
            cur.execute("SELECT secret, last_step FROM staff_totp WHERE staff_id = %s AND confirmed_at IS NULL "
                        "FOR UPDATE", (staff_id,))
            row = cur.fetchone()
            step = self._match(row["secret"], code, row["last_step"]) if row else None
            if step is None:
                return False
            cur.execute("UPDATE staff_totp SET confirmed_at = now(), last_step = %s WHERE staff_id = %s",
                        (step, staff_id))
            return True

    def verify(self, staff_id, code):
        with self.db.transaction() as cur:
            cur.execute("SELECT secret, last_step FROM staff_totp WHERE staff_id = %s AND confirmed_at IS NOT NULL "
                        "FOR UPDATE", (staff_id,))
            row = cur.fetchone()
            step = self._match(row["secret"], code, row["last_step"]) if row else None
            if step is None:
                return False
            cur.execute("UPDATE staff_totp SET last_step = %s WHERE staff_id = %s", (step, staff_id))
            return True

    def reset(self, staff_id):
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM staff_totp WHERE staff_id = %s", (staff_id,))
            return cur.rowcount == 1


def totp_needed(staff, cfg):
    """Must this staff member have a second factor before doing anything?"""
    return staff["role"] == "admin" or staff["role"] in cfg["TOTP_REQUIRED_ROLES"] or bool(
        staff.get("totp_required"))


# -- lockout -------------------------------------------------------------------------------------------------------
class Lockout:
    def __init__(self, db, cfg):
        self.db = db
        self.threshold = cfg["LOCKOUT_THRESHOLD"]
        self.window = datetime.timedelta(minutes=cfg["LOCKOUT_WINDOW_MINUTES"])
        self.duration = datetime.timedelta(minutes=cfg["LOCKOUT_MINUTES"])

    def locked_until(self, username):
        row = self.db.fetchone("SELECT locked_until FROM lockouts WHERE username = %s AND locked_until > now()",
                               (username.lower(),))
        return row["locked_until"] if row else None

    def fail(self, username, ip, reason):
        """Record a failure; returns the lock's end when this one locks the account."""
        name = username.lower()[:64]
        with self.db.transaction() as cur:
            # Serialise failures of one username (advisory lock): two workers cannot both stay under the threshold.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('login:' || %s))", (name,))
            cur.execute("INSERT INTO login_failures (username, ip, reason) VALUES (%s, %s, %s)", (name, ip, reason))
            cur.execute("SELECT count(*) AS n FROM login_failures WHERE username = %s AND created_at > now() - %s",
                        (name, self.window))
            if cur.fetchone()["n"] < self.threshold:
                return None
            cur.execute("INSERT INTO lockouts (username, locked_until) VALUES (%s, now() + %s) "
                        "ON CONFLICT (username) DO UPDATE SET locked_until = EXCLUDED.locked_until, created_at = now() "
                        "RETURNING locked_until", (name, self.duration))
            until = cur.fetchone()["locked_until"]
            cur.execute("DELETE FROM login_failures WHERE username = %s", (name,))
            return until

    def succeeded(self, username):
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM login_failures WHERE username = %s", (username.lower(),))

    def unlock(self, username):
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM lockouts WHERE username = %s", (username.lower(),))
            cur.execute("DELETE FROM login_failures WHERE username = %s", (username.lower(),))
            return cur.rowcount >= 0


# -- alerts to the admin address -----------------------------------------------------------------------------------
class Alerts:
    """Security alerts (new sign-in address, settings changed) queued in the caller's transaction and delivered
    through the notifier's `send_admin_alert` RPC by a sweeper thread, retried with backoff until it answers."""

    def __init__(self, db):
        self.db = db
        self._kick = threading.Event()
        self._thread = None
        self._lock = threading.Lock()

    def queue(self, cur, kind, subject, body, extra_to=None):
        cur.execute("INSERT INTO security_alerts (id, kind, subject, body, extra_to) VALUES (%s, %s, %s, %s, %s)",
                    (uuid.uuid4(), kind, subject[:200], body[:4000], extra_to))
        self._kick.set()

    def deliver_pending(self, call, limit=20):
        """call(subject, body, alert_id, extra_to) sends one; returns how many were sent."""
        sent = 0
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM security_alerts WHERE sent_at IS NULL AND next_try_at <= now() "
                        "ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED", (limit,))
            for row in cur.fetchall():
                try:
                    call(row["subject"], row["body"], str(row["id"]), row["extra_to"])
                except Exception as exc:  # noqa: BLE001 - any failure: try again later, never lose the alert
                    delay = min(600, 5 * 2 ** min(row["attempts"], 7))
                    cur.execute("UPDATE security_alerts SET attempts = attempts + 1, last_error = %s, "
                                "next_try_at = now() + make_interval(secs => %s) WHERE id = %s",
                                (("%s: %s" % (type(exc).__name__, exc))[:500], delay, row["id"]))
                    continue
                cur.execute("UPDATE security_alerts SET sent_at = now(), attempts = attempts + 1, last_error = NULL "
                            "WHERE id = %s", (row["id"],))
                sent += 1
        return sent

    def start(self, app):
        """One daemon sweeper per process, started lazily (gunicorn forks after import)."""
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, args=(app,), name="security-alerts", daemon=True)
            self._thread.start()

    def _run(self, app):
        from gateway import rpc

        def call(subject, body, alert_id, extra_to):
            rpc.client().call("notifier", "send_admin_alert", subject, body, key="gateway-alert:" + alert_id,
                              **({"also_to": extra_to} if extra_to else {}))
        interval = app.config["ALERT_SWEEP_SECONDS"]
        while True:
            self._kick.wait(interval)
            self._kick.clear()
            try:
                with app.app_context():
                    while self.deliver_pending(call):
                        pass
            except Exception:  # noqa: BLE001 - the sweeper must survive a database hiccup
                log.exception("security alert sweep failed")


# -- headers -------------------------------------------------------------------------------------------------------
CSP_PAGES = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
             "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
             "object-src 'none'")
CSP_API = "default-src 'none'; frame-ancestors 'none'"


def security_headers(response):
    h = response.headers
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")  # order tokens in URLs never leave for another site
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    hsts = current_app.config.get("HSTS_SECONDS")
    if hsts:
        h.setdefault("Strict-Transport-Security", "max-age=%d; includeSubDomains" % hsts)
    if response.mimetype == "text/html":
        h.setdefault("Content-Security-Policy", CSP_PAGES)
    elif not request.path.startswith("/static/"):
        h.setdefault("Content-Security-Policy", CSP_API)
    if response.mimetype in ("application/json", "text/html", "text/csv") and "Cache-Control" not in h:
        h["Cache-Control"] = "no-store"
    return response


# -- secret key ----------------------------------------------------------------------------------------------------
def load_secret_key(db):
    """GATEWAY_SECRET_KEY, or one random key per database kept in gateway.app_secrets (every worker agrees)."""
    candidate = secrets.token_urlsafe(48)
    with db.transaction() as cur:
        cur.execute("INSERT INTO app_secrets (name, value) VALUES ('secret_key', %s) ON CONFLICT (name) DO NOTHING",
                    (candidate,))
        cur.execute("SELECT value FROM app_secrets WHERE name = 'secret_key'")
        return cur.fetchone()["value"]


# -- wiring --------------------------------------------------------------------------------------------------------
def cookie_name(app):
    # __Host-: only over https, path /, no Domain: a sibling subdomain cannot plant or read it.
    return "__Host-exchanger_staff" if app.config["COOKIE_SECURE"] else "exchanger_staff"


def init_app(app, database):
    cfg = app.config
    if not cfg.get("SECRET_KEY"):
        try:
            cfg["SECRET_KEY"] = load_secret_key(database)
        except psycopg2.Error:
            # Not migrated yet (e.g. a tool importing the app): a per-process key still keeps cookies signed.
            log.warning("no GATEWAY_SECRET_KEY and no gateway.app_secrets table: using a per-process key")
            cfg["SECRET_KEY"] = secrets.token_urlsafe(48)
    # Flask's signed cookie session holds only the CSRF secret, the language and flash messages: no identity.
    cfg.update(SESSION_COOKIE_NAME="exchanger_s", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=cfg["COOKIE_SECURE"])
    cfg.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked below, for every non-/api request
    cfg.setdefault("WTF_CSRF_TIME_LIMIT", int(cfg["SESSION_MAX_HOURS"] * 3600))
    cfg.setdefault("RATELIMIT_STORAGE_OPTIONS", {"url": cfg["DATABASE_URL"]})
    cfg.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    csrf.init_app(app)
    limiter.init_app(app)
    app.extensions["sessions"] = SessionStore(database, cfg)
    app.extensions["totp"] = TotpStore(database, cfg["TOTP_ISSUER"])
    app.extensions["lockout"] = Lockout(database, cfg)
    app.extensions["alerts"] = Alerts(database)

    @app.before_request
    def _csrf_outside_api():
        # /api authenticates state changes only by bearer token (never a cookie), so CSRF cannot apply there.
        if request.method not in SAFE_METHODS and not request.path.startswith("/api/"):
            csrf.protect()

    @app.before_request
    def _start_alert_sweeper():
        app.extensions["alerts"].start(app)

    @app.after_request
    def _audit_changes(response):
        # Every state-changing staff request leaves a line, whatever the view did (orders audit their own too).
        staff = g.get("staff")
        if (request.method not in SAFE_METHODS and staff and not g.get("audited")
                and (request.path.startswith("/api/v1/admin") or request.path.startswith("/admin"))):
            from gateway.auth import staff_store
            staff_store().audit(staff["username"], "%s %s" % (request.method, request.path),
                                outcome=g.get("action_outcome") or (
                                    "ok" if response.status_code < 400 else "http %d" % response.status_code),
                                role=staff["role"], ip=client_ip())
        return response

    app.after_request(security_headers)


def sessions():
    return current_app.extensions["sessions"]


def totp():
    return current_app.extensions["totp"]


def lockout():
    return current_app.extensions["lockout"]


def alerts():
    return current_app.extensions["alerts"]


def staff_cookie():
    return request.cookies.get(cookie_name(current_app))


def set_staff_cookie(response, raw):
    app = current_app
    response.set_cookie(cookie_name(app), raw, httponly=True, secure=app.config["COOKIE_SECURE"], samesite="Strict",
                        path="/", max_age=int(app.config["SESSION_MAX_HOURS"] * 3600))
    return response


def clear_staff_cookie(response):
    app = current_app
    response.delete_cookie(cookie_name(app), path="/", secure=app.config["COOKIE_SECURE"], httponly=True,
                           samesite="Strict")
    return response


def note_address(cur, staff, ip, via):
    """Remember where a staff member signed in from; queue an alert the first time an address is seen."""
    cur.execute("INSERT INTO known_addresses (staff_id, ip) VALUES (%s, %s) ON CONFLICT (staff_id, ip) "
                "DO UPDATE SET last_seen_at = now() RETURNING (xmax = 0) AS inserted", (staff["id"], ip))
    if cur.fetchone()["inserted"]:
        alerts().queue(cur, "new_sign_in_address",
                       "Sign-in from a new address: %s (%s)" % (staff["username"], ip),
                       "Staff member %s (role %s) signed in from %s, an address not seen for this account before, "
                       "via %s at %s UTC.\nIf this was not them, disable the account and end its sessions on the "
                       "staff page." % (staff["username"], staff["role"], ip, via,
                                        utcnow().strftime("%Y-%m-%d %H:%M:%S")))
        return True
    return False
