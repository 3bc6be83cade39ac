"""Staff accounts (gateway schema), argon2 password hashes, revocable bearer tokens and role checks."""
import datetime
import functools
import hashlib
import json
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, g, request

from gateway.errors import ApiError

ROLES = ("admin", "operator", "analyst")
READ = ROLES                      # analysts read and export only
ACT = ("admin", "operator")       # operators act on requests
ADMIN = ("admin",)                # admins also change settings, directions and staff

hasher = PasswordHasher()
# Verifying against a dummy hash for unknown users keeps the response time the same (no user enumeration).
_DUMMY_HASH = hasher.hash(secrets.token_hex(16))


def _hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


def db():
    return current_app.extensions["db"]


def client_ip():
    return request.remote_addr or "-"


class StaffStore:
    def __init__(self, database):
        self.db = database

    def create(self, username, password, role):
        if role not in ROLES:
            raise ValueError("role must be one of %s" % ", ".join(ROLES))
        if len(password) < 12:
            raise ValueError("password must have at least 12 characters")
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO staff (username, password_hash, role) VALUES (%s, %s, %s) "
                        "ON CONFLICT (username) DO NOTHING RETURNING id", (username, hasher.hash(password), role))
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

    def issue_token(self, staff, ttl_hours, ip):
        token = secrets.token_urlsafe(32)
        expires_at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=ttl_hours)
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO api_tokens (token_hash, staff_id, expires_at, created_ip) "
                        "VALUES (%s, %s, %s, %s)", (_hash_token(token), staff["id"], expires_at, ip))
        return token, expires_at

    def staff_for_token(self, token):
        return self.db.fetchone(
            "SELECT s.id, s.username, s.role FROM api_tokens t JOIN staff s ON s.id = t.staff_id "
            "WHERE t.token_hash = %s AND t.revoked_at IS NULL AND t.expires_at > now() AND s.active",
            (_hash_token(token),))

    def revoke(self, token):
        with self.db.transaction() as cur:
            cur.execute("UPDATE api_tokens SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
                        (_hash_token(token),))
            return cur.rowcount == 1

    def audit(self, actor, action, outcome="ok", role=None, ip=None, detail=None):
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO audit_log (actor, actor_role, actor_ip, action, outcome, detail) "
                        "VALUES (%s, %s, %s, %s, %s, %s)",
                        (actor, role, ip, action, outcome, json.dumps(detail or {})))


def staff_store():
    return current_app.extensions["staff"]


def current_staff():
    """The signed-in staff member from `Authorization: Bearer <token>`, or None."""
    if "staff" in g:
        return g.staff
    g.staff = None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        token = header[7:].strip()
        if token and len(token) < 200:
            g.staff = staff_store().staff_for_token(token)
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
            if staff["role"] not in roles:
                staff_store().audit(staff["username"], "forbidden:%s %s" % (request.method, request.path),
                                    outcome="denied", role=staff["role"], ip=client_ip())
                raise ApiError(403, "forbidden", "your role may not do this")
            return view(*args, **kwargs)
        wrapper.required_roles = roles
        return wrapper
    return decorator
