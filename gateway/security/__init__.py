"""Staff security of the gateway (docs/pages.md): staff accounts and roles, server-side sessions, TOTP, sign-in
lockout, rate limits in PostgreSQL, CSRF, security headers, alerts to the admin address. One module each; this
one wires them into the app.

Why each piece is the way it is (longer in docs/pages.md):
- Browser sessions live in gateway.sessions (sessions.py): the cookie holds only random bits, the table their hash,
  so ending a session takes effect at once on every worker; a new id at every step of sign-in.
- CSRF: flask-wtf's CSRFProtect on every non-/api request that changes state (forms and page calls). The JSON API
  under /api is exempt because it never authenticates a state-changing call from a cookie: only from an
  `Authorization: Bearer` header, which a foreign site cannot make a browser send (caller.py).
- Rate limits: flask-limiter with a storage in PostgreSQL (ratelimits.py), so the limit holds across gunicorn
  workers and restarts without Redis. Lockout counts failures per username (lockout.py; existing or not: no user
  enumeration).
"""
import logging
import secrets

import psycopg2
from flask import g, request
from flask_wtf.csrf import CSRFProtect

from gateway.security.alerts import Alerts
from gateway.security.caller import client_ip
from gateway.security.headers import security_headers
from gateway.security.lockout import Lockout
from gateway.security.ratelimits import limiter
from gateway.security.sessions import SessionStore
from gateway.security.staff import staff_store
from gateway.security.totp import TotpStore

log = logging.getLogger(__name__)

csrf = CSRFProtect()
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def load_secret_key(db):
    """GATEWAY_SECRET_KEY, or one random key per database kept in gateway.app_secrets (every worker agrees)."""
    candidate = secrets.token_urlsafe(48)
    with db.transaction() as cur:
        cur.execute("INSERT INTO app_secrets (name, value) VALUES ('secret_key', %s) ON CONFLICT (name) DO NOTHING",
                    (candidate,))
        cur.execute("SELECT value FROM app_secrets WHERE name = 'secret_key'")
        return cur.fetchone()["value"]


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
    # On https it carries the __Host- prefix (secure, path /, no Domain), so a sibling subdomain can neither plant
    # a CSRF secret of its choosing nor read it.
    cfg.update(SESSION_COOKIE_NAME="__Host-exchanger_s" if cfg["COOKIE_SECURE"] else "exchanger_s",
               SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=cfg["COOKIE_SECURE"],
               SESSION_COOKIE_PATH="/", SESSION_COOKIE_DOMAIN=None)
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
            staff_store().audit(staff["username"], "%s %s" % (request.method, request.path),
                                outcome=g.get("action_outcome") or (
                                    "ok" if response.status_code < 400 else "http %d" % response.status_code),
                                role=staff["role"], ip=client_ip())
        return response

    app.after_request(security_headers)
