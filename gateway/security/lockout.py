"""Sign-in lockout: failures (wrong password or code) counted per username, existing or not (no user
enumeration); enough of them within the window lock the username for a while."""
import datetime

from flask import current_app


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


def lockout_store():
    return current_app.extensions["lockout"]
