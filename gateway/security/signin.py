"""The sign-in steps shared by the API (POST /api/v1/auth/token) and the sign-in pages: password, TOTP code,
and finishing; every attempt is admitted by the lockout (gateway/security/lockout.py) BEFORE it is evaluated, and
every failure is audited."""
from gateway.security.alerts import note_address
from gateway.security.caller import client_ip
from gateway.security.lockout import Refused, lockout_store
from gateway.security.staff import staff_store
from gateway.security.totp import totp_store


def _refused(username, ip, via, exc, role=None):
    staff_store().audit(username, "sign_in", outcome="locked", role=role, ip=ip,
                        detail={"via": via, "until": exc.until, "retry_after": exc.retry_after})
    return exc.retry_after


def _failed(username, ip, via, reason, role=None):
    staff_store().audit(username, "sign_in", outcome="failed", role=role, ip=ip, detail={"via": via, "reason": reason})
    until = lockout_store().fail(username, ip)
    if until is not None:
        staff_store().audit(username, "lockout", outcome="locked", role=role, ip=ip, detail={"until": until})


def password_step(username, password, via):
    """(staff, None, None) when the password is right; (None, "locked", retry_after seconds) when the attempt was
    refused unevaluated; (None, "invalid", None) when the password is wrong. The attempt counts before the password
    is checked, so a request that also carries a TOTP code is one attempt (code_step(..., admitted=True))."""
    ip = client_ip()
    try:
        lockout_store().admit(username, ip)
    except Refused as exc:
        return None, "locked", _refused(username, ip, via, exc)
    staff = staff_store().authenticate(username, password)
    if staff is None:
        _failed(username, ip, via, "password")
        return None, "invalid", None
    return staff, None, None


def code_step(staff, code, via, admitted=False):
    """Check a TOTP code of an enrolled staff member: (True, None) right, (False, None) wrong, (False, seconds)
    refused unevaluated (retry after). `admitted`: the password step of this very request counted it already."""
    ip = client_ip()
    if not admitted:
        try:
            lockout_store().admit(staff["username"], ip)
        except Refused as exc:
            return False, _refused(staff["username"], ip, via, exc, staff["role"])
    if totp_store().verify(staff["id"], code):
        return True, None
    _failed(staff["username"], ip, via, "totp", staff["role"])
    return False, None


def finish_sign_in(staff, via, cur):
    """The staff member is fully signed in: audit it, forget the address's attempts, alert on a new address."""
    ip = client_ip()
    new_address = note_address(cur, staff, ip, via)
    staff_store().audit(staff["username"], "sign_in", role=staff["role"], ip=ip,
                        detail={"via": via, "new_address": new_address}, cur=cur)
    lockout_store().succeeded(staff["username"], ip, cur)
