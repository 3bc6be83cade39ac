"""Sign-in throttling and lockout (docs/security.md, "Throttles and lockout").

Two counters per attempt, each one row of gateway.signin_throttles:
- `pair:<username>|<address>`: attempts at one username from one address; LOCKOUT_THRESHOLD of them within the
  window lock that pair, for LOCKOUT_MINUTES doubled at every lock in a row (growing delays);
- `user:<username>`: attempts at one username from addresses it never signed in from (LOCKOUT_USER_THRESHOLD);
  a lock here turns away new addresses only, so an attacker spraying from many addresses cannot lock the owner,
  who signs in from an address known for the account.

The check and the count are one step: `admit` adds the attempt to its counters in one
`INSERT ... ON CONFLICT DO UPDATE ... RETURNING` BEFORE the password or code is evaluated, and an attempt beyond
the threshold is refused unevaluated. Parallel attempts each see the ones before them, so no more than the
threshold are ever evaluated, however many arrive at once. A success forgets the pair's attempts. Usernames count
whether they exist or not (no user enumeration). Sessions and tokens already issued are not touched by a lock.
"""
import datetime
import secrets

from flask import current_app

# One statement: count the attempt, start a new window when the old one is over, and answer whether it may be
# evaluated. A locked key keeps its count (the attempt is refused and not counted).
_ADMIT = """
INSERT INTO signin_throttles AS t (key, username, attempts, window_end)
VALUES (%(key)s, %(username)s, 1, now() + %(window)s)
ON CONFLICT (key) DO UPDATE SET
    attempts = CASE WHEN t.locked_until > now() THEN t.attempts
                    WHEN t.window_end <= now() THEN 1
                    ELSE t.attempts + 1 END,
    window_end = CASE WHEN t.locked_until > now() OR t.window_end > now() THEN t.window_end
                      ELSE EXCLUDED.window_end END,
    updated_at = now()
RETURNING attempts, CASE WHEN locked_until > now() THEN locked_until END AS locked_until,
          extract(epoch FROM greatest(window_end - now(), interval '1 second'))::float8 AS window_left
"""

# After a failure that used up the threshold: lock the key, for base * 2^(locks in a row) (capped), and start over.
# Locks in a row are forgotten a day after the last one ended.
_LOCK = """
UPDATE signin_throttles SET
    lockouts = CASE WHEN locked_until < now() - interval '1 day' THEN 1 ELSE lockouts + 1 END,
    locked_until = now() + least(%(base)s * power(2, CASE WHEN locked_until < now() - interval '1 day' THEN 0
                                                          ELSE lockouts END), %(cap)s) * interval '1 second',
    attempts = 0, updated_at = now()
WHERE key = %(key)s AND attempts >= %(threshold)s AND (locked_until IS NULL OR locked_until <= now())
RETURNING locked_until
"""


def _name(username):
    # lower-case, bounded, and without NUL (PostgreSQL text cannot hold it; a client may send one)
    return username.lower()[:64].replace("\x00", "")


class Refused(Exception):
    def __init__(self, until, retry_after):
        super().__init__("sign-in refused until %s" % until)
        self.until, self.retry_after = until, retry_after


class Lockout:
    def __init__(self, db, cfg):
        self.db = db
        self.threshold = cfg["LOCKOUT_THRESHOLD"]
        self.user_threshold = cfg["LOCKOUT_USER_THRESHOLD"]
        self.window = datetime.timedelta(minutes=cfg["LOCKOUT_WINDOW_MINUTES"])
        self.base_seconds = cfg["LOCKOUT_MINUTES"] * 60.0
        self.cap_seconds = cfg["LOCKOUT_MAX_MINUTES"] * 60.0

    @staticmethod
    def _keys(name, ip, known):
        ip = (ip or "-").replace("\x00", "")
        keys = [("pair:%s|%s" % (name, ip), "pair")]
        if not known:
            keys.append(("user:%s" % name, "user"))
        return keys

    def _threshold(self, kind):
        return self.threshold if kind == "pair" else self.user_threshold

    def known_address(self, username, ip):
        row = self.db.fetchone("SELECT 1 AS one FROM known_addresses k JOIN staff s ON s.id = k.staff_id "
                               "WHERE lower(s.username) = %s AND k.ip = %s", (_name(username), ip))
        return row is not None

    def admit(self, username, ip):
        """Count one attempt at `username` from `ip`; raises Refused (not to be evaluated) when over a limit."""
        name = _name(username)
        refused = None
        keys = self._keys(name, ip, self.known_address(name, ip))  # before taking the transaction's connection
        with self.db.transaction() as cur:
            for key, kind in keys:
                cur.execute(_ADMIT, {"key": key, "username": name, "window": self.window})
                row = cur.fetchone()
                if row["locked_until"] is not None:
                    left = (row["locked_until"] - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
                    refused = refused or Refused(row["locked_until"], max(1, int(left) + 1))
                elif row["attempts"] > self._threshold(kind):
                    refused = refused or Refused(None, max(1, int(row["window_left"]) + 1))
            if secrets.randbelow(200) == 0:  # now and then, forget counters long over (sprayed usernames)
                cur.execute("DELETE FROM signin_throttles WHERE updated_at < now() - interval '2 days' "
                            "AND window_end < now() AND (locked_until IS NULL OR locked_until < now())")
        if refused is not None:
            raise refused

    def fail(self, username, ip):
        """An evaluated attempt failed: lock the keys whose threshold it used up. Returns the lock's end or None."""
        name = _name(username)
        until = None
        keys = self._keys(name, ip, self.known_address(name, ip))
        with self.db.transaction() as cur:
            for key, kind in keys:
                cur.execute(_LOCK, {"key": key, "threshold": self._threshold(kind), "base": self.base_seconds,
                                    "cap": self.cap_seconds})
                row = cur.fetchone()
                if row is not None:
                    until = max(until, row["locked_until"]) if until else row["locked_until"]
        return until

    def locked_until(self, username, ip=None):
        """The end of a lock on this username (from this address, or from anywhere new when `ip` is None)."""
        name = _name(username)
        keys = ["user:%s" % name] + (["pair:%s|%s" % (name, ip)] if ip else [])
        row = self.db.fetchone("SELECT max(locked_until) AS until FROM signin_throttles "
                               "WHERE key = ANY(%s) AND locked_until > now()", (keys,))
        return row["until"] if row else None

    def succeeded(self, username, ip, cur=None):
        """Forget the address's attempts; in the caller's transaction when given (no second pooled connection)."""
        sql, params = "DELETE FROM signin_throttles WHERE key = %s", ("pair:%s|%s" % (_name(username), ip),)
        if cur is not None:
            cur.execute(sql, params)
            return
        with self.db.transaction() as own:
            own.execute(sql, params)

    def unlock(self, username, ip=None):
        """Forget the counters and locks of a username (all addresses, or one); returns how many were removed."""
        name = _name(username)
        with self.db.transaction() as cur:
            if ip:
                cur.execute("DELETE FROM signin_throttles WHERE key = %s", ("pair:%s|%s" % (name, ip),))
            else:
                cur.execute("DELETE FROM signin_throttles WHERE username = %s", (name,))
            return cur.rowcount


def lockout_store():
    return current_app.extensions["lockout"]
