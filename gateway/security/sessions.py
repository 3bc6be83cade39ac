"""Browser sessions of staff, kept on the server (gateway.sessions): the cookie holds 256 random bits, the table
only their SHA-256, so sign-out, disabling a staff member or an admin's "end session" take effect at once, on
every worker. A new id is issued at every step of sign-in (password -> code -> signed in); idle and absolute
timeouts."""
import datetime
import secrets

from flask import current_app, request

from gateway.security.hashing import sha256_hex

STAGES = ("password", "enrol", "full")


class SessionStore:
    def __init__(self, db, cfg):
        self.db = db
        self.idle = datetime.timedelta(minutes=cfg["SESSION_IDLE_MINUTES"])
        self.absolute = datetime.timedelta(hours=cfg["SESSION_MAX_HOURS"])
        self.pre_auth = datetime.timedelta(minutes=cfg["PRE_AUTH_MINUTES"])

    def create(self, staff_id, stage, ip, user_agent, cur=None):
        """A fresh random id for every step of sign-in: an id seen before sign-in is worthless."""
        raw = secrets.token_urlsafe(32)
        lifetime = self.absolute if stage == "full" else self.pre_auth
        sql = ("INSERT INTO sessions (id_hash, staff_id, stage, expires_at, ip, user_agent) "
               "VALUES (%s, %s, %s, now() + %s, %s, %s)")
        params = (sha256_hex(raw), staff_id, stage, lifetime, ip, (user_agent or "")[:300])
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
            "SELECT x.id_hash, x.staff_id, x.stage, x.created_at, x.last_seen_at, x.expires_at, x.ip, x.stepped_up_at, "
            "       s.username, s.role, s.active, s.totp_required "
            "  FROM sessions x JOIN staff s ON s.id = x.staff_id "
            " WHERE x.id_hash = %s AND x.revoked_at IS NULL", (sha256_hex(raw),))
        if row is None:
            return None
        now = datetime.datetime.now(datetime.timezone.utc)
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
            return self.revoke_hash(sha256_hex(raw), reason)
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


def session_store():
    return current_app.extensions["sessions"]


# -- the cookie ----------------------------------------------------------------------------------------------------
def cookie_name(app):
    # __Host-: only over https, path /, no Domain: a sibling subdomain cannot plant or read it.
    return "__Host-exchanger_staff" if app.config["COOKIE_SECURE"] else "exchanger_staff"


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
