"""Security alerts to the admin address: a sign-in from a new address, and every change of staff the gateway makes
(created, promoted, password or second factor reset: libs/contracts/security.py). Changes made in the services
(catalogue, commissions, withdrawals, payouts) raise theirs through the service's outbox; notification settings
alert from the notifier (docs/security.md, "Step-up and alerts")."""
import datetime
import logging
import threading
import uuid

from flask import current_app

from gateway import rpc
from libs.contracts import security

# Kinds that also text the admin phone where SMS is on (a new sign-in address is mail only).
SMS_KINDS = ("security_change",)

log = logging.getLogger(__name__)


class Alerts:
    """Security alerts queued in the caller's transaction (gateway.security_alerts) and delivered through the
    notifier's `send_admin_alert` RPC by a sweeper thread, retried with backoff until it answers."""

    def __init__(self, db):
        self.db = db
        self._kick = threading.Event()
        self._synced = None        # the admins' addresses the notifier last accepted (sync_recipients)
        self._thread = None
        self._lock = threading.Lock()

    def queue(self, cur, kind, subject, body, extra_to=None):
        cur.execute("INSERT INTO security_alerts (id, kind, subject, body, extra_to) VALUES (%s, %s, %s, %s, %s)",
                    (uuid.uuid4(), kind, subject[:200], body[:4000], extra_to))
        self._kick.set()

    def deliver_pending(self, call, limit=20):
        """call(subject, body, alert_id, extra_to, sms) sends one; returns how many were sent."""
        sent = 0
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM security_alerts WHERE sent_at IS NULL AND next_try_at <= now() "
                        "ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED", (limit,))
            for row in cur.fetchall():
                try:
                    call(row["subject"], row["body"], str(row["id"]), row["extra_to"], row["kind"] in SMS_KINDS)
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

    def sync_recipients(self, admin_emails, call):
        """Hand the notifier the active admins' own addresses when they differ from what it last accepted (every
        security alert goes to each); retried at every sweep until it answers."""
        emails = sorted(admin_emails)
        if emails != self._synced:
            call(emails)
            self._synced = emails

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
        def call(subject, body, alert_id, extra_to, sms=False):
            rpc.client().call("notifier", "send_admin_alert", subject, body, key="gateway-alert:" + alert_id,
                              **dict({"also_to": extra_to} if extra_to else {}, **({"sms": True} if sms else {})))
        def set_recipients(emails):
            rpc.client().call("notifier", "set_alert_recipients", emails)
        interval = app.config["ALERT_SWEEP_SECONDS"]
        while True:
            try:
                with app.app_context():
                    self.sync_recipients(app.extensions["staff"].admin_emails(), set_recipients)
            except Exception:  # noqa: BLE001 - the notifier or the database away: next sweep
                log.warning("security alert recipients not synced yet", exc_info=True)
            self._kick.wait(interval)
            self._kick.clear()
            try:
                with app.app_context():
                    self.sync_recipients(app.extensions["staff"].admin_emails(), set_recipients)
                    while self.deliver_pending(call):
                        pass
            except Exception:  # noqa: BLE001 - the sweeper must survive a database hiccup
                log.exception("security alert sweep failed")


def alert_queue():
    return current_app.extensions["alerts"]


def note_address(cur, staff, ip, via):
    """Remember where a staff member signed in from; queue an alert the first time an address is seen."""
    cur.execute("INSERT INTO known_addresses (staff_id, ip) VALUES (%s, %s) ON CONFLICT (staff_id, ip) "
                "DO UPDATE SET last_seen_at = now() RETURNING (xmax = 0) AS inserted", (staff["id"], ip))
    if cur.fetchone()["inserted"]:
        alert_queue().queue(cur, "new_sign_in_address",
                            "Sign-in from a new address: %s (%s)" % (staff["username"], ip),
                            "Staff member %s (role %s) signed in from %s, an address not seen for this account "
                            "before, via %s at %s UTC.\nIf this was not them, disable the account and end its "
                            "sessions on the staff page." % (
                                staff["username"], staff["role"], ip, via,
                                datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")))
        return True
    return False


def alert_change(cur, actor, action, detail):
    """Queue the alert of a staff change in the transaction that makes it (delivered by the sweeper, at least
    once, deduplicated by the notifier on the alert's id). `actor` as gateway.security.caller.actor() gives it."""
    subject, body = security.change_text(security.change_data(actor, action, detail))
    alert_queue().queue(cur, "security_change", subject, body)
