"""The gateway's security stores against real PostgreSQL: server-side sessions (idle, absolute, revoke),
lockout, the rate-limit storage shared by workers, TOTP enrolment and single use, and alert delivery."""
import datetime
import secrets

import eventlet

import pyotp
import pytest

from gateway.security.alerts import Alerts
from gateway.security.lockout import Lockout, Refused
from gateway.security.ratelimits import PostgresStorage
from gateway.security.sessions import SessionStore
from gateway.security.staff import StaffStore
from gateway.security.totp import TotpStore
from libs.db import Database

CFG = {"SESSION_IDLE_MINUTES": 30.0, "SESSION_MAX_HOURS": 12.0, "PRE_AUTH_MINUTES": 5.0, "LOCKOUT_THRESHOLD": 3,
       "LOCKOUT_USER_THRESHOLD": 4, "LOCKOUT_WINDOW_MINUTES": 15.0, "LOCKOUT_MINUTES": 15.0,
       "LOCKOUT_MAX_MINUTES": 120.0}


@pytest.fixture(scope="module")
def db(migrated_database):
    database = Database(url=migrated_database, schema="gateway", maxconn=4)
    yield database
    database.close()


@pytest.fixture
def staff(db):
    store = StaffStore(db)
    name = "u-%s" % secrets.token_hex(4)
    staff_id = store.create(name, "a-long-enough-password", "operator")
    return {"id": staff_id, "username": name, "role": "operator"}


def test_sessions_are_server_side_and_end_on_idle_absolute_revoke_and_disable(db, staff):
    store = SessionStore(db, CFG)
    raw = store.create(staff["id"], "full", "10.0.0.1", "test")
    assert store.load(raw)["username"] == staff["username"]
    assert store.load(raw + "x") is None
    assert db.fetchone("SELECT count(*) AS n FROM sessions WHERE id_hash = %s", (raw,))["n"] == 0  # hash stored
    db.fetchone("UPDATE sessions SET last_seen_at = now() - interval '31 minutes' WHERE staff_id = %s "
                "RETURNING 1", (staff["id"],))
    assert store.load(raw) is None  # idle
    raw = store.create(staff["id"], "full", "10.0.0.1", "test")
    db.fetchone("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE staff_id = %s AND "
                "revoked_at IS NULL RETURNING 1", (staff["id"],))
    assert store.load(raw) is None  # absolute
    raw = store.create(staff["id"], "full", "10.0.0.1", "test")
    assert store.revoke(raw, "signed out") and store.load(raw) is None
    raw = store.create(staff["id"], "full", "10.0.0.1", "test")
    db.fetchone("UPDATE staff SET active = false WHERE id = %s RETURNING 1", (staff["id"],))
    assert store.load(raw) is None  # disabled staff lose their sessions at once


def _evaluate(locks, name, ip):
    """One sign-in attempt as signin.py makes it: admitted, then (always wrong here) failed."""
    try:
        locks.admit(name, ip)
    except Refused:
        return "refused"
    locks.fail(name, ip)
    return "evaluated"


def test_lockout_counts_per_username_and_address_and_grows(db):
    locks = Lockout(db, dict(CFG, LOCKOUT_USER_THRESHOLD=100))
    name = "nobody-%s" % secrets.token_hex(3)
    assert [_evaluate(locks, name, "1.1.1.1") for _ in range(3)] == ["evaluated"] * 3
    assert _evaluate(locks, name.upper(), "1.1.1.1") == "refused"  # usernames are case-insensitive
    first = locks.locked_until(name, "1.1.1.1")
    assert first is not None
    assert _evaluate(locks, name, "2.2.2.2") == "evaluated"  # another address has its own count
    # The lock ran out: three more failures lock it again, for twice as long.
    db.fetchone("UPDATE signin_throttles SET locked_until = now() - interval '1 second' WHERE key = %s "
                "RETURNING 1", ("pair:%s|1.1.1.1" % name,))
    for _ in range(3):
        _evaluate(locks, name, "1.1.1.1")
    row = db.fetchone("SELECT lockouts, locked_until - now() AS left FROM signin_throttles WHERE key = %s",
                      ("pair:%s|1.1.1.1" % name,))
    assert row["lockouts"] == 2 and row["left"] > datetime.timedelta(minutes=29)
    assert locks.unlock(name) >= 2
    assert locks.locked_until(name, "1.1.1.1") is None
    assert _evaluate(locks, name, "1.1.1.1") == "evaluated"


def test_spraying_from_many_addresses_locks_new_addresses_not_a_known_one(db, staff):
    locks = Lockout(db, CFG)
    name = staff["username"]
    db.fetchone("INSERT INTO known_addresses (staff_id, ip) VALUES (%s, '10.9.9.9') RETURNING 1", (staff["id"],))
    outcomes = [_evaluate(locks, name, "10.0.0.%d" % i) for i in range(8)]
    assert outcomes[:4] == ["evaluated"] * 4 and set(outcomes[4:]) == {"refused"}
    assert _evaluate(locks, name, "10.0.1.1") == "refused"   # a new address: locked
    locks.admit(name, "10.9.9.9")                              # the owner's known address: admitted
    locks.succeeded(name, "10.9.9.9")
    locks.unlock(name)


def test_parallel_attempts_evaluate_at_most_the_threshold(migrated_database):
    """40 attempts at once over 8 connections: the count comes before the evaluation, in one statement."""
    pool = Database(url=migrated_database, schema="gateway", maxconn=8)
    locks = Lockout(pool, CFG)
    name = "racer-%s" % secrets.token_hex(3)
    try:
        # green threads: interface tests run under eventlet, which makes psycopg2 wait cooperatively
        outcomes = list(eventlet.GreenPool(8).imap(lambda _: _evaluate(locks, name, "3.3.3.3"), range(40)))
    finally:
        pool.close()
    assert outcomes.count("evaluated") == CFG["LOCKOUT_THRESHOLD"], outcomes


def test_rate_limit_storage_counts_in_fixed_windows_for_every_worker(migrated_database):
    a = PostgresStorage(url=migrated_database)
    b = PostgresStorage(url=migrated_database)  # another worker, same table
    key = "test/%s" % secrets.token_hex(4)
    assert a.incr(key, 60) == 1
    assert b.incr(key, 60) == 2
    assert a.get(key) == 2 and b.get_expiry(key) > 0
    b.clear(key)
    assert a.get(key) == 0
    assert a.incr(key, 1) == 1
    a.db.fetchone("UPDATE rate_limits SET expires_at = now() - interval '1 second' WHERE key = %s RETURNING 1",
                  (key,))
    assert a.incr(key, 60) == 1  # a new window starts from zero
    assert a.check()


def test_totp_enrolment_then_each_code_once(db, staff):
    totp = TotpStore(db, "Test")
    started = totp.begin(staff["id"], staff["username"])
    assert started["otpauth_uri"].startswith("otpauth://totp/Test:")
    assert not totp.status(staff["id"])
    code = pyotp.TOTP(started["secret"]).now()
    assert not totp.confirm(staff["id"], "000000") or code == "000000"
    assert totp.confirm(staff["id"], code) and totp.status(staff["id"])
    assert totp.begin(staff["id"], staff["username"]) is None  # enrolled: no new secret handed out
    assert not totp.verify(staff["id"], code)  # the enrolment code cannot sign in again
    step = int(datetime.datetime.now().timestamp()) // 30
    assert totp.verify(staff["id"], pyotp.TOTP(started["secret"]).generate_otp(step + 1))
    totp.reset(staff["id"])
    assert not totp.status(staff["id"])


def test_alerts_are_delivered_once_and_retried_on_failure(db):
    alerts = Alerts(db)
    with db.transaction() as cur:
        cur.execute("DELETE FROM security_alerts")
        alerts.queue(cur, "test", "subject", "body")
    calls = []

    def broken(*args):
        calls.append(args)
        raise RuntimeError("notifier down")
    assert alerts.deliver_pending(broken) == 0
    row = db.fetchone("SELECT attempts, sent_at, next_try_at > now() AS later FROM security_alerts")
    assert (row["attempts"], row["sent_at"], row["later"]) == (1, None, True)
    db.fetchone("UPDATE security_alerts SET next_try_at = now() RETURNING 1")
    assert alerts.deliver_pending(lambda *args: calls.append(args)) == 1
    assert alerts.deliver_pending(lambda *args: calls.append(args)) == 0
    assert len(calls) == 2 and calls[-1][:2] == ("subject", "body")
