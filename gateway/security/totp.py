"""The second factor of staff sign-in: time-based codes from an authenticator app (gateway.staff_totp)."""
import hmac
import time

import pyotp
from flask import current_app


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

    def reset(self, staff_id, cur=None):
        if cur is not None:
            cur.execute("DELETE FROM staff_totp WHERE staff_id = %s", (staff_id,))
            return cur.rowcount == 1
        with self.db.transaction() as c:
            c.execute("DELETE FROM staff_totp WHERE staff_id = %s", (staff_id,))
            return c.rowcount == 1


def totp_needed(staff, cfg):
    """Must this staff member have a second factor before doing anything?"""
    return staff["role"] == "admin" or staff["role"] in cfg["TOTP_REQUIRED_ROLES"] or bool(
        staff.get("totp_required"))


def totp_store():
    return current_app.extensions["totp"]
