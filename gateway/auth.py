"""Staff accounts (gateway schema), argon2 password hashes, revocable bearer tokens and role checks.

Who is calling: `Authorization: Bearer <token>` (the API), or, for reads only (GET/HEAD), the browser's staff session
cookie (the admin pages and their CSV download). A state-changing call is never authenticated by a cookie outside
the CSRF-checked pages (gateway/security.py explains why)."""
import datetime
import functools
import hashlib
import json
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, g, has_request_context, request

from gateway.errors import ApiError

ROLES = ("admin", "operator", "analyst")
READ = ROLES                      # analysts read and export only
ACT = ("admin", "operator")       # operators act on requests
ADMIN = ("admin",)                # admins also change settings, directions and staff

hasher = PasswordHasher()
# Verifying against a dummy hash for unknown users keeps the response time the same (no user enumeration).
_DUMMY_HASH = hasher.hash(secrets.token_hex(16))


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def check_password(password):
    if not isinstance(password, str) or len(password) < 12:
        raise ValueError("password must have at least 12 characters")
    if len(password) > 256:
        raise ValueError("password must have at most 256 characters")


def _hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


def db():
    return current_app.extensions["db"]


def client_ip():
    return request.remote_addr or "-"


class StaffStore:
    def __init__(self, database):
        self.db = database

    def create(self, username, password, role, totp_required=False, created_by=None):
        if role not in ROLES:
            raise ValueError("role must be one of %s" % ", ".join(ROLES))
        check_password(password)
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO staff (username, password_hash, role, totp_required, created_by) "
                        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (username) DO NOTHING RETURNING id",
                        (username, hasher.hash(password), role, totp_required, created_by))
            row = cur.fetchone()
            if row is None:
                raise ValueError("user %s exists" % username)
            return row["id"]

    def ensure(self, username, password, role="admin"):
        """Create the first admin from the environment at start; never overwrite an existing account."""
        row = self.db.fetchone("SELECT id FROM staff WHERE username = %s", (username,))
        if row:
            return row["id"], False
        return self.create(username, password, role), True

    def authenticate(self, username, password):
        row = self.db.fetchone("SELECT * FROM staff WHERE username = %s", (username,))
        try:
            hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or not row["active"]:
            return None
        return row

    def issue_token(self, staff, ttl_hours, ip, scope="full", cur=None):
        token = secrets.token_urlsafe(32)
        expires_at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=ttl_hours)
        sql = ("INSERT INTO api_tokens (token_hash, staff_id, expires_at, created_ip, scope) "
               "VALUES (%s, %s, %s, %s, %s)")
        params = (_hash_token(token), staff["id"], expires_at, ip, scope)
        if cur is not None:
            cur.execute(sql, params)
        else:
            with self.db.transaction() as c:
                c.execute(sql, params)
        return token, expires_at

    def staff_for_token(self, token, idle_minutes=None):
        row = self.db.fetchone(
            "SELECT s.id, s.username, s.role, s.totp_required, t.scope, t.last_used_at, t.token_hash "
            "FROM api_tokens t JOIN staff s ON s.id = t.staff_id "
            "WHERE t.token_hash = %s AND t.revoked_at IS NULL AND t.expires_at > now() AND s.active",
            (_hash_token(token),))
        if row is None:
            return None
        idle = now() - row["last_used_at"]
        if idle_minutes and idle > datetime.timedelta(minutes=idle_minutes):
            self.revoke(token)
            return None
        if idle > datetime.timedelta(seconds=30):  # at most one write a minute per token
            with self.db.transaction() as cur:
                cur.execute("UPDATE api_tokens SET last_used_at = now() WHERE token_hash = %s", (row["token_hash"],))
        return row

    def upgrade_token(self, token, ttl_hours):
        """An enrolment token becomes a full one once the second factor is enrolled."""
        with self.db.transaction() as cur:
            cur.execute("UPDATE api_tokens SET scope = 'full', expires_at = now() + %s "
                        "WHERE token_hash = %s AND revoked_at IS NULL",
                        (datetime.timedelta(hours=ttl_hours), _hash_token(token)))

    def get(self, staff_id):
        return self.db.fetchone("SELECT id, username, role, active, totp_required, created_at, updated_at, "
                                "created_by FROM staff WHERE id = %s", (staff_id,))

    def list(self):
        return self.db.fetchall(
            "SELECT s.id, s.username, s.role, s.active, s.totp_required, s.created_at, s.updated_at, s.created_by, "
            "       t.confirmed_at IS NOT NULL AS totp_enrolled, l.locked_until "
            "  FROM staff s LEFT JOIN staff_totp t ON t.staff_id = s.id "
            "  LEFT JOIN lockouts l ON l.username = lower(s.username) AND l.locked_until > now() "
            " ORDER BY s.username")

    def update(self, staff_id, cur, role=None, active=None, totp_required=None, password=None):
        sets, params = ["updated_at = now()"], []
        if role is not None:
            if role not in ROLES:
                raise ValueError("role must be one of %s" % ", ".join(ROLES))
            sets.append("role = %s")
            params.append(role)
        if active is not None:
            sets.append("active = %s")
            params.append(active)
        if totp_required is not None:
            sets.append("totp_required = %s")
            params.append(totp_required)
        if password is not None:
            check_password(password)
            sets.append("password_hash = %s")
            params.append(hasher.hash(password))
        cur.execute("UPDATE staff SET " + ", ".join(sets) + " WHERE id = %s RETURNING id, username, role, active",
                    params + [staff_id])
        return cur.fetchone()

    def revoke(self, token):
        with self.db.transaction() as cur:
            cur.execute("UPDATE api_tokens SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
                        (_hash_token(token),))
            return cur.rowcount == 1

    def audit(self, actor, action, outcome="ok", role=None, ip=None, detail=None, cur=None):
        sql = ("INSERT INTO audit_log (actor, actor_role, actor_ip, action, outcome, detail) "
               "VALUES (%s, %s, %s, %s, %s, %s)")
        params = ((actor or "-")[:64], role, ip, action[:200], outcome, json.dumps(detail or {}, default=str))
        if has_request_context():
            g.audited = True  # the request-level audit hook (gateway/security.py) need not add a line
        if cur is not None:
            cur.execute(sql, params)
            return
        with self.db.transaction() as c:
            c.execute(sql, params)

    def list_audit(self, limit=200, actor=None, before_id=None):
        where, params = [], []
        if actor:
            where.append("actor = %s")
            params.append(actor)
        if before_id:
            where.append("id < %s")
            params.append(before_id)
        sql = "SELECT * FROM audit_log" + (" WHERE " + " AND ".join(where) if where else "") + \
            " ORDER BY id DESC LIMIT %s"
        return self.db.fetchall(sql, params + [limit])


def staff_store():
    return current_app.extensions["staff"]


def current_staff():
    """The signed-in staff member from `Authorization: Bearer <token>`, or for GET/HEAD the browser session."""
    if "staff" in g:
        return g.staff
    g.staff = None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        token = header[7:].strip()
        if token and len(token) < 200:
            g.staff = staff_store().staff_for_token(token, current_app.config.get("TOKEN_IDLE_MINUTES"))
    elif request.method in ("GET", "HEAD"):
        from gateway import security
        session = security.sessions().load(security.staff_cookie())
        if session is not None and session["stage"] == "full":
            g.staff = {"id": session["staff_id"], "username": session["username"], "role": session["role"],
                       "scope": "full", "via": "session"}
    return g.staff


def actor():
    staff = current_staff()
    return {"name": staff["username"], "role": staff["role"], "staff_id": staff["id"], "ip": client_ip()}


def require(roles):
    """Every admin route names the roles that may call it; 401 without a session, 403 with the wrong role."""
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            staff = current_staff()
            if staff is None:
                raise ApiError(401, "unauthorized", "sign in first")
            if staff.get("scope", "full") != "full":
                raise ApiError(403, "enrolment_required",
                               "enrol two-factor sign-in first: POST /api/v1/auth/totp, then /api/v1/auth/totp/confirm")
            if staff["role"] not in roles:
                staff_store().audit(staff["username"], "forbidden:%s %s" % (request.method, request.path),
                                    outcome="denied", role=staff["role"], ip=client_ip())
                raise ApiError(403, "forbidden", "your role may not do this")
            return view(*args, **kwargs)
        wrapper.required_roles = roles
        return wrapper
    return decorator


# -- sign-in steps shared by the API (POST /api/v1/auth/token) and the sign-in pages --------------------------------
def password_step(username, password, via):
    """(staff, None) when the password is right; (None, "locked"|"invalid", locked_until) otherwise.
    Every failure is audited and counted towards the lockout of that username."""
    from gateway import security
    ip = client_ip()
    store, locks = staff_store(), security.lockout()
    until = locks.locked_until(username)
    if until is not None:
        store.audit(username, "sign_in", outcome="locked", ip=ip, detail={"via": via})
        return None, "locked", until
    staff = store.authenticate(username, password)
    if staff is None:
        store.audit(username, "sign_in", outcome="failed", ip=ip, detail={"via": via, "reason": "password"})
        until = locks.fail(username, ip, "password")
        if until is not None:
            store.audit(username, "lockout", outcome="locked", ip=ip, detail={"until": until})
        return None, "invalid", until
    return staff, None, None


def code_step(staff, code, via):
    """Check a TOTP code of an enrolled staff member; a wrong one counts towards the lockout."""
    from gateway import security
    ip = client_ip()
    if security.totp().verify(staff["id"], code):
        return True
    staff_store().audit(staff["username"], "sign_in", outcome="failed", role=staff["role"], ip=ip,
                        detail={"via": via, "reason": "totp"})
    until = security.lockout().fail(staff["username"], ip, "totp")
    if until is not None:
        staff_store().audit(staff["username"], "lockout", outcome="locked", ip=ip, detail={"until": until})
    return False


def finish_sign_in(staff, via, cur):
    """The staff member is fully signed in: audit it, forget past failures, alert on a new address."""
    from gateway import security
    ip = client_ip()
    new_address = security.note_address(cur, staff, ip, via)
    staff_store().audit(staff["username"], "sign_in", role=staff["role"], ip=ip,
                        detail={"via": via, "new_address": new_address}, cur=cur)
    security.lockout().succeeded(staff["username"])
