"""Staff accounts (gateway schema), their roles, revocable bearer tokens and the gateway's audit log."""
import datetime
import secrets

from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, g, has_request_context

from gateway.security.hashing import DUMMY_HASH, check_password, hasher, sha256_hex
from libs.audit import write_audit

ROLES = ("admin", "operator", "analyst")
READ = ROLES                      # analysts read and export only
ACT = ("admin", "operator")       # operators act on requests
ADMIN = ("admin",)                # admins also change settings, directions and staff
KEEP = object()                   # "leave this column as it is" in StaffStore.update


class StaffStore:
    def __init__(self, database):
        self.db = database

    def create(self, username, password, role, totp_required=False, created_by=None, cur=None, email=None):
        if role not in ROLES:
            raise ValueError("role must be one of %s" % ", ".join(ROLES))
        check_password(password)
        if cur is not None:
            return self._insert(cur, username, password, role, totp_required, created_by, email)
        with self.db.transaction() as c:
            return self._insert(c, username, password, role, totp_required, created_by, email)

    @staticmethod
    def _insert(cur, username, password, role, totp_required, created_by, email):
        cur.execute("INSERT INTO staff (username, password_hash, role, totp_required, created_by, email) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (username) DO NOTHING RETURNING id",
                    (username, hasher.hash(password), role, totp_required, created_by, email))
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
            hasher.verify(row["password_hash"] if row else DUMMY_HASH, password)
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
        params = (sha256_hex(token), staff["id"], expires_at, ip, scope)
        if cur is not None:
            cur.execute(sql, params)
        else:
            with self.db.transaction() as c:
                c.execute(sql, params)
        return token, expires_at

    def staff_for_token(self, token, idle_minutes=None):
        row = self.db.fetchone(
            "SELECT s.id, s.username, s.role, s.totp_required, t.scope, t.last_used_at, t.token_hash, t.stepped_up_at "
            "FROM api_tokens t JOIN staff s ON s.id = t.staff_id "
            "WHERE t.token_hash = %s AND t.revoked_at IS NULL AND t.expires_at > now() AND s.active",
            (sha256_hex(token),))
        if row is None:
            return None
        idle = datetime.datetime.now(datetime.timezone.utc) - row["last_used_at"]
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
                        (datetime.timedelta(hours=ttl_hours), sha256_hex(token)))

    def get(self, staff_id):
        return self.db.fetchone("SELECT id, username, role, active, totp_required, created_at, updated_at, "
                                "created_by FROM staff WHERE id = %s", (staff_id,))

    def list(self):
        return self.db.fetchall(
            "SELECT s.id, s.username, s.role, s.active, s.totp_required, s.created_at, s.updated_at, s.created_by, "
            "       s.email, t.confirmed_at IS NOT NULL AS totp_enrolled, l.locked_until "
            "  FROM staff s LEFT JOIN staff_totp t ON t.staff_id = s.id "
            "  LEFT JOIN LATERAL (SELECT max(locked_until) AS locked_until FROM signin_throttles "
            "                    WHERE username = lower(s.username) AND locked_until > now()) l ON true "
            " ORDER BY s.username")

    def admin_emails(self):
        """The own addresses of the active admins: every security alert goes to each (docs/security.md)."""
        return [r["email"] for r in self.db.fetchall(
            "SELECT DISTINCT email FROM staff WHERE role = 'admin' AND active AND email IS NOT NULL ORDER BY email")]

    def update(self, staff_id, cur, role=None, active=None, totp_required=None, password=None, email=KEEP):
        sets, params = ["updated_at = now()"], []
        if email is not KEEP:
            sets.append("email = %s")
            params.append(email)
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
                        (sha256_hex(token),))
            return cur.rowcount == 1

    def audit(self, actor, action, outcome="ok", role=None, ip=None, detail=None, cur=None):
        """One line of gateway.audit_log; `actor` is a username here (or a name such as "twilio-webhook")."""
        who = {"name": (actor or "-")[:64], "role": role, "ip": ip}
        if has_request_context():
            g.audited = True  # the request-level audit hook (gateway/security/__init__.py) need not add a line
        if cur is not None:
            write_audit(cur, who, action[:200], outcome, detail)
            return
        with self.db.transaction() as c:
            write_audit(c, who, action[:200], outcome, detail)

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
